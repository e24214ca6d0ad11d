"""A leaner 4-bit matmul for training (``fast_matmul: true``, the default for 4-bit).

bitsandbytes' ``matmul_4bit`` costs far more host time than GPU time when it trains: per call it dispatches its
``gemm_4bit`` op, which (with double quantization) dequantizes the 8-bit scales, adds their offset, dequantizes the
4-bit weight and multiplies, and its backward dequantizes the scales once more. A QLoRA step of an 8B model makes
~670 such calls, and profiles show the GPU waiting for them. The base is frozen, so the scales never change:
:func:`enable_fast_matmul` dequantizes them once (fp32, 3 bytes more per 64 weights than double quantization keeps)
and swaps each layer's class for :class:`FastLinear4bit`, whose training forward is one dequantization op and one
matmul, and whose backward is one dequantization op and one matmul: the same operations as bitsandbytes' own
dequantize-then-multiply path, so the results are the same.

Small batches without autograd (generation, small evaluation batches) keep bitsandbytes' own path, whose
small-batch kernels are faster than dequantizing; above :data:`DEQUANTIZE_ABOVE_ROWS` rows bitsandbytes itself
dequantizes and multiplies, so the lean path serves those too (the forward of a reentrant checkpoint runs without
autograd).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import bitsandbytes as bnb
import torch
from torch.nn import functional

#: Rows (tokens) above which bitsandbytes' own ``gemm_4bit`` dequantizes and multiplies on every GPU it tunes for
#: (its small-batch kernels win below this only).
DEQUANTIZE_ABOVE_ROWS = 1536


def _scales(module: FastLinear4bit) -> torch.Tensor:
    """The fp32 per-block scales of ``module``'s 4-bit weight (the double-quantized ones dequantized once)."""
    state = module.weight.quant_state
    cached = getattr(module, "_ft_scales", None)
    if cached is not None and cached[0] is state and cached[1].device == module.weight.device:
        return cached[1]
    if state.nested:
        scales = bnb.functional.dequantize_blockwise(state.absmax, state.state2) + state.offset
    else:
        scales = state.absmax
    scales = scales.float()
    module._ft_scales = (state, scales)
    return scales


@functools.cache
def _cuda_dequantize() -> Callable[..., None] | None:
    """bitsandbytes' CUDA implementation of its ``dequantize_4bit`` op, called without the op's dispatch (a third
    of the op's host time), where this bitsandbytes release has it with the known signature; else ``None``."""
    try:
        from bitsandbytes.backends.cuda import ops
    except Exception:  # no CUDA backend in this build
        return None
    impl = getattr(ops, "_dequantize_4bit_impl", None)
    if impl is None:
        return None
    expected = ["A", "absmax", "blocksize", "quant_type", "dtype", "out"]
    return impl if list(inspect.signature(impl).parameters) == expected else None


def dequantized_weight(module: FastLinear4bit, dtype: torch.dtype) -> torch.Tensor:
    """``module``'s weight as a ``[out_features, in_features]`` tensor of ``dtype`` (one bitsandbytes kernel)."""
    state, packed = module.weight.quant_state, module.weight.data
    kernel = _cuda_dequantize() if packed.device.type == "cuda" else None
    if kernel is None:
        return torch.ops.bitsandbytes.dequantize_4bit.default(
            packed, _scales(module), state.blocksize, state.quant_type, state.shape, dtype
        )
    out = torch.empty(state.shape, dtype=dtype, device=packed.device)
    kernel(packed, _scales(module), state.blocksize, state.quant_type, dtype, out)
    return out


class _Dequantized4bitMatmul(torch.autograd.Function):
    """``x @ W.T + bias`` with ``W`` dequantized for the forward and again for the backward (never kept)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, module: FastLinear4bit, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.module = module
        return functional.linear(x, dequantized_weight(module, x.dtype), bias)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None
        return grad_output @ dequantized_weight(ctx.module, grad_output.dtype), None, None


class FastLinear4bit(bnb.nn.Linear4bit):
    """A ``bnb.nn.Linear4bit`` (still an instance of it: PEFT wraps it as usual) whose training forward and
    backward are :class:`_Dequantized4bitMatmul` (and whose forward without autograd is too, above
    :data:`DEQUANTIZE_ABOVE_ROWS` rows)."""

    weight: bnb.nn.Params4bit  # bitsandbytes replaces nn.Linear's weight but keeps its annotation
    #: The weight's quantization state and its scales dequantized to fp32 (:func:`_scales`).
    _ft_scales: tuple[bnb.functional.QuantState, torch.Tensor]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias: torch.Tensor | None = self.bias
        if (
            x.numel() == 0
            or not (torch.is_grad_enabled() or x.numel() // x.shape[-1] > DEQUANTIZE_ABOVE_ROWS)
            or getattr(self.weight, "quant_state", None) is None
            or getattr(self.weight.quant_state, "packing_format_for_cpu", False)
            or (bias is not None and bias.requires_grad)
        ):
            return super().forward(x)
        if not self.compute_type_is_set:
            self.set_compute_type(x)
            self.compute_type_is_set = True
        input_dtype = x.dtype
        if self.compute_dtype is not None:
            x = x.to(self.compute_dtype)
        if bias is not None:
            bias = bias.to(x.dtype)
        return _Dequantized4bitMatmul.apply(x, self, bias).to(input_dtype)


def enable_fast_matmul(modules: list[bnb.nn.Linear4bit]) -> int:
    """Make ``modules`` :class:`FastLinear4bit` and dequantize their scales now (so that memory planning after
    ``prepare`` sees them); returns how many layers were switched."""
    switched = 0
    for module in modules:
        if type(module) is bnb.nn.Linear4bit:
            module.__class__ = FastLinear4bit
        if isinstance(module, FastLinear4bit):
            _scales(module)
            switched += 1
    return switched
