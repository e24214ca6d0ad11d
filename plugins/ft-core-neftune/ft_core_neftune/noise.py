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
    """Forward hook of an embedding module: adds the NEFTune noise to its output in training mode only."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def magnitude(self, output: Any) -> float:
        """``alpha / sqrt(L * d)`` for an output of shape ``(..., L, d)`` (``L`` = padded sequence length)."""
        seq_len, hidden = output.shape[-2], output.shape[-1]
        return self.alpha / math.sqrt(seq_len * hidden)

    def __call__(self, module: Any, args: Any, output: Any) -> Any:
        if not module.training:
            return output
        import torch

        bound = self.magnitude(output)
        return output + torch.empty_like(output).uniform_(-bound, bound)


#: Hooks in place, by key (the run folder): ``(alpha, handle)``. One process may hold several runs (tests).
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
    _ATTACHED[key] = (alpha, embeddings.register_forward_hook(_NoiseHook(alpha)))


def detach(key: str) -> float | None:
    """Remove the hook registered under ``key``; return its alpha (``None`` when there was none)."""
    entry = _ATTACHED.pop(key, None)
    if entry is None:
        return None
    alpha, handle = entry
    handle.remove()
    return alpha


def attached(key: str) -> float | None:
    """The alpha of the hook registered under ``key``, if one is in place."""
    entry = _ATTACHED.get(key)
    return entry[0] if entry else None
