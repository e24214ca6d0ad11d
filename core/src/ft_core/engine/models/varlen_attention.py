"""``torch_varlen``: PyTorch's own varlen flash-attention kernel (``torch.nn.attention.varlen``) for packed rows.

Packed rows need an attention that keeps them apart. flash-attn's varlen kernels do it per row; without flash-attn,
transformers keeps them apart in ``sdpa`` with a dense block-causal mask, which sends SDPA to its memory-efficient
kernel and does the masked-out work too (36% of the GPU time of a packed Llama-3-8B step, docs/performance.md).
PyTorch ships the flash-attention 2 kernels itself (``torch.nn.attention.varlen.varlen_attn``, CUDA, bf16/fp16):
this module registers them with transformers as the attention implementation ``torch_varlen``, which packed GPU
runs with ``model.attn_implementation: auto`` switch to (``ft_core.engine.training.packing``).

Each call reads the row boundaries (``cu_seq_lens_q/k``, ``max_length_q/k``) the packing collator passes. A call
without them (a padded batch, generation with a cache) or that the kernel cannot serve exactly (fp32, dropout,
soft-capping, a sliding window shorter than the rows, a non-default scale on a torch without ``scale``) runs
transformers' own ``sdpa`` with a causal mask built from the padding mask: always correct, never silently different.

torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import inspect
import math
from functools import cache
from typing import Any

#: The name transformers knows the implementation by (``model.config._attn_implementation``).
NAME = "torch_varlen"


@cache
def _kernel_parameters() -> frozenset[str]:
    """The keyword parameters of this torch's ``varlen_attn`` (its signature changed between releases)."""
    from torch.nn.attention.varlen import varlen_attn

    return frozenset(inspect.signature(varlen_attn).parameters)


def unavailable_reason(dtype: Any, head_dim: int | None = None) -> str | None:
    """Why ``torch_varlen`` cannot run here for weights of ``dtype`` (``None``: it can)."""
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU"
    try:
        _kernel_parameters()
    except ImportError:
        return f"torch {torch.__version__} has no torch.nn.attention.varlen"
    if not torch.backends.cuda.is_flash_attention_available():
        return "this torch build has no flash-attention kernels"
    if torch.cuda.get_device_capability() < (8, 0):
        return "flash attention needs an Ampere or newer GPU"
    if dtype not in (torch.bfloat16, torch.float16):
        return f"flash attention needs bf16/fp16 weights, the model has {str(dtype).split('.')[-1]}"
    if head_dim is not None and head_dim > 256:
        return f"flash attention takes head dimensions up to 256, the model has {head_dim}"
    return None


def register() -> None:
    """Make ``torch_varlen`` known to transformers (idempotent): the attention function, and the mask function
    flash attention uses (no mask for packed rows; the 2-D padding mask otherwise)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, flash_attention_mask

    AttentionInterface.register(NAME, varlen_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, flash_attention_mask)


def _kernel_call(query: Any, key: Any, value: Any, kwargs: dict[str, Any], scaling: float | None) -> Any:
    """``varlen_attn`` on one packed row (``query``: heads x tokens x dim), or ``None`` when this torch's kernel
    cannot honour ``scaling`` exactly."""
    from torch.nn.attention.varlen import varlen_attn

    parameters = _kernel_parameters()
    options: dict[str, Any] = {}
    if "is_causal" in parameters:
        options["is_causal"] = True
    else:
        options["window_size"] = (-1, 0)
    head_dim = query.shape[-1]
    if scaling is not None and "scale" in parameters:
        options["scale"] = scaling
    elif scaling is not None and not math.isclose(scaling, head_dim**-0.5, rel_tol=1e-6):
        return None
    if "enable_gqa" in parameters and key.shape[0] != query.shape[0]:
        options["enable_gqa"] = True
    return varlen_attn(
        query.transpose(0, 1),
        key.transpose(0, 1),
        value.transpose(0, 1),
        kwargs["cu_seq_lens_q"],
        kwargs["cu_seq_lens_k"],
        int(kwargs["max_length_q"]),
        int(kwargs["max_length_k"]),
        **options,
    )


def _kernel_can_serve(module: Any, query: Any, dropout: float, kwargs: dict[str, Any]) -> bool:
    import torch

    if kwargs.get("cu_seq_lens_q") is None or kwargs.get("cu_seq_lens_k") is None or query.shape[0] != 1:
        return False
    if not query.is_cuda or query.dtype not in (torch.bfloat16, torch.float16) or query.shape[-1] > 256:
        return False
    if dropout or kwargs.get("softcap") or not getattr(module, "is_causal", True):
        return False
    window = kwargs.get("sliding_window")
    return window is None or window >= int(kwargs.get("max_length_k") or 0)


def varlen_attention_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention-function contract: ``query`` batch x heads x tokens x dim in, batch x tokens x
    heads x dim out. Packed rows go to the varlen kernel; anything else to ``sdpa`` (see the module docstring)."""
    if _kernel_can_serve(module, query, dropout, kwargs):
        output = _kernel_call(query[0], key[0], value[0], kwargs, scaling)
        if output is not None:
            return output.unsqueeze(0), None
    return _sdpa_fallback(module, query, key, value, attention_mask, dropout, scaling, kwargs)


def _sdpa_fallback(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float,
    scaling: float | None,
    kwargs: dict[str, Any],
) -> tuple[Any, None]:
    """transformers' ``sdpa`` attention with the boolean mask this call needs: block-causal for packed rows
    (``cu_seq_lens_k``), causal-and-padding for a 2-D padding mask (what flash attention's mask function hands
    over), narrowed to the sliding window when the model has one."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if kwargs.get("softcap"):
        raise NotImplementedError(
            f"{NAME} cannot soft-cap attention logits; use model.attn_implementation: eager"
        )
    q_len, k_len, device = query.shape[-2], key.shape[-2], query.device
    causal = getattr(module, "is_causal", True)
    positions = torch.arange(k_len, device=device)
    query_positions = positions[k_len - q_len :]
    before = query_positions[:, None] >= positions[None, :]
    keep = None
    boundaries = kwargs.get("cu_seq_lens_k")
    if boundaries is not None and query.shape[0] == 1 and q_len == k_len:
        lengths = (boundaries[1:] - boundaries[:-1]).to(device)
        row = torch.repeat_interleave(torch.arange(lengths.numel(), device=device), lengths)
        keep = ((row[:, None] == row[None, :]) & before)[None, None]
    elif attention_mask is not None and attention_mask.dim() == 2:
        keep = attention_mask[:, None, None, -k_len:].bool()
        keep = keep & before if causal else keep
    elif attention_mask is None and causal and 1 < q_len < k_len:
        keep = before[None, None]  # new tokens after a cache: SDPA's is_causal would align them top-left
    else:
        keep = attention_mask
    window = kwargs.get("sliding_window")
    if window is not None and window < k_len:
        near = (query_positions[:, None] - positions[None, :]) < window
        keep = (before if causal else near) if keep is None else keep
        keep = keep & near
    fallback_kwargs = {k: v for k, v in kwargs.items() if not k.startswith(("cu_seq_lens", "max_length"))}
    return sdpa_attention_forward(
        module,
        query,
        key,
        value,
        keep,
        dropout=dropout,
        scaling=scaling,
        is_causal=causal if keep is None else False,
        **fallback_kwargs,
    )
