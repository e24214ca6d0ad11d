"""A leaner forward for PEFT's LoRA linear layers (plain and bitsandbytes 4-bit), for training.

Profiles of LoRA training with activation checkpointing on an H200 show the GPU waiting for the host: each decoder
layer runs seven LoRA layers, each a PEFT ``forward`` (argument checks, a loop over active adapters, three
sub-module calls), and its update costs a multiplication by the scaling and an addition, each a kernel forward and
backward. :func:`make_lean` swaps the class of each PEFT LoRA layer for a subclass whose forward, in the common
case — one active adapter, plain LoRA (no DoRA or other variant), not merged, no per-call adapter names, no hooks on
the adapter matrices — computes ``base(x) + scaling · B(A(dropout(x)))`` directly: ``F.linear`` on the adapter
weights and one ``torch.add(..., alpha=scaling)``. Every other case runs PEFT's own forward. The arithmetic is
PEFT's, except that the scaling is applied inside the addition (one rounding instead of two in half precision;
exactly PEFT's result when the scaling is a power of two, as ``alpha = 2 · rank`` gives).

The subclasses are PEFT's classes (``isinstance`` holds): saving, merging and unloading are unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional


def _needs_cast(x: Any, dtype: torch.dtype) -> bool:
    """Whether an adapter input must be cast to the adapter's ``dtype``: outside autocast only (under autocast the
    adapter's matmuls run in half precision whatever the input's dtype). Outside autocast — a stage generating
    inside a training step (ppo, grpo), inference — it must match, whatever PEFT's casting switch says (the plugin
    turns the switch off while an autocast run trains)."""
    return isinstance(x, torch.Tensor) and x.dtype != dtype and not torch.is_autocast_enabled(x.device.type)


def _lean_update(layer: Any, x: torch.Tensor) -> torch.Tensor | None:
    """``base(x) + scaling · B(A(dropout(x)))`` for the common case (see the module docstring), else ``None``."""
    if layer.disable_adapters or layer.merged:
        return None
    adapters = layer.active_adapters
    if len(adapters) != 1:
        return None
    name = adapters[0]
    if name not in layer.lora_A or name in layer.lora_variant:
        return None
    scaling = layer.scaling[name]
    if not isinstance(scaling, (int, float)):  # torch.add takes a number as alpha
        return None
    lora_a, lora_b = layer.lora_A[name], layer.lora_B[name]
    if type(lora_a) is not nn.Linear or type(lora_b) is not nn.Linear:
        return None
    if (
        lora_a._forward_hooks
        or lora_a._forward_pre_hooks
        or lora_b._forward_hooks
        or lora_b._forward_pre_hooks
    ):
        return None
    result = layer.base_layer(x)
    result_dtype = result.dtype
    weight_dtype = lora_a.weight.dtype
    if _needs_cast(x, weight_dtype):
        x = x.to(weight_dtype)
    dropout = layer.lora_dropout[name]
    if not isinstance(dropout, nn.Identity):
        x = dropout(x)
    update = functional.linear(functional.linear(x, lora_a.weight, lora_a.bias), lora_b.weight, lora_b.bias)
    return torch.add(result, update, alpha=scaling).to(result_dtype)


def _lean_class(peft_class: Any) -> type:
    """A subclass of ``peft_class`` whose forward tries :func:`_lean_update` first, registered in this module
    under ``Lean<name>`` (so that a pickled model finds it)."""
    name = f"Lean{peft_class.__name__}"
    existing = globals().get(name)
    if isinstance(existing, type) and issubclass(existing, peft_class):
        return existing

    def forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if not args and not kwargs:
            result = _lean_update(self, x)
            if result is not None:
                return result
        return peft_class.forward(self, x, *args, **kwargs)

    def _cast_input_dtype(self: Any, x: Any, dtype: torch.dtype) -> Any:
        """PEFT's cast, kept on outside autocast even while the casting switch is off (:func:`_needs_cast`)."""
        if _needs_cast(x, dtype):
            return x.to(dtype)
        return peft_class._cast_input_dtype(self, x, dtype)

    members = {"forward": forward, "_cast_input_dtype": _cast_input_dtype, "__module__": __name__}
    lean = type(name, (peft_class,), {**members, "__qualname__": name})
    globals()[name] = lean
    return lean


def _peft_classes() -> list[type]:
    """PEFT's LoRA linear classes: the plain one, and the bitsandbytes 4-bit one where bitsandbytes is installed."""
    from peft.tuners.lora import layer

    classes: list[type] = [layer.Linear]
    try:
        from peft.tuners.lora import bnb
    except ImportError:
        return classes
    if hasattr(bnb, "Linear4bit"):
        classes.append(bnb.Linear4bit)
    return classes


def make_lean(model: nn.Module) -> int:
    """Give every PEFT LoRA linear layer of ``model`` (plain or bitsandbytes 4-bit) the lean forward; returns how
    many layers changed. Subclasses of PEFT's layers (other libraries' own) are left as they are."""
    lean = {peft_class: _lean_class(peft_class) for peft_class in _peft_classes()}
    changed = 0
    for module in model.modules():
        if type(module) in lean:
            module.__class__ = lean[type(module)]
            changed += 1
    return changed
