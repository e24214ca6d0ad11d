"""The ``neftune`` options and the embedding forward hook that adds the noise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ft_core.api import FtCoreError, OptionsError


@dataclass(frozen=True)
class NeftuneOptions:
    """Options of the ``neftune`` config section."""

    #: Noise scale: training adds uniform noise in ``[-m, m]``, ``m = alpha / sqrt(seq_len * hidden_dim)``, to the
    #: input embeddings (the paper uses 5, 10 or 15). ``null`` turns NEFTune off.
    alpha: float | None = None

    def __post_init__(self) -> None:
        if self.alpha is not None and not (math.isfinite(self.alpha) and self.alpha > 0):
            raise OptionsError(
                f"alpha must be a number > 0 (e.g. 5), or null to turn NEFTune off; got {self.alpha}"
            )


class _NoiseHook:
    """Forward hook of an embedding module: adds the NEFTune noise to its output in training mode only.

    A padded batch gets ``m = alpha / sqrt(L * d)`` with ``L`` its padded length (as the paper's code and
    transformers do). A packed batch (one row of concatenated samples, position ids restarting at 0 per sample)
    gets each sample's own ``m`` from that sample's length, so packing does not shrink the noise: the model's
    forward pre-hook (:meth:`remember_positions`) hands over the batch's position ids."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.position_ids: Any = None

    def remember_positions(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        """Forward pre-hook (with kwargs) of the model: keep this forward pass's ``position_ids``."""
        self.position_ids = kwargs.get("position_ids")

    def magnitude(self, output: Any) -> Any:
        """``alpha / sqrt(L * d)`` for an output of shape ``(..., L, d)``: a number for a padded batch, one value per
        token (shape ``(1, L, 1)``) for a packed one."""
        seq_len, hidden = output.shape[-2], output.shape[-1]
        lengths = self._packed_lengths(seq_len)
        if lengths is None:
            return self.alpha / math.sqrt(seq_len * hidden)
        import torch

        per_row = self.alpha / torch.sqrt(lengths.to(output.device, torch.float32) * hidden)
        return (
            torch.repeat_interleave(per_row, lengths.to(output.device)).view(1, seq_len, 1).to(output.dtype)
        )

    def _packed_lengths(self, seq_len: int) -> Any:
        """The sample lengths of a packed batch (from where its position ids restart at 0), or ``None``."""
        positions = self.position_ids
        if positions is None or positions.dim() != 2 or positions.shape != (1, seq_len):
            return None
        import torch

        starts = torch.nonzero(positions[0] == 0).flatten()
        if starts.numel() < 2 or int(starts[0]) != 0:
            return None
        ends = torch.cat([starts[1:], torch.tensor([seq_len], device=starts.device)])
        return ends - starts

    def __call__(self, module: Any, args: Any, output: Any) -> Any:
        if not module.training:
            return output
        import torch

        bound = self.magnitude(output)
        self.position_ids = None
        return output + torch.empty_like(output).uniform_(-1, 1) * bound


#: Hooks in place, by key (the run folder): ``(alpha, handles)``. One process may hold several runs (tests).
_ATTACHED: dict[str, tuple[float, Any]] = {}


def attach(model: Any, alpha: float, key: str) -> None:
    """Register the noise hook on ``model.get_input_embeddings()`` under ``key`` (replacing an earlier one)."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is None:
        raise FtCoreError(
            f"neftune.alpha: {type(model).__name__} has no input embeddings (get_input_embeddings() gave None); "
            "NEFTune needs a model with a token-embedding layer, or set neftune.alpha: null"
        )
    detach(key)
    hook = _NoiseHook(alpha)
    handles = [
        embeddings.register_forward_hook(hook),
        model.register_forward_pre_hook(hook.remember_positions, with_kwargs=True),
    ]
    _ATTACHED[key] = (alpha, handles)


def detach(key: str) -> float | None:
    """Remove the hook registered under ``key``; return its alpha (``None`` when there was none)."""
    entry = _ATTACHED.pop(key, None)
    if entry is None:
        return None
    alpha, handles = entry
    for handle in handles:
        handle.remove()
    return alpha


def attached(key: str) -> float | None:
    """The alpha of the hook registered under ``key``, if one is in place."""
    entry = _ATTACHED.get(key)
    return entry[0] if entry else None
