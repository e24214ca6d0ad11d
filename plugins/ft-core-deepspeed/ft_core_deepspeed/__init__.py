"""ft-core plugin: DeepSpeed ZeRO-2 / ZeRO-3 with optimizer and parameter offload, through the transformers Trainer.

``distributed.strategy: deepspeed`` selects it; its ``deepspeed:`` section holds the options
(:class:`DeepSpeedOptions`). The plugin validates the run (deepspeed installed, quantization under ZeRO-3,
optimizers, offload on the CPU) and hands the generated DeepSpeed config to ``TrainingArguments(deepspeed=...)``
through ``ft_adjust_training_arguments``; transformers, accelerate and DeepSpeed do the rest. ZeRO-3 gathers 16-bit
weights when the model is saved, and core gathers them for the artefact, a plain Hugging Face folder.

Import-light: deepspeed is never imported at registration.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import ConfigSection, Register, RunConfig, RunContext, hookimpl
from ft_core_deepspeed.options import DeepSpeedOptions, deepspeed_config, problems

__all__ = ["SECTION", "DeepSpeedOptions", "deepspeed_config", "problems"]

#: The config section (and the ``distributed.strategy`` value) of this plugin.
SECTION = "deepspeed"


@hookimpl
def ft_register_config_sections(register: Register[ConfigSection]) -> None:
    register(
        SECTION,
        ConfigSection(
            schema=DeepSpeedOptions,
            description="DeepSpeed ZeRO-2 / ZeRO-3 options, under distributed.strategy: deepspeed",
            strategy=True,
        ),
    )


def _selected(config: RunConfig) -> bool:
    return config.distributed.strategy == SECTION


@hookimpl
def ft_validate_config(config: RunConfig) -> list[str] | None:
    if not _selected(config):
        return None
    return problems(config, config.section(SECTION))


@hookimpl
def ft_adjust_training_arguments(arguments: dict[str, Any], run: RunContext) -> None:
    if not _selected(run.config):
        return
    options: DeepSpeedOptions = run.config.section(SECTION)
    arguments["deepspeed"] = deepspeed_config(options)
    run.record(
        "deepspeed",
        {
            "stage": options.stage,
            "offload_optimizer": options.offload_optimizer,
            "offload_params": options.offload_params,
        },
        f"distributed.strategy: deepspeed over {run.process.world_size} process(es)",
    )
