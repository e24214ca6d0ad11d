"""The ``shift_attn`` model patch: LongLoRA's shifted sparse attention (S²-Attn) while the model trains."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ft_core.api import FtCoreError, ModelPatch, OptionsError, RunConfig

logger = logging.getLogger(__name__)

#: Model types whose attention modules call transformers' attention interface with ``(B, H, L, D)`` query, key
#: and value after RoPE and no logit soft-capping: S²-Attn can replace their attention function.
SUPPORTED_MODEL_TYPES: frozenset[str] = frozenset(
    {
        "llama",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "gemma",
        "olmo2",
        "phi3",
        "granite",
        "smollm3",
    }
)
#: ``model.attn_implementation`` values S²-Attn replaces (it computes with PyTorch SDPA on transformers' masks).
COMPATIBLE_ATTENTION = frozenset({"auto", "sdpa", "eager"})


@dataclass(frozen=True)
class ShiftAttnOptions:
    """Options of ``patches: [{name: shift_attn, ...}]``."""

    #: Tokens per attention group, as a fraction of each batch's sequence length (LongLoRA: 1/4).
    group_size_ratio: float = 0.25

    def __post_init__(self) -> None:
        if not (math.isfinite(self.group_size_ratio) and 0.0 < self.group_size_ratio <= 1.0):
            raise OptionsError(
                f"group_size_ratio must be in (0, 1] (LongLoRA uses 0.25), got {self.group_size_ratio}"
            )


def model_type_of(name_or_path: str) -> str | None:
    """``model_type`` from ``config.json`` of a local model folder, or ``None`` (a hub or embedded name)."""
    try:
        return json.loads((Path(name_or_path) / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def unsupported_model_type(model_type: str) -> str:
    return (
        f"patches[shift_attn]: S²-Attn cannot wrap the attention of model_type {model_type!r} (supported: "
        f"{', '.join(sorted(SUPPORTED_MODEL_TYPES))}); remove shift_attn from patches"
    )


def problems(config: RunConfig) -> list[str]:
    """Why ``config`` cannot train with S²-Attn (empty when it can)."""
    found = []
    model_type = model_type_of(config.model.name_or_path)
    if model_type is not None and model_type not in SUPPORTED_MODEL_TYPES:
        found.append(unsupported_model_type(model_type))
    attention = config.model.attn_implementation
    if attention is not None and attention not in COMPATIBLE_ATTENTION:
        found.append(
            f"patches[shift_attn]: model.attn_implementation: {attention} cannot be combined with S²-Attn, which "
            "computes its grouped attention with PyTorch SDPA on transformers' attention masks; set "
            "model.attn_implementation: sdpa (or auto), or remove shift_attn from patches"
        )
    if config.data.packing is True:
        found.append(
            "patches[shift_attn]: data.packing: true cannot be combined with S²-Attn (its groups are cut from the "
            "padded rows of a batch; ft-core packs only for attention kernels it knows keep packed rows apart); set "
            "data.packing: auto (off with shift_attn) or false"
        )
    return found


def attention_modules(model: Any) -> list[Any]:
    """The self-attention modules of ``model`` (every module with ``q_proj`` or ``qkv_proj`` and a ``layer_idx``)."""
    return [
        module
        for module in model.modules()
        if hasattr(module, "layer_idx") and (hasattr(module, "q_proj") or hasattr(module, "qkv_proj"))
    ]


class ShiftAttnPatch(ModelPatch[ShiftAttnOptions]):
    """S²-Attn: grouped attention with half the heads shifted, in training only."""

    options_schema: ClassVar[type] = ShiftAttnOptions
    description: ClassVar[str] = (
        "LongLoRA shifted sparse attention (S²-Attn) while training: groups of 1/4 of the sequence, half the heads "
        "shifted (llama, mistral, qwen2, qwen3, ...)"
    )

    def validate(self, options: ShiftAttnOptions, config: RunConfig) -> list[str]:
        return problems(config)

    def patch_model(self, model: Any, options: ShiftAttnOptions) -> Any:
        from ft_core_longlora.attention import ATTENTION_NAME, RATIO_ATTRIBUTE, register

        model_type = getattr(model.config, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise FtCoreError(unsupported_model_type(str(model_type)))
        modules = attention_modules(model)
        if not modules:
            raise FtCoreError(f"patches[shift_attn]: found no attention modules in {type(model).__name__}")
        register()
        model.set_attn_implementation(ATTENTION_NAME)
        for module in modules:
            setattr(module, RATIO_ATTRIBUTE, options.group_size_ratio)
        logger.info(
            f"shift_attn: S²-Attn on {len(modules)} attention layers while training (groups of "
            f"{options.group_size_ratio:g} x the sequence length, half the heads shifted)"
        )
        return model
