"""Padding-free forward passes over a stage's own padded batches (``data.packing`` for stages declaring
``packs_padded_batches``, e.g. ``dpo``, whose trainer pads chosen and rejected answers itself).

The batches keep their rows (the same rows per step as the padded run); only the model's forward pass changes. A
forward pre-hook on the model the trainer calls concatenates the real tokens of a right-padded ``input_ids`` /
``attention_mask`` batch into one row of batch 1, with ``position_ids`` restarting at 0 for every row and no
attention mask, as the packing collator of ``supports_packing`` stages does; ``labels`` follow, with each row's
first token ignored so that no row is trained to predict it from the row before. The attention keeps the rows
apart as for any packed batch (a varlen kernel reading ``cu_seq_lens_*``, else transformers' block-causal mask
from the position ids). A forward hook then gives every per-token output its padded shape back (``logits``,
TRL's fused-head ``log_probs`` / ``entropy`` ..., padded positions zero), so the stage's loss code runs unchanged.
No compute goes to padding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ft_core.api.context import IGNORE_INDEX

if TYPE_CHECKING:
    import torch

#: Inputs the pre-hook flattens in their own way (the rest of the per-token inputs are just concatenated).
_OWN_INPUTS = frozenset({"input_ids", "attention_mask", "labels"})

#: Flattenings waiting for their forward hook; an exception between the two hooks leaves one behind.
MAX_PENDING = 8


@dataclass
class _Flattened:
    """What the forward hook needs to restore padded outputs: the real-token mask of the padded batch and the
    flat indices of the shifted outputs that stay within a row."""

    keep: Any
    within_rows: Any
    tokens: int
    #: The packed ``input_ids`` handed to the model: the forward hook restores only the pass that got them.
    input_ids: Any


@dataclass
class PaddingFreeForward:
    """The pair of module hooks (:meth:`attach`); ``varlen_kwargs`` adds FlashAttention's ``cu_seq_lens_q/k`` and
    ``max_length_q/k`` (for varlen attention kernels)."""

    varlen_kwargs: bool = False
    #: Forward passes run padding-free so far.
    flattened: int = 0
    _pending: list[_Flattened] = field(default_factory=list)

    def attach(self, module: Any) -> list[Any]:
        """Register the hooks on ``module`` (the model the trainer calls: a PEFT model's outer module, so the
        adapter-disabled reference pass goes through them too); returns the hook handles."""
        return [
            module.register_forward_pre_hook(self.flatten, with_kwargs=True),
            module.register_forward_hook(self.restore, with_kwargs=True),
        ]

    def flatten(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Forward pre-hook: a right-padded batch becomes one packed row (anything else passes unchanged)."""
        import torch

        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        if not (isinstance(ids, torch.Tensor) and isinstance(mask, torch.Tensor)):
            return None
        if len(args) > 1 or not _flattenable(ids, mask, kwargs):
            return None
        keep = mask.bool()
        lengths = keep.sum(dim=1)
        if bool(keep.all()) or not bool((lengths > 0).all()):
            return None  # nothing to save, or an empty row
        if not bool((keep == _right_padded(lengths, keep.shape[1])).all()):
            return None  # left padding is for generation
        starts = torch.cumsum(lengths, dim=0) - lengths
        positions = torch.cumsum(keep, dim=1)[keep] - 1
        flat_ids = ids[keep][None]
        flat_kwargs = {  # other per-token inputs (token type ids, ...) are flattened alike
            name: value[keep][None] if name not in _OWN_INPUTS and _per_token(value, ids) else value
            for name, value in kwargs.items()
        }
        flat_kwargs.update(
            input_ids=flat_ids, attention_mask=None, position_ids=positions[None], use_cache=False
        )  # with a cache, transformers would not look for the rows in the position ids
        labels = kwargs.get("labels")
        if labels is not None:
            flat_labels = labels[keep].clone()
            flat_labels[starts] = IGNORE_INDEX
            flat_kwargs["labels"] = flat_labels[None]
        if self.varlen_kwargs:
            boundaries = torch.nn.functional.pad(torch.cumsum(lengths, dim=0), (1, 0)).to(torch.int32)
            longest = int(lengths.max())
            flat_kwargs.update(
                cu_seq_lens_q=boundaries, cu_seq_lens_k=boundaries, max_length_q=longest, max_length_k=longest
            )
        tokens = int(lengths.sum())
        within_rows = torch.ones(tokens - 1, dtype=torch.bool, device=keep.device)
        within_rows[starts[1:] - 1] = False  # the last token of a row predicting the next row's first token
        self._pending = [
            *self._pending[-(MAX_PENDING - 1) :],
            _Flattened(keep, within_rows, tokens, flat_ids),
        ]
        self.flattened += 1
        return (), flat_kwargs

    def restore(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
        """Forward hook: per-token outputs of a flattened pass get the padded batch's shape back."""
        if (
            kwargs.get("attention_mask") is not None
            or kwargs.get("position_ids") is None
            or not self._pending
        ):
            return None
        flat = self._pending.pop()
        fields = output.items() if hasattr(output, "items") else ()
        for name, value in list(fields):
            restored = _restore(value, flat)
            if restored is not None:
                output[name] = restored
        return output


def _flattenable(ids: torch.Tensor, mask: torch.Tensor, kwargs: dict[str, Any]) -> bool:
    return (
        ids.dim() == 2
        and mask.shape == ids.shape
        and ids.shape[0] > 1
        and kwargs.get("inputs_embeds") is None
        and kwargs.get("position_ids") is None
        and kwargs.get("past_key_values") is None
    )


def _per_token(value: Any, ids: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor) and value.shape == ids.shape


def _right_padded(lengths: Any, width: int) -> Any:
    import torch

    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


def _restore(value: Any, flat: _Flattened) -> Any:
    """``value`` with the padded shape back when it is a per-token output of the flat row (or of its shifted
    predictions), else ``None``."""
    import torch

    if not isinstance(value, torch.Tensor) or value.dim() < 2 or value.shape[0] != 1:
        return None
    rows = flat.keep.shape[0]
    if value.shape[1] == flat.tokens:
        where, values = flat.keep, value[0]
    elif value.shape[1] == flat.tokens - 1:
        where, values = flat.keep[:, 1:], value[0][flat.within_rows]
    else:
        return None
    shape = (rows, where.shape[1], *value.shape[2:])
    where = where.reshape(rows, where.shape[1], *([1] * (value.dim() - 2))).expand(shape)
    return value.new_zeros(shape).masked_scatter(where, values)
