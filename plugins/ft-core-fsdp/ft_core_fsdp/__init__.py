"""ft-core plugin: PyTorch FSDP2 (``fully_shard``) through accelerate and the transformers Trainer.

``distributed.strategy: fsdp`` selects it; its ``fsdp:`` section holds the options (:class:`FsdpOptions`). The
plugin validates the run (quantization, optimizers, offload on the CPU) and sets ``TrainingArguments.fsdp`` /
``fsdp_config`` (``version: 2``) through ``ft_adjust_training_arguments``; transformers and accelerate do the
sharding, mixed precision (``training.precision``), CPU offload and checkpoints. Core gathers the weights at the
end, so the artefact is a plain Hugging Face folder.

Import-light: nothing heavy is imported at registration.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import ConfigSection, Register, RunConfig, RunContext, hookimpl
from ft_core_fsdp.options import FsdpOptions, fsdp_config, problems

__all__ = ["SECTION", "FsdpOptions", "fsdp_config", "problems"]

#: The config section (and the ``distributed.strategy`` value) of this plugin.
SECTION = "fsdp"


@hookimpl
def ft_register_config_sections(register: Register[ConfigSection]) -> None:
    register(
        SECTION,
        ConfigSection(
            schema=FsdpOptions,
            description="PyTorch FSDP2 (fully_shard) options, under distributed.strategy: fsdp",
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
    options: FsdpOptions = run.config.section(SECTION)
    arguments["fsdp"] = True
    arguments["fsdp_config"] = fsdp_config(options)
    run.record(
        "fsdp",
        arguments["fsdp_config"],
        f"distributed.strategy: fsdp over {run.process.world_size} process(es)",
    )
