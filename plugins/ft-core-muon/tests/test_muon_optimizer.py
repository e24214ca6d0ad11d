"""The muon optimizer: hidden-matrix updates are orthogonalised, the rest trains with AdamW."""

import json
from types import SimpleNamespace

import pytest
import torch
import yaml

import ft_core_muon
from ft_core.api import OptionsError, default_param_groups
from ft_core.testing.import_light import check_import_light
from ft_core_muon import Muon, MuonOptions, hidden_matrix_names


def _build(options, model, learning_rate=1e-2):
    args = SimpleNamespace(learning_rate=learning_rate, weight_decay=0.0)
    defaults = default_param_groups(model, 0.0)
    groups = Muon().param_groups(options, model, defaults, args) or defaults
    return Muon().create(options, [g for g in groups if g["params"]], args)


def _backward(model, seed=0):
    ids = torch.randint(0, model.config.vocab_size, (4, 16), generator=torch.Generator().manual_seed(seed))
    model(input_ids=ids, labels=ids).loss.backward()


def test_registers_muon(make_plugins):
    assert make_plugins(ft_core_muon).get("optimizer", "muon").options_schema is MuonOptions


def test_registration_is_import_light():
    check_import_light("ft_core_muon")


def test_hidden_matrices_are_the_layer_weights(tiny_model):
    names = hidden_matrix_names(tiny_model)
    assert (
        "model.layers.0.self_attn.q_proj.weight" in names and "model.layers.1.mlp.down_proj.weight" in names
    )
    assert not any("embed" in n or "lm_head" in n or "norm" in n for n in names)


def test_hidden_matrix_updates_are_orthogonalised(tiny_model):
    """Newton-Schulz pushes every singular value of the update to about 1 (Muon's 0.7-1.2 band), while the raw
    gradient's spread widely: the update is (close to) an orthogonal matrix, scaled. Directions the gradient lacks
    (a 64-token batch's gradient may have a lower rank than the matrix) stay at zero and the faintest ones (under 2% of
    the largest) rise more slowly, so the check covers the
    gradient's range."""
    optimizer = _build(MuonOptions(), tiny_model)
    named = dict(tiny_model.named_parameters())
    matrices = sorted(hidden_matrix_names(tiny_model))
    before = {n: named[n].detach().clone() for n in matrices}
    _backward(tiny_model)
    gradients = {n: named[n].grad.detach().clone() for n in matrices}
    optimizer.step()
    for name in matrices:
        update = named[name].detach() - before[name]
        raw = torch.linalg.svdvals(gradients[name].double())
        rank = int((raw > raw.max() * 2e-2).sum())  # what 5 Newton-Schulz steps lift to ~1
        raw = raw[:rank]
        s = torch.linalg.svdvals(update.double())[:rank]
        spread = (s.max() / s.min()).item()
        assert rank >= 4
        assert spread < 2.0, f"{name}: singular values of the update {s.tolist()}"
        assert spread < (raw.max() / raw.min()).item() / 5, f"{name}: not flatter than the gradient's"
    norm = named["model.norm.weight"]
    assert optimizer.adamw.state[norm]["exp_avg"].shape == norm.shape, "norms train with AdamW"
    assert all(p not in optimizer.adamw.state for p in (named[n] for n in matrices))


def test_groups_drive_both_optimizers(tiny_model):
    optimizer = _build(MuonOptions(), tiny_model, learning_rate=3e-3)
    assert isinstance(optimizer, torch.optim.Muon.__mro__[1])
    assert len(optimizer.param_groups) == len(optimizer.muon.param_groups) + len(optimizer.adamw.param_groups)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    assert scheduler.get_last_lr() == [1.5e-3] * len(optimizer.param_groups)
    assert optimizer.muon.param_groups[0]["lr"] == optimizer.adamw.param_groups[0]["lr"] == 1.5e-3
    _backward(tiny_model)
    optimizer.step()
    state = optimizer.state_dict()
    optimizer.load_state_dict(state)
    assert optimizer.param_groups[0] is optimizer.muon.param_groups[0]


def test_optimizer_conformance(tiny_model):
    from ft_core.testing.conformance_optimizers import check_optimizer

    check_optimizer(Muon(), MuonOptions(), tiny_model)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"momentum": 1.0}, r"momentum: expected a number in \[0, 1\)"),
        ({"ns_steps": 0}, "ns_steps: expected an integer >= 1"),
        ({"adamw_betas": [0.9]}, "adamw_betas: expected two numbers"),
    ],
)
def test_bad_options(values, message):
    with pytest.raises(OptionsError, match=message):
        MuonOptions(**values)


def test_a_full_run_trains_with_muon(tmp_path, tiny_model_dir):
    from ft_core.cli import main

    config = {
        "model": {"name_or_path": tiny_model_dir},
        "data": {"dataset": ["identity"], "cutoff_len": 64, "cache_dir": str(tmp_path / "cache")},
        "adapter": "full",
        "optimizer": {"name": "muon"},
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 2,
            "use_cpu": True,
            "plot_loss": False,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path)]) == 0
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "completed"
