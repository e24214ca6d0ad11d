"""Layer-wise optimizer stepping: one inner optimizer per parameter, stepped from the parameter's
post-accumulate-grad hook during the backward pass, so only one parameter's full gradient lives at a time.

Imported when the optimizer is built (torch is loaded here, never at registration)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class LayerwiseOptimizer(torch.optim.Optimizer):
    """The optimizer the trainer sees: its groups carry the learning rates (the LR scheduler changes them), while
    the inner per-parameter optimizers do the work in backward hooks. ``step`` and ``zero_grad`` do nothing:
    each gradient is applied and freed as soon as it is complete (so gradient accumulation and gradient clipping
    do not apply)."""

    def __init__(
        self, param_groups: list[dict[str, Any]], make: Callable[[list[dict[str, Any]]], Any], lr: float
    ) -> None:
        super().__init__(param_groups, {"lr": lr})
        self.inner: list[Any] = []
        self._handles: list[Any] = []
        for group in self.param_groups:
            settings = {k: v for k, v in group.items() if k != "params"}
            for parameter in group["params"]:
                inner = make([{**settings, "params": [parameter]}])
                self.inner.append(inner)
                self._handles.append(parameter.register_post_accumulate_grad_hook(self._hook(group, inner)))

    @staticmethod
    def _hook(group: dict[str, Any], inner: Any) -> Callable[[Any], None]:
        def step(parameter: Any) -> None:
            if parameter.grad is None:
                return
            inner.param_groups[0]["lr"] = group["lr"]
            inner.step()
            inner.zero_grad(set_to_none=True)

        return step

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        return closure() if closure is not None else None

    def zero_grad(self, set_to_none: bool = True) -> None:
        for inner in self.inner:
            inner.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {
            "param_groups_lr": [g["lr"] for g in self.param_groups],
            "inner": [o.state_dict() for o in self.inner],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for group, rate in zip(self.param_groups, state_dict.get("param_groups_lr", []), strict=False):
            group["lr"] = rate
        for inner, state in zip(self.inner, state_dict.get("inner", []), strict=True):
            inner.load_state_dict(state)

    def remove_hooks(self) -> None:
        """Detach the backward hooks (the parameters then need another optimizer)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
