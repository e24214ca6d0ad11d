"""Building blocks for optimizer plugins whose optimizers keep projector objects in their state (GaLore, APOLLO and
the like): state dicts that resume through the Trainer's ``weights_only`` load, and layer-wise stepping.

Imports torch: import this module where the optimizer is built (in ``OptimizerFactory.create``), never at
registration (``ft_core.api`` itself stays import-light)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

_PROJECTOR_KEY = "projector_attributes"


def with_plain_projectors(
    optimizer_class: type,
    make_projector: Callable[[Any, dict[str, Any]], Any],
    *,
    build_in_step: bool = False,
) -> type:
    """A subclass of ``optimizer_class`` whose state dict holds each ``state["projector"]`` object as its attributes
    (tensors and plain values, which ``torch.load(weights_only=True)`` accepts) and rebuilds it on load.

    ``make_projector(optimizer, group)`` builds an empty projector of a group's kind; on load, the saved attributes
    replace its own. With ``build_in_step``, ``step`` also builds the projector of each parameter (of a group with
    ``rank``) at its first step, before the wrapped class's own ``step`` would build one of its library's kind: a
    fresh and a resumed optimizer then use the same kind of projector."""

    class PlainProjectors(optimizer_class):  # type: ignore[misc]
        def step(self, closure: Callable[[], Any] | None = None) -> Any:
            if not build_in_step:
                return super().step(closure)
            loss = None
            # the closure first: the gradients it computes decide which projectors to build
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for group in self.param_groups:
                if "rank" not in group:
                    continue
                for parameter in group["params"]:
                    if parameter.grad is not None and "projector" not in self.state[parameter]:
                        self.state[parameter]["projector"] = make_projector(self, group)
            super().step()
            return loss

        def state_dict(self) -> dict[str, Any]:
            saved = super().state_dict()
            states = {}
            for index, state in saved["state"].items():
                state = dict(state)  # the packed state shares the live per-parameter dicts
                projector = state.pop("projector", None)
                if projector is not None:
                    state[_PROJECTOR_KEY] = dict(vars(projector))
                states[index] = state
            return {**saved, "state": states}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            attributes: dict[int, dict[str, Any]] = {}
            states = {}
            for index, state in state_dict["state"].items():
                state = dict(state)
                if _PROJECTOR_KEY in state:
                    attributes[int(index)] = state.pop(_PROJECTOR_KEY)
                states[index] = state
            super().load_state_dict({**state_dict, "state": states})
            index = 0
            for group in self.param_groups:
                for parameter in group["params"]:
                    if index in attributes:
                        projector = make_projector(self, group)
                        vars(projector).update(attributes[index])
                        self.state[parameter]["projector"] = projector
                    index += 1

    PlainProjectors.__name__ = PlainProjectors.__qualname__ = optimizer_class.__name__
    return PlainProjectors


class LayerwiseOptimizer(torch.optim.Optimizer):
    """Layer-wise stepping: one inner optimizer per parameter, stepped from the parameter's post-accumulate-grad
    hook during the backward pass, so only one parameter's full gradient lives at a time.

    The optimizer the trainer sees: its groups carry the learning rates (the LR scheduler changes them), while the
    inner per-parameter optimizers (``make([group])`` each) do the work in backward hooks. ``step`` and
    ``zero_grad`` do nothing: each gradient is applied and freed as soon as it is complete (so gradient
    accumulation and gradient clipping do not apply)."""

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

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
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
