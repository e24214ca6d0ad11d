"""One optimizer over two: ``torch.optim.Muon`` for the hidden matrices, ``torch.optim.AdamW`` for the rest.

Imported when the optimizer is built (torch is loaded here, never at registration)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class MuonWithAdamW(torch.optim.Optimizer):
    """The trainer's optimizer: ``param_groups`` are the inner optimizers' own group dicts (Muon's first), so the
    learning-rate scheduler drives both; ``step`` steps both; the state dict holds both."""

    def __init__(self, muon: torch.optim.Optimizer | None, adamw: torch.optim.Optimizer | None) -> None:
        inner = [o for o in (muon, adamw) if o is not None]
        if not inner:
            raise ValueError("MuonWithAdamW needs at least one parameter")
        super().__init__([{"params": list(g["params"])} for o in inner for g in o.param_groups], {})
        self.muon, self.adamw, self.inner = muon, adamw, inner
        self.param_groups = [group for o in inner for group in o.param_groups]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for optimizer in self.inner:
            optimizer.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"inner": [o.state_dict() for o in self.inner]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for optimizer, state in zip(self.inner, state_dict["inner"], strict=True):
            optimizer.load_state_dict(state)
        self.param_groups = [group for o in self.inner for group in o.param_groups]
