"""The ``liger`` model patch: Liger kernels on a loaded Llama / Qwen2 / Qwen3 model (CUDA GPUs only)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.api import FtCoreError, ModelPatch, OptionsError, RunConfig

#: The pip command that installs the Liger version this plugin is written and tested against.
PIP_INSTALL = "pip install liger-kernel==0.8.5"

#: ``config.model_type`` -> the ``liger_kernel.transformers.monkey_patch`` function that patches such a model.
SUPPORTED_MODEL_TYPES: dict[str, str] = {
    "llama": "apply_liger_kernel_to_llama",
    "qwen2": "apply_liger_kernel_to_qwen2",
    "qwen3": "apply_liger_kernel_to_qwen3",
}

_LABEL = "patches[liger]"


@dataclass(frozen=True)
class LigerOptions:
    """Options of ``patches: [{name: liger, ...}]``."""

    #: Fuse the output projection with the cross-entropy loss: logits are never materialised while training
    #: (the largest memory saving for big vocabularies). Exclusive with ``cross_entropy``.
    fused_linear_cross_entropy: bool = True
    #: Liger's RMSNorm kernel for every RMSNorm of the model.
    rms_norm: bool = True
    #: Liger's SwiGLU kernel for the MLP blocks.
    swiglu: bool = True
    #: Liger's rotary-embedding kernel (replaces the architecture's ``apply_rotary_pos_emb``, process-wide).
    rope: bool = True
    #: Liger's cross-entropy kernel on materialised logits (replaces ``torch.nn.functional.cross_entropy``,
    #: process-wide). Exclusive with ``fused_linear_cross_entropy``.
    cross_entropy: bool = False

    def __post_init__(self) -> None:
        if self.cross_entropy and self.fused_linear_cross_entropy:
            raise OptionsError(
                "cross_entropy and fused_linear_cross_entropy are exclusive (both compute the loss); "
                "set fused_linear_cross_entropy: false to use cross_entropy"
            )
        if not any(
            (self.fused_linear_cross_entropy, self.rms_norm, self.swiglu, self.rope, self.cross_entropy)
        ):
            raise OptionsError("every kernel is turned off; turn one on, or remove liger from patches")


def unusable_reason() -> str | None:
    """Why the Liger kernels cannot be imported here (missing package), or ``None``. Imports nothing."""
    if importlib.util.find_spec("liger_kernel") is None:
        return (
            f"liger-kernel is not installed; install it with `{PIP_INSTALL}` (it needs a CUDA GPU and triton)"
        )
    if importlib.util.find_spec("triton") is None:
        return (
            "liger-kernel needs triton, which is not installed (CUDA builds of torch ship it); "
            "install the CUDA build of torch or `pip install triton`"
        )
    return None


class LigerPatch(ModelPatch[LigerOptions]):
    """Applies Liger kernels to the loaded model instance (before the adapter), by ``model.config.model_type``."""

    options_schema: ClassVar[type] = LigerOptions
    description: ClassVar[str] = (
        "Liger kernels: fused linear cross-entropy, RMSNorm, SwiGLU, RoPE (llama, qwen2, qwen3; CUDA only)"
    )

    def validate(self, options: LigerOptions, config: RunConfig) -> list[str]:
        problems = []
        installed = importlib.util.find_spec("liger_kernel") is not None
        if not installed:
            problems.append(
                f"{_LABEL}: liger-kernel is not installed; install it with `{PIP_INSTALL}` (CUDA GPUs only)"
            )
        if config.training.use_cpu:
            problems.append(
                f"{_LABEL}: Liger kernels need a CUDA GPU, but training.use_cpu is true; remove liger from "
                "patches for CPU runs"
            )
            return problems
        import torch

        if not torch.cuda.is_available():
            problems.append(
                f"{_LABEL}: Liger kernels need a CUDA GPU and none is visible (torch.cuda.is_available() is "
                "false); run on a CUDA machine or remove liger from patches"
            )
        elif installed and (reason := unusable_reason()):
            problems.append(f"{_LABEL}: {reason}")
        return problems

    def patch_model(self, model: Any, options: LigerOptions) -> Any:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise FtCoreError(
                f"{_LABEL}: model_type {model_type!r} ({type(model).__name__}) is not supported; supported "
                f"model types: {', '.join(SUPPORTED_MODEL_TYPES)}. Remove liger from patches for this model"
            )
        import torch

        if not torch.cuda.is_available():
            raise FtCoreError(
                f"{_LABEL}: Liger kernels need a CUDA GPU and none is visible; remove liger from patches"
            )
        reason = unusable_reason()
        if reason:
            raise FtCoreError(f"{_LABEL}: {reason}")
        try:
            from liger_kernel.transformers import monkey_patch
        except ImportError as exc:
            raise FtCoreError(
                f"{_LABEL}: liger-kernel cannot be imported ({exc}); reinstall it with `{PIP_INSTALL}`"
            ) from exc

        from ft_core_liger.forward import forward_fits, install_fused_forward

        # Liger's own fused forward is written for the transformers 4.x signature (past_key_values, return_dict,
        # cache_position, ...), which transformers keeps before 5.24: there it is used as is; from 5.24 on the
        # instance gets our transformers-5 forward instead (see forward.py).
        own_forward = options.fused_linear_cross_entropy and forward_fits(model)
        apply = getattr(monkey_patch, SUPPORTED_MODEL_TYPES[model_type])
        apply(
            rope=options.rope,
            cross_entropy=options.cross_entropy,
            fused_linear_cross_entropy=options.fused_linear_cross_entropy and not own_forward,
            rms_norm=options.rms_norm,
            swiglu=options.swiglu,
            model=model,
        )
        if own_forward:
            install_fused_forward(model)
        return model
