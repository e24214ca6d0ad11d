"""``ft_core.api.optimizers``: projector state that resumes through a ``weights_only`` load, and layer-wise stepping,
on a toy optimizer (the GaLore and APOLLO plugins' own tests use them with their libraries)."""

from __future__ import annotations

from typing import Any

import torch

from ft_core.api.optimizers import LayerwiseOptimizer, with_plain_projectors


class LibraryProjector:
    """What a low-rank library keeps in each parameter's state: an object, which ``weights_only`` refuses."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.basis: torch.Tensor | None = None


class OwnProjector(LibraryProjector):
    """The plugin's own kind of projector."""


class ProjectingSGD(torch.optim.SGD):
    """SGD that, like GaLore, builds a projector (of its library's kind) at a parameter's first step."""

    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            for parameter in group["params"]:
                state = self.state[parameter]
                if "rank" in group and "projector" not in state:
                    state["projector"] = LibraryProjector(group["rank"])
                if "rank" in group:
                    state["projector"].basis = torch.ones(group["rank"])
        return super().step(closure)


def _model_and_groups() -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    groups = [{"params": list(model[0].parameters()), "rank": 2}, {"params": list(model[1].parameters())}]
    return model, groups


def _train_step(model: torch.nn.Module, optimizer: Any) -> None:
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    optimizer.zero_grad()


def _own(optimizer: Any, group: dict[str, Any]) -> OwnProjector:
    return OwnProjector(group["rank"])


def test_projectors_round_trip_through_a_weights_only_load(tmp_path):
    model, groups = _model_and_groups()
    optimizer = with_plain_projectors(ProjectingSGD, _own)(groups, lr=0.1)
    _train_step(model, optimizer)
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")

    _, fresh_groups = _model_and_groups()
    resumed = with_plain_projectors(ProjectingSGD, _own)(fresh_groups, lr=0.1)
    resumed.load_state_dict(torch.load(tmp_path / "optimizer.pt", weights_only=True))

    projected = fresh_groups[0]["params"][0]
    projector = resumed.state[projected]["projector"]
    assert isinstance(projector, OwnProjector), "a loaded projector is built by the plugin's factory"
    assert projector.rank == 2
    assert torch.equal(projector.basis, torch.ones(2)), "the saved attributes replace the new projector's"
    assert "projector" not in resumed.state[fresh_groups[1]["params"][0]]
    assert type(resumed).__name__ == "ProjectingSGD"


def test_build_in_step_makes_the_plugins_projectors():
    model, groups = _model_and_groups()
    library_kind = with_plain_projectors(ProjectingSGD, _own)(groups, lr=0.1)
    _train_step(model, library_kind)
    assert type(library_kind.state[groups[0]["params"][0]]["projector"]) is LibraryProjector

    model, groups = _model_and_groups()
    own_kind = with_plain_projectors(ProjectingSGD, _own, build_in_step=True)(groups, lr=0.1)
    _train_step(model, own_kind)
    assert type(own_kind.state[groups[0]["params"][0]]["projector"]) is OwnProjector
    assert "projector" not in own_kind.state[groups[1]["params"][0]], "groups without rank get none"


def test_layerwise_steps_each_parameter_during_backward_at_the_outer_learning_rate():
    model, groups = _model_and_groups()
    optimizer = LayerwiseOptimizer(groups, lambda inner: torch.optim.SGD(inner, lr=1.0), lr=0.5)
    assert len(optimizer.inner) == 4, "one inner optimizer per parameter"
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.param_groups[0]["lr"] = 0.25  # as a scheduler would
    model(torch.randn(3, 4)).sum().backward()

    after = list(model.parameters())
    assert all(p.grad is None for p in after), "each gradient is applied and freed in backward"
    assert all(not torch.equal(b, p) for b, p in zip(before, after, strict=True))
    assert optimizer.inner[0].param_groups[0]["lr"] == 0.25
    assert optimizer.inner[2].param_groups[0]["lr"] == 0.5

    state = optimizer.state_dict()
    optimizer.param_groups[0]["lr"] = 0.0
    optimizer.load_state_dict(state)
    assert optimizer.param_groups[0]["lr"] == 0.25

    optimizer.remove_hooks()
    model(torch.randn(3, 4)).sum().backward()
    assert all(p.grad is not None for p in model.parameters()), "no hook steps once removed"
