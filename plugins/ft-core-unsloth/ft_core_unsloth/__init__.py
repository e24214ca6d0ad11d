"""ft-core plugin: load the policy model with Unsloth (``FastLanguageModel``) and train Unsloth's LoRA.

Off unless a config says ``unsloth: {enabled: true}`` (and ``adapter.method: unsloth_lora``). Then:

- ``ft_validate_config`` refuses what Unsloth cannot run (CPU training, another adapter, 8-bit or non-bitsandbytes
  quantization, the Liger patch, a model type Unsloth does not support, a missing or broken install) and imports
  Unsloth, so that it patches transformers before the model loads;
- ``ft_load_model`` loads the policy model (a causal LM) from the resolved model folder with
  ``FastLanguageModel.from_pretrained`` (the run's dtype, ``max_seq_length = data.cutoff_len``, bitsandbytes 4-bit
  when ``quantization`` selects it);
- the ``unsloth_lora`` adapter applies LoRA with ``FastLanguageModel.get_peft_model`` (Unsloth's gradient
  checkpointing), and the artefact is a plain PEFT adapter;
- ``ft_adjust_training_arguments`` leaves checkpointing to Unsloth (the Trainer does not re-enable its own).

Import-light: neither unsloth nor torch, transformers or peft is imported at registration.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import AdapterMethod, ConfigSection, FtCoreError, Register, RunConfig, RunContext, hookimpl
from ft_core_unsloth import loading
from ft_core_unsloth.adapter import UnslothLoraAdapter
from ft_core_unsloth.loading import ADAPTER, SECTION, SUPPORTED_MODEL_TYPES
from ft_core_unsloth.options import UnslothLoraOptions, UnslothOptions

__all__ = [
    "ADAPTER",
    "SECTION",
    "SUPPORTED_MODEL_TYPES",
    "UnslothLoraAdapter",
    "UnslothLoraOptions",
    "UnslothOptions",
]


@hookimpl
def ft_register_config_sections(register: Register[ConfigSection]) -> None:
    register(
        SECTION,
        ConfigSection(
            schema=UnslothOptions,
            description="Unsloth: load the policy model with FastLanguageModel and train unsloth_lora (CUDA GPUs)",
        ),
    )


@hookimpl
def ft_register_adapters(register: Register[AdapterMethod[Any]]) -> None:
    register(ADAPTER, UnslothLoraAdapter())


@hookimpl
def ft_validate_config(config: RunConfig) -> list[str] | None:
    if not loading.enabled(config):
        return None
    problems = loading.problems(config, config.section(SECTION))
    if problems:
        return problems
    try:
        loading.import_unsloth()  # before the engine imports transformers: Unsloth patches it on import
    except FtCoreError as exc:
        return [str(exc)]
    return None


@hookimpl
def ft_load_model(
    run: RunContext, role: str, model_config: Any, load_kwargs: dict[str, Any], model_folder: str, head: str
) -> Any | None:
    return loading.load(run, role, model_config, load_kwargs, model_folder, head)


@hookimpl
def ft_adjust_training_arguments(arguments: dict[str, Any], run: RunContext) -> None:
    if not loading.enabled(run.config):
        return
    # get_peft_model set up Unsloth's checkpointing on the model; the Trainer must not replace it with its own
    for name in ("gradient_checkpointing", "activation_checkpointing"):
        if name in arguments:
            arguments[name] = False
            arguments[f"{name}_kwargs"] = None


@hookimpl
def ft_after_train(trainer: Any, run: RunContext, metrics: dict[str, Any]) -> None:
    if loading.enabled(run.config):
        import sys

        metrics["unsloth_version"] = getattr(sys.modules.get("unsloth"), "__version__", None)
