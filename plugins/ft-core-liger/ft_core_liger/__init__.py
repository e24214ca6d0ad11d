"""ft-core plugin: Liger kernels on CUDA GPUs for every model type liger-kernel supports (Llama, Qwen, Mistral,
Gemma, Phi-3, OLMo 2, GLM-4, DeepSeek, LLaVA, PaliGemma, ...) — the ``liger`` model patch, and the
``liger`` config section that applies it by default on GPU runs of supported models (``liger.enabled: auto``).

Import-light: neither liger-kernel nor triton, torch or transformers is imported at registration; a CPU-only
machine can install and list this plugin, and ``ft-core validate`` explains why a CPU run cannot use it.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import ConfigSection, ModelPatch, Register, RunConfig, RunContext, hookimpl
from ft_core_liger.auto import SECTION, LigerSection, apply_automatically, validate
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
def ft_validate_config(config: RunConfig) -> list[str]:
    return validate(config)


@hookimpl
def ft_patch_model(model: Any, run: RunContext, role: str) -> None:
    apply_automatically(model, run, role)
