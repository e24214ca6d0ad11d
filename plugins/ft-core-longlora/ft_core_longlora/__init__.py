"""ft-core plugin: LongLoRA's shifted sparse attention (S²-Attn) as the ``shift_attn`` model patch.

``patches: [shift_attn]`` replaces the attention function of a Llama-like model (llama, mistral, qwen2, qwen3, ...)
with S²-Attn while it trains: tokens attend within groups of a quarter of the sequence, half the heads shifted by
half a group. Evaluation and generation use full attention. Import-light: torch and transformers are imported when
the patch applies, not at registration.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import ModelPatch, Register, hookimpl
from ft_core_longlora.patch import SUPPORTED_MODEL_TYPES, ShiftAttnOptions, ShiftAttnPatch

__all__ = ["SUPPORTED_MODEL_TYPES", "ShiftAttnOptions", "ShiftAttnPatch"]


@hookimpl
def ft_register_model_patches(register: Register[ModelPatch[Any]]) -> None:
    register("shift_attn", ShiftAttnPatch())
