"""ft-core plugin: the ``liger`` model patch (Liger kernels for Llama / Qwen2 / Qwen3 on CUDA GPUs).

Import-light: neither liger-kernel nor triton, torch or transformers is imported at registration; a CPU-only
machine can install and list this plugin, and ``ft-core validate`` explains why a CPU run cannot use it.
"""

from __future__ import annotations

from ft_core.api import ModelPatch, Register, hookimpl
from ft_core_liger.patch import PIP_INSTALL, SUPPORTED_MODEL_TYPES, LigerOptions, LigerPatch, unusable_reason

__all__ = ["PIP_INSTALL", "SUPPORTED_MODEL_TYPES", "LigerOptions", "LigerPatch", "unusable_reason"]


@hookimpl
def ft_register_model_patches(register: Register[ModelPatch]) -> None:
    register("liger", LigerPatch())
