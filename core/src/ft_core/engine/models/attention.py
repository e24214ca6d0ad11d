"""Pick the attention implementation a model loads with (``model.attn_implementation: auto``).

``auto`` chooses the fastest kernel this machine can run, in this order:

- ``flash_attention_3`` on a CUDA Hopper GPU (compute capability 9.x) with flash-attn 3 installed (its
  ``flash_attn_interface`` module) and a 16-bit dtype;
- ``flash_attention_2`` on a CUDA GPU with flash-attn 2 installed (``flash_attn``) and a 16-bit dtype;
- ``sdpa`` (PyTorch's scaled-dot-product attention, which itself dispatches to its flash / memory-efficient
  kernels on GPUs) otherwise, on the CPU included;
- the transformers default when the model class supports neither flash-attn nor sdpa (``eager``), or is not
  part of transformers (remote code).

An explicit value (``sdpa``, ``eager``, ``flash_attention_2``, ...) is used as given; ``null`` leaves the choice to
transformers. The choice comes with a reason, logged once (``attention: sdpa (flash-attn not installed)``) and
recorded in the run manifest.

torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

#: The import name of each flash-attn generation (flash-attn 3 installs ``flash_attn_interface``).
FLASH_PACKAGES = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}


@dataclass(frozen=True)
class AttentionChoice:
    """The implementation to pass to ``from_pretrained`` (``None``: the transformers default) and why."""

    implementation: str | None
    reason: str

    def log_line(self) -> str:
        return f"attention: {self.implementation or 'transformers default'} ({self.reason})"

    def manifest(self) -> dict[str, Any]:
        return {"implementation": self.implementation, "reason": self.reason}


def installed(package: str) -> bool:
    """Whether ``package`` can be imported (nothing is imported)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _cuda_capability() -> tuple[int, int] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability())  # type: ignore[return-value]


def _model_class(model_config: Any) -> Any:
    """The transformers causal-LM class of ``model_config``, or ``None`` (remote code, unknown architectures)."""
    try:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM._model_mapping[type(model_config)]
    except Exception:  # unknown / remote-code architectures
        return None


def model_class_supports(model_config: Any, implementation: str) -> bool:
    """Whether the causal-LM class of ``model_config`` declares support for ``implementation`` (``sdpa`` or a
    flash-attn one); False when the class is not known to transformers (remote code)."""
    cls = _model_class(model_config)
    if cls is None:
        return False
    flag = "_supports_sdpa" if implementation == "sdpa" else "_supports_flash_attn"
    return bool(getattr(cls, flag, False))


def choose_attention(
    requested: str | None, model_config: Any, *, on_gpu: bool, dtype: Any
) -> AttentionChoice:
    """The attention implementation for a model of ``model_config`` loaded in ``dtype``.

    ``requested`` is ``model.attn_implementation``: ``auto`` picks as described in the module docstring; any other
    value (``None`` included) is used as given.
    """
    if requested is None:
        return AttentionChoice(None, "model.attn_implementation: null")
    if requested != "auto":
        return AttentionChoice(requested, "set in model.attn_implementation")
    import torch

    if _model_class(model_config) is None:
        return AttentionChoice(None, "a model class outside transformers (remote code) chooses its own")
    sixteen_bit = dtype in (torch.bfloat16, torch.float16)
    capability = _cuda_capability() if on_gpu else None
    reasons: list[str] = []
    if capability is None:
        reasons.append("CPU run")
    else:
        fa3, fa2 = (
            installed(FLASH_PACKAGES["flash_attention_3"]),
            installed(FLASH_PACKAGES["flash_attention_2"]),
        )
        if not sixteen_bit and (fa3 or fa2):
            reasons.append(
                f"flash-attn needs bf16/fp16 weights, the model loads in {str(dtype).split('.')[-1]}"
            )
        elif not model_class_supports(model_config, "flash_attention_2") and (fa3 or fa2):
            reasons.append(f"{getattr(model_config, 'model_type', 'this model')} does not support flash-attn")
        elif fa3 and capability[0] == 9:
            return AttentionChoice("flash_attention_3", "flash-attn 3 on a Hopper GPU")
        elif fa2:
            note = " (flash-attn 3 is for Hopper GPUs)" if fa3 else ""
            return AttentionChoice("flash_attention_2", f"flash-attn 2 installed{note}")
        else:
            reasons.append("flash-attn not installed")
    if model_class_supports(model_config, "sdpa"):
        return AttentionChoice("sdpa", "; ".join(reasons))
    return AttentionChoice(None, "; ".join([*reasons, "the model does not support sdpa"]))


#: Attention implementations with a varlen kernel: packing makes them strictly faster (``auto`` packs with them).
VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3", "flex_attention", "torch_varlen")
#: Attention implementations that keep packed rows apart through transformers' block-causal mask (a dense mask
#: over the whole packed row: correct, but its cost grows with the square of the packed length).
MASKED_ATTENTION = ("sdpa", "eager")


def is_varlen(attention: str | None) -> bool:
    """Whether ``attention`` runs a varlen kernel on packed rows (flash attention, also from a kernels hub repo,
    or flex attention)."""
    name = (attention or "").lower()
    return name in VARLEN_ATTENTION or "flash" in name


def keeps_rows_apart(attention: str | None) -> bool:
    """Whether transformers keeps packed rows apart with ``attention`` (``None`` = its default, sdpa; ``auto`` =
    flash attention or sdpa, as ``model.attn_implementation: auto`` picks)."""
    return attention in (None, "auto") or attention in MASKED_ATTENTION or is_varlen(attention)
