"""The ``liger`` model patch: Liger kernels on a loaded model of any type liger-kernel supports (CUDA GPUs only).

Which model types are patched, and how, is liger-kernel's own ``MODEL_TYPE_TO_APPLY_LIGER_FN`` mapping (read when the
patch applies, so a newer liger-kernel adds model types without a change here).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.api import FtCoreError, ModelPatch, OptionsError, RunConfig, mark_fused_loss

#: The pip command that installs the Liger version this plugin is written and tested against.
PIP_INSTALL = "pip install liger-kernel==0.8.5"

#: The model types of ft-core's family plugins that liger-kernel 0.8.5 patches (for documentation and messages; what
#: is patched at run time is every model type in liger-kernel's own ``MODEL_TYPE_TO_APPLY_LIGER_FN``).
SUPPORTED_MODEL_TYPES: tuple[str, ...] = (
    "llama",
    "qwen2",
    "qwen2_vl",
    "qwen2_5_vl",
    "qwen3",
    "qwen3_moe",
    "mistral",
    "mixtral",
    "gemma",
    "gemma2",
    "gemma3_text",
    "gemma3",
    "paligemma",
    "llava",
    "phi3",
    "olmo2",
    "glm4",
    "deepseek_v2",
    "deepseek_v3",
)

#: Model types whose transformers-5 causal-LM forward is ``LlamaForCausalLM.forward`` word for word (checked by the
#: tests against the installed transformers): the fused loss uses this plugin's forward (``forward.py``) for them;
#: any other model type gets Liger's own fused forward.
FUSED_FORWARD_MODEL_TYPES: frozenset[str] = frozenset(
    {"llama", "qwen2", "qwen3", "mistral", "ministral", "gemma", "phi3", "olmo2", "olmo3", "glm4", "smollm3"}
)

_LABEL = "patches[liger]"


@dataclass(frozen=True)
class LigerOptions:
    """Options of ``patches: [{name: liger, ...}]``."""

    #: Fuse the output projection with the cross-entropy loss: logits are never materialised while training
    #: (the largest memory saving for big vocabularies). Exclusive with ``cross_entropy``.
    fused_linear_cross_entropy: bool = True
    #: Liger's RMSNorm kernel for every RMSNorm of the model.
    rms_norm: bool = True
    #: Liger's gated-MLP kernel for the MLP blocks (SwiGLU; GEGLU on Gemma-family models).
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


def liger_apply_functions() -> dict[str, Callable[..., None]]:
    """liger-kernel's ``MODEL_TYPE_TO_APPLY_LIGER_FN`` (``model_type`` -> ``apply_liger_kernel_to_*``); imports
    liger-kernel (and torch, transformers, triton): call it only when the patch is about to apply."""
    try:
        from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN
    except ImportError as exc:
        raise FtCoreError(
            f"{_LABEL}: liger-kernel cannot be imported ({exc}); reinstall it with `{PIP_INSTALL}`"
        ) from exc
    return MODEL_TYPE_TO_APPLY_LIGER_FN


def unsupported_reason(model: Any) -> str | None:
    """Why liger-kernel has no patch for ``model``'s ``config.model_type``, or ``None``. Imports liger-kernel."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in liger_apply_functions():
        return None
    supported = ", ".join(SUPPORTED_MODEL_TYPES)
    return f"model_type {model_type!r} is not supported by liger-kernel (supported: {supported}, ...)"


def apply_kwargs(
    apply: Callable[..., None], options: LigerOptions, *, fused_linear_cross_entropy: bool
) -> dict:
    """The keyword arguments for Liger's ``apply`` function: each kernel it takes, from ``options``. A kernel whose
    default there is off (RoPE on GLM-4 and DeepSeek, the fused loss on Granite: Liger has no fitting kernel)
    stays off; ``swiglu`` also drives Gemma's ``geglu``."""
    import inspect

    wanted = {
        "rope": options.rope,
        "cross_entropy": options.cross_entropy,
        "fused_linear_cross_entropy": fused_linear_cross_entropy,
        "rms_norm": options.rms_norm,
        "swiglu": options.swiglu,
        "geglu": options.swiglu,
    }
    parameters = inspect.signature(apply).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):  # llava: to its text model
        wanted.pop("geglu")
        return wanted
    kwargs = {}
    for name, value in wanted.items():
        if name in parameters:
            default = parameters[name].default
            kwargs[name] = value and (default is not False or name == "cross_entropy")
    return kwargs


class LigerPatch(ModelPatch[LigerOptions]):
    """Applies Liger kernels to the loaded model instance (before the adapter), by ``model.config.model_type``."""

    options_schema: ClassVar[type] = LigerOptions
    description: ClassVar[str] = (
        "Liger kernels: fused linear cross-entropy, RMSNorm, SwiGLU/GEGLU, RoPE (every model type liger-kernel "
        "supports: llama, qwen, mistral, gemma, phi3, ...; CUDA only)"
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
        import torch

        if not torch.cuda.is_available():
            raise FtCoreError(
                f"{_LABEL}: Liger kernels need a CUDA GPU and none is visible; remove liger from patches"
            )
        reason = unusable_reason()
        if reason:
            raise FtCoreError(f"{_LABEL}: {reason}")
        reason = unsupported_reason(model)
        if reason:
            raise FtCoreError(
                f"{_LABEL}: {reason} ({type(model).__name__}). Remove liger from patches for this model"
            )
        from ft_core_liger.forward import forward_fits, install_fused_forward

        # Liger's own fused forward is written for the transformers 4.x signature (past_key_values, return_dict,
        # cache_position, ...), which transformers keeps before 5.24: there it is used as is; from 5.24 on a model
        # whose forward is Llama's gets our transformers-5 forward instead (see forward.py).
        model_type = model.config.model_type
        own_forward = (
            options.fused_linear_cross_entropy
            and model_type in FUSED_FORWARD_MODEL_TYPES
            and forward_fits(model)
        )
        apply = liger_apply_functions()[model_type]
        kwargs = apply_kwargs(
            apply, options, fused_linear_cross_entropy=options.fused_linear_cross_entropy and not own_forward
        )
        apply(model=model, **kwargs)
        if own_forward:
            install_fused_forward(model)
        if own_forward or kwargs.get("fused_linear_cross_entropy"):
            mark_fused_loss(model)  # no logits: the engine's memory estimates leave them out
        return model
