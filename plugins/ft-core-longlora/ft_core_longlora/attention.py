"""Shifted sparse attention (S²-Attn, LongLoRA: Chen et al. 2023), registered as a transformers attention function.

While a module trains, its tokens are split into groups of ``group_size_ratio x L`` consecutive tokens and each
token attends only inside its group; half of the heads see the sequence shifted by half a group, so information
flows between neighbouring groups. Each group keeps the attention mask transformers built for the whole sequence
(causal, padding, packed rows): a group's mask is its diagonal block of the full mask, shifted along with the heads.
The group that wraps around the end of the shifted sequence therefore never attends to a later token (LongLoRA's
reference code applies a plain causal mask there, which lets the sequence's first tokens see its last ones).

With one group covering the whole sequence the result is exactly full attention (shifting is a permutation of the
tokens with their mask). In eval mode, and for calls with earlier tokens in a KV cache (generation), the function is
transformers' SDPA attention unchanged. The kernel is PyTorch's ``scaled_dot_product_attention``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional

from ft_core.api import FtCoreError

#: Name of the attention function (``config._attn_implementation``) this module registers.
ATTENTION_NAME = "ft_core_s2attn"
#: Attribute of an attention module holding its group size ratio (set by the patch; absent = plain attention).
RATIO_ATTRIBUTE = "_ft_core_s2attn_ratio"


def register() -> None:
    """Register :func:`s2_attention_forward` with transformers' ``AttentionInterface``, with the SDPA mask builder
    (boolean 4D masks, block-causal for packed rows), under :data:`ATTENTION_NAME`. Idempotent."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, s2_attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


def group_size(length: int, ratio: float) -> int:
    """Tokens per group for a sequence of ``length`` tokens: ``round(ratio x length)``, at least 1."""
    return max(1, min(length, round(ratio * length)))


def _allowed(
    attention_mask: torch.Tensor | None, batch: int, length: int, device: torch.device
) -> torch.Tensor:
    """The boolean ``(batch, 1, L, L)`` mask of which key each query may attend to."""
    if attention_mask is None:
        causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        return causal.expand(batch, 1, length, length)
    if attention_mask.dim() != 4:
        raise FtCoreError(
            f"shift_attn: expected a 4D attention mask, got shape {tuple(attention_mask.shape)}; S²-Attn works with "
            "transformers' SDPA masks (model.attn_implementation: sdpa or auto)"
        )
    allowed = attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
    return allowed[..., -length:].expand(batch, 1, length, length)


def _grouped(states: torch.Tensor, group: int) -> torch.Tensor:
    """``(B, H, L, D)`` -> ``(B * n, H, group, D)``, the sequence zero-padded to ``n x group`` tokens."""
    batch, heads, length, dim = states.shape
    padded = -(-length // group) * group
    if padded != length:
        states = functional.pad(states, (0, 0, 0, padded - length))
    count = padded // group
    return (
        states.view(batch, heads, count, group, dim).transpose(1, 2).reshape(batch * count, heads, group, dim)
    )


def _ungrouped(states: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """Inverse of :func:`_grouped`: ``(B * n, H, group, D)`` -> ``(B, H, L, D)``."""
    _, heads, group, dim = states.shape
    count = states.shape[0] // batch
    return (
        states.view(batch, count, heads, group, dim)
        .transpose(1, 2)
        .reshape(batch, heads, count * group, dim)[:, :, :length]
    )


def _block_masks(allowed: torch.Tensor, group: int) -> torch.Tensor:
    """The diagonal ``group x group`` blocks of ``allowed`` ``(B, 1, L, L)`` as ``(B * n, 1, group, group)``; the
    padding tokens of the last group attend only to themselves, and every token may attend to itself (a padding
    token of the batch attends to nothing else, and a row with no key at all would give NaN)."""
    batch, _, length, _ = allowed.shape
    padded = -(-length // group) * group
    if padded != length:
        allowed = functional.pad(allowed, (0, padded - length, 0, padded - length), value=False)
    count = padded // group
    index = torch.arange(count, device=allowed.device)
    blocks = allowed.reshape(batch, count, group, count, group)[:, index, :, index, :]  # (n, B, group, group)
    eye = torch.eye(group, dtype=torch.bool, device=allowed.device)
    return (blocks.transpose(0, 1) | eye).reshape(batch * count, 1, group, group)


def _group_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    allowed: torch.Tensor,
    group: int,
    dropout: float,
    scaling: float | None,
) -> torch.Tensor:
    """Attention of each group of ``group`` tokens within itself; ``(B, H, L, D)`` in and out."""
    batch, _, length, _ = query.shape
    output = functional.scaled_dot_product_attention(
        _grouped(query, group),
        _grouped(key, group),
        _grouped(value, group),
        attn_mask=_block_masks(allowed, group),
        dropout_p=dropout,
        scale=scaling,
    )
    return _ungrouped(output, batch, length)


def shifted_sparse_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    ratio: float,
    dropout: float = 0.0,
    scaling: float | None = None,
) -> torch.Tensor:
    """S²-Attn of ``query`` ``(B, H, L, D)`` over ``key`` / ``value`` ``(B, H_kv, L, D)``: groups of
    :func:`group_size` tokens, the second half of the heads shifted by half a group. Returns ``(B, L, H, D)``."""
    batch, heads, length, _ = query.shape
    repeats = heads // key.shape[1]
    if repeats > 1:
        key = key.repeat_interleave(repeats, dim=1)
        value = value.repeat_interleave(repeats, dim=1)
    group = group_size(length, ratio)
    allowed = _allowed(attention_mask, batch, length, query.device)
    half = heads // 2
    shift = group // 2
    plain = _group_attention(
        query[:, :half], key[:, :half], value[:, :half], allowed, group, dropout, scaling
    )

    def rolled(states: torch.Tensor) -> torch.Tensor:
        return states[:, half:].roll(-shift, dims=2)

    shifted = _group_attention(
        rolled(query),
        rolled(key),
        rolled(value),
        allowed.roll((-shift, -shift), dims=(2, 3)),
        group,
        dropout,
        scaling,
    ).roll(shift, dims=2)
    return torch.cat([plain, shifted], dim=1).transpose(1, 2).contiguous()


def s2_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The registered attention function: S²-Attn while ``module`` trains (and carries a ratio), else SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    ratio = getattr(module, RATIO_ATTRIBUTE, None)
    if ratio is None or not module.training or key.shape[2] != query.shape[2]:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if kwargs.get("softcap") is not None:
        raise FtCoreError(
            "shift_attn: this model soft-caps its attention logits, which S²-Attn does not support"
        )
    return shifted_sparse_attention(query, key, value, attention_mask, float(ratio), dropout, scaling), None
