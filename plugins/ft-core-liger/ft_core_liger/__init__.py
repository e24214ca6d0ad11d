"""ft-core plugin: Liger kernels on CUDA GPUs for every model type liger-kernel supports (Llama, Qwen, Mistral,
Gemma, Phi-3, OLMo 2, GLM-4, DeepSeek, LLaVA, PaliGemma, ...) — the ``liger`` model patch, and the
``liger`` config section that applies it by default on GPU runs of supported models (``liger.enabled: auto``).

Import-light: neither liger-kernel nor triton, torch or transformers is imported at registration; a CPU-only
machine can install and list this plugin, and ``ft-core validate`` explains why a CPU run cannot use it.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import ConfigSection, ModelPatch, Register, RunConfig, RunContext, hookimpl
from ft_core_liger.auto import (
    SECTION,
    LigerSection,
    apply_automatically,
    default_reason,
    validate,
    warmup_options,
)
from ft_core_liger.patch import PIP_INSTALL, SUPPORTED_MODEL_TYPES, LigerOptions, LigerPatch, unusable_reason

__all__ = [
    "PIP_INSTALL",
    "SECTION",
    "SUPPORTED_MODEL_TYPES",
    "LigerOptions",
    "LigerPatch",
    "LigerSection",
    "unusable_reason",
]


@hookimpl
def ft_register_model_patches(register: Register[ModelPatch]) -> None:
    register("liger", LigerPatch())


@hookimpl
def ft_register_config_sections(register: Register[ConfigSection]) -> None:
    register(
        SECTION,
        ConfigSection(
            schema=LigerSection,
            description="Liger kernels by default on CUDA GPU runs of supported models (enabled: auto | true | false)",
        ),
    )


@hookimpl
def ft_activate_by_default(config: RunConfig) -> str | None:
    return default_reason(config)


@hookimpl
def ft_validate_config(config: RunConfig) -> list[str]:
    return validate(config)


#: Key of this plugin's per-run state (``run.state``): the kernel warm-up threads, joined before training.
STATE_KEY = "ft-core-liger"


@hookimpl
def ft_adjust_model_config(model_config: Any, run: RunContext, role: str) -> None:
    """Before the policy model's weights load: load the Liger kernels it will use in a background thread."""
    if role != "policy":
        return
    options = warmup_options(model_config, run)
    if options is None:
        return
    from ft_core_liger.warmup import compute_dtype, start_warmup

    warmups = run.state.setdefault(STATE_KEY, [])
    warmups.append(start_warmup(model_config, options, compute_dtype(run), run.process.local_rank))


@hookimpl
def ft_patch_model(model: Any, run: RunContext, role: str) -> None:
    apply_automatically(model, run, role)


@hookimpl
def ft_before_train(trainer: Any, run: RunContext) -> None:
    """Wait for the kernel warm-up: training never runs beside it."""
    warmups = run.state.get(STATE_KEY, [])
    while warmups:
        warmups.pop().join()
