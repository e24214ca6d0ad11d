"""Optimizer state dicts that load with ``torch.load(weights_only=True)`` (as the Trainer resumes a checkpoint),
and projectors of the plugin's choosing.

The low-rank optimizers keep a projector *object* in each projected parameter's state; pickled as is, the
Trainer's ``weights_only`` load of ``optimizer.pt`` refuses it. :func:`with_plain_projectors` gives a subclass
whose state dict holds each projector as its attributes (tensors and plain values) and rebuilds it on load; its
``step`` also builds each new projector with the same factory (galore-torch's own step would build a plain
``GaLoreProjector``), so a fresh and a resumed optimizer use the same kind of projector.

Imported when the optimizer is built (torch is loaded here, never at registration)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

_KEY = "projector_attributes"


def with_plain_projectors(
    optimizer_class: type, make_projector: Callable[[Any, dict[str, Any]], Any]
) -> type:
    """A subclass of ``optimizer_class``; ``make_projector(optimizer, group)`` builds an empty projector of a
    group's kind: for each projected parameter (of a group with ``rank``) at its first step, and on load, where the
    saved attributes then replace its own."""

    class PlainProjectors(optimizer_class):  # type: ignore[misc,valid-type]
        def step(self, closure: Callable[[], Any] | None = None) -> Any:
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
                    state[_KEY] = dict(vars(projector))
                states[index] = state
            return {**saved, "state": states}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            attributes: dict[int, dict[str, Any]] = {}
            states = {}
            for index, state in state_dict["state"].items():
                state = dict(state)
                if _KEY in state:
                    attributes[int(index)] = state.pop(_KEY)
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
