"""Training through frozen torchao-quantized linear layers.

torchao's quantized weights are tensor subclasses whose ``F.linear`` runs the quantized kernel; they are built for
inference, and autograd through them is either wasteful or impossible:

- weight-only schemes (``int8_weight_only``, ``float8_weight_only``) compute ``x @ dequantized_weight`` as plain
  PyTorch ops, so autograd keeps the dequantized full-precision copy of every weight for the backward pass: the
  activation memory then holds the whole unquantized model again, which is what quantizing was meant to save;
- ``float8_dynamic`` multiplies with ``torch._scaled_mm``, which has no derivative: the backward pass fails with
  ``derivative for aten::_scaled_mm is not implemented``.

:class:`FrozenQuantizedLinear` runs the forward through torchao unchanged (the FP8 matmul where the scheme has
one) inside :class:`_FrozenQuantizedLinearFunction`, which keeps nothing but a reference to the (already resident)
quantized weight, and computes the only gradient a frozen layer needs, the one of its input, as
``grad_output @ dequantize(weight)`` — one transient full-precision copy of one weight at a time — or, with
``fp8_backward``, as an FP8 matmul of the gradient (quantized to e4m3 per row) with the FP8 weight (see
:func:`fp8_grad_input`). LoRA adapters (PEFT's ``TorchaoLoraLinear``) wrap these layers as they wrap plain
quantized ``nn.Linear`` layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from torchao.utils import TorchAOBaseTensor
    from typing_extensions import TypeIs


def is_quantized(weight: Any) -> TypeIs[TorchAOBaseTensor]:
    """Whether ``weight`` is a torchao quantized tensor."""
    from torchao.utils import TorchAOBaseTensor

    return isinstance(weight, TorchAOBaseTensor)


def dequantized(weight: Any, dtype: torch.dtype) -> torch.Tensor:
    """``weight`` as a plain tensor of ``dtype``."""
    return weight.dequantize(dtype) if is_quantized(weight) else weight.to(dtype)


def fp8_backward_supported(weight: Any, grad_output: torch.Tensor) -> bool:
    """Whether :func:`fp8_grad_input` applies: a row- or tensor-scaled 2-D FP8 weight and a bf16 gradient (the
    output dtype of row-scaled ``torch._scaled_mm``)."""
    from torchao.quantization import Float8Tensor

    if not isinstance(weight, Float8Tensor) or weight.qdata.dim() != 2 or grad_output.dtype != torch.bfloat16:
        return False
    out_features = weight.qdata.shape[0]
    return weight.scale.numel() in (1, out_features) and weight.scale.shape[-1] == 1


def fp8_grad_input(grad_output: torch.Tensor, weight: Any) -> torch.Tensor:
    """``grad_output @ W`` on FP8 tensor cores, for an FP8 weight ``W = diag(s) · Wq`` (``[out, in]``, one scale per
    output row, or one for all).

    The weight's scales fold into the gradient's columns, ``(grad_output · s) @ Wq``; the scaled gradient is
    quantized to e4m3 with one scale per row (token), as torchao's row-wise float8 training recipe quantizes its
    gradients, and multiplied with the FP8 weight data by ``torch._scaled_mm`` (exact accumulation; the weight
    data is transposed into the column-major layout the FP8 matmul takes: one transient byte per weight).
    """
    qdata = weight.qdata
    fp8_max = torch.finfo(qdata.dtype).max
    grad = grad_output.reshape(-1, grad_output.shape[-1])
    grad = grad * weight.scale.reshape(1, -1).to(grad.dtype)
    # per-token scales, rounded to the gradient's dtype so that dividing by them (in that dtype: no fp32 copy of
    # the gradient) and multiplying by them in the matmul agree
    scale = (grad.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / fp8_max).to(grad.dtype)
    grad_fp8 = (grad / scale).clamp(-fp8_max, fp8_max).to(qdata.dtype)
    del grad
    ones = torch.ones(1, qdata.shape[1], dtype=torch.float32, device=qdata.device)
    result = torch._scaled_mm(
        grad_fp8,
        qdata.t().contiguous().t(),
        scale_a=scale.float(),
        scale_b=ones,
        out_dtype=grad_output.dtype,
        use_fast_accum=False,
    )
    return result.reshape(*grad_output.shape[:-1], qdata.shape[1])


class _FrozenQuantizedLinearFunction(torch.autograd.Function):
    """``F.linear(x, weight, bias)`` with a frozen (quantized) weight: saves no activation, returns the input's
    gradient (and the bias's, should a bias train)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: Any, bias: torch.Tensor | None, fp8_backward: bool
    ) -> torch.Tensor:
        # The weight is a parameter of the model: holding it on ctx costs no memory, and keeps it out of
        # saved-tensor hooks (activation offloading would otherwise copy the weights to the CPU every step).
        ctx.weight = weight
        ctx.fp8_backward = fp8_backward
        ctx.input_dtype = x.dtype
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(
        ctx: Any, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor | None, None, torch.Tensor | None, None]:
        grad_input = grad_bias = None
        if ctx.needs_input_grad[0]:
            if ctx.fp8_backward and fp8_backward_supported(ctx.weight, grad_output):
                grad_input = fp8_grad_input(grad_output, ctx.weight).to(ctx.input_dtype)
            else:
                weight = dequantized(ctx.weight, grad_output.dtype)
                grad_input = torch.matmul(grad_output, weight).to(ctx.input_dtype)
                del weight
        if ctx.needs_input_grad[2]:
            grad_bias = grad_output.reshape(-1, grad_output.shape[-1]).sum(0)
        return grad_input, None, grad_bias, None


class FrozenQuantizedLinear(nn.Linear):
    """An ``nn.Linear`` whose frozen torchao-quantized weight is trained *through* (see the module docstring).

    :func:`make_trainable_through` turns quantized ``nn.Linear`` layers into this class in place (their weights,
    ``extra_repr`` and hooks stay as they are)."""

    #: Compute the input gradient with an FP8 matmul (FP8 weights, bf16 gradients) instead of dequantizing.
    fp8_backward: bool = False

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.weight.requires_grad:  # someone unfroze it: let torchao (or its error) handle it
            return F.linear(input, self.weight, self.bias)
        if not torch.is_grad_enabled() or not (
            input.requires_grad or (self.bias is not None and self.bias.requires_grad)
        ):
            return F.linear(input, self.weight, self.bias)
        return _FrozenQuantizedLinearFunction.apply(input, self.weight, self.bias, self.fp8_backward)


def make_trainable_through(model: nn.Module, fp8_backward: bool = False) -> list[str]:
    """Turn every ``nn.Linear`` of ``model`` with a torchao-quantized weight into a
    :class:`FrozenQuantizedLinear`; returns their names. Subclasses of ``nn.Linear`` keep their own forward (and
    torchao's autograd behaviour) and are not listed. ``fp8_backward``: see :func:`fp8_grad_input`."""
    names = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and is_quantized(module.weight):
            if type(module) is nn.Linear:
                module.__class__ = FrozenQuantizedLinear
            if isinstance(module, FrozenQuantizedLinear):
                module.fp8_backward = fp8_backward
                names.append(name)
    return names


def weight_bytes(module: nn.Linear) -> int:
    """Bytes held by the weight of a linear layer: the quantized data and its scales for a torchao weight."""
    weight = module.weight
    if not is_quantized(weight):
        return weight.numel() * weight.element_size()
    names, _ = weight.__tensor_flatten__()
    return sum(
        inner.numel() * inner.element_size()
        for inner in (getattr(weight, n) for n in names)
        if isinstance(inner, torch.Tensor)
    )
