"""The galore optimizer: projected-rank state, layer-wise stepping, the randomized SVD, refusal with LoRA, a run."""

import json
from types import SimpleNamespace

import pytest
import torch
import yaml

import ft_core_galore
from ft_core.api import OptionsError, default_param_groups
from ft_core.testing.import_light import check_import_light
from ft_core_galore import GaLore, GaLoreOptions, galore_parameter_names


def _args(learning_rate=1e-2, weight_decay=0.0):
    return SimpleNamespace(learning_rate=learning_rate, weight_decay=weight_decay)


def _build(options, model, args=None):
    args = args or _args()
    defaults = default_param_groups(model, args.weight_decay)
    groups = GaLore().param_groups(options, model, defaults, args) or defaults
    return GaLore().create(options, [g for g in groups if g["params"]], args)


def _step(model):
    ids = torch.randint(0, model.config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0))
    model(input_ids=ids, labels=ids).loss.backward()


def _projected_states(optimizer, model):
    """The optimizer state of each GaLore weight, by name (in the inner optimizers when layer-wise)."""
    owners = getattr(optimizer, "inner", [optimizer])
    named = dict(model.named_parameters())
    states = {}
    for name in galore_parameter_names(model, "all"):
        owner = next(o for o in owners if any(p is named[name] for g in o.param_groups for p in g["params"]))
        states[name] = owner.state[named[name]]
    return states


def test_registers_galore(make_plugins):
    assert make_plugins(ft_core_galore).get("optimizer", "galore").options_schema is GaLoreOptions


def test_registration_is_import_light():
    check_import_light("ft_core_galore")


def test_targets_are_the_linear_weights_but_not_the_head(tiny_model):
    names = galore_parameter_names(tiny_model, "all")
    assert (
        "model.layers.0.self_attn.q_proj.weight" in names and "model.layers.0.mlp.down_proj.weight" in names
    )
    assert not any("lm_head" in n or "embed" in n or "norm" in n for n in names)
    assert galore_parameter_names(tiny_model, ["q_proj"]) == {n for n in names if n.endswith("q_proj.weight")}


def test_state_has_the_projected_rank(tiny_model):
    rank = 2
    optimizer = _build(GaLoreOptions(rank=rank, update_interval=5), tiny_model)
    projected = [g for g in optimizer.param_groups if "rank" in g]
    assert projected and all(g["rank"] == rank and g["update_proj_gap"] == 5 for g in projected)
    _step(tiny_model)
    optimizer.step()
    named = dict(tiny_model.named_parameters())
    names = galore_parameter_names(tiny_model, "all")
    for name in names:
        parameter = named[name]
        state = optimizer.state[parameter]
        assert min(state["exp_avg"].shape) == rank, (name, state["exp_avg"].shape, parameter.shape)
        assert state["exp_avg"].numel() < parameter.numel()
        assert rank in state["projector"].ortho_matrix.shape
    norm = named["model.norm.weight"]
    assert optimizer.state[norm]["exp_avg"].shape == norm.shape, "other parameters train with plain AdamW"


def test_optimizer_conformance(tiny_model):
    from ft_core.testing.conformance_optimizers import check_optimizer

    tiny_model.model.embed_tokens.requires_grad_(False)
    check_optimizer(GaLore(), GaLoreOptions(rank=2), tiny_model)


def test_layerwise_steps_each_parameter_in_backward(tiny_model):
    optimizer = _build(GaLoreOptions(rank=2, layerwise=True), tiny_model)
    assert isinstance(optimizer, torch.optim.Optimizer)
    trainable = [p for p in tiny_model.parameters() if p.requires_grad]
    assert len(optimizer.inner) == len(trainable), "one inner optimizer per parameter"
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    _step(tiny_model)  # the backward pass itself updates, and frees the gradients
    changed = [n for n, p in tiny_model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before)
    assert all(p.grad is None for p in trainable)
    q_proj = dict(tiny_model.named_parameters())["model.layers.0.self_attn.q_proj.weight"]
    inner = next(o for o in optimizer.inner if o.param_groups[0]["params"][0] is q_proj)
    assert min(inner.state[q_proj]["exp_avg"].shape) == 2
    # the scheduler sets the outer groups' rates; the hooks pass them on
    for group in optimizer.param_groups:
        group["lr"] = 0.0
    frozen = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    _step(tiny_model)
    torch.testing.assert_close(q_proj.detach(), frozen["model.layers.0.self_attn.q_proj.weight"])
    state = optimizer.state_dict()
    optimizer.load_state_dict(state)
    optimizer.remove_hooks()


def _subspace(orthogonal, side):
    """The orthogonal projector onto the subspace a GaLore matrix spans (its rows for right, columns for left)."""
    basis = orthogonal.float().T if side == "right" else orthogonal.float()
    return basis @ basis.T


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_randomized_projection_spans_the_full_svds_subspace(side, dtype):
    from galore_torch.galore_projector import GaLoreProjector

    from ft_core_galore.projector import RandomizedGaLoreProjector

    generator = torch.Generator().manual_seed(0)
    low_rank = torch.randn(64, 4, generator=generator) @ torch.randn(4, 48, generator=generator)
    matrix = (low_rank + 1e-4 * torch.randn(64, 48, generator=generator)).to(dtype)
    full = GaLoreProjector(4).get_orthogonal_matrix(matrix, 4, side)
    randomized = RandomizedGaLoreProjector(4).get_orthogonal_matrix(matrix, 4, side)
    assert (randomized.shape, randomized.dtype, randomized.device) == (full.shape, full.dtype, full.device)
    tolerance = 1e-3 if dtype == torch.float32 else 5e-2  # bf16 rounds the bases themselves
    difference = torch.linalg.matrix_norm(_subspace(randomized, side) - _subspace(full, side))
    assert difference < tolerance, (side, dtype, difference)
    # both factors of a full projection, and a rank past the smaller side, keep galore's shapes and dtypes
    for rank, kind in ((4, "full"), (60, "full"), (60, side)):
        ours = RandomizedGaLoreProjector(rank).get_orthogonal_matrix(matrix, rank, kind)
        theirs = GaLoreProjector(rank).get_orthogonal_matrix(matrix, rank, kind)
        ours, theirs = (ours, theirs) if kind == "full" else ([ours], [theirs])
        assert [(t.shape, t.dtype) for t in ours] == [(t.shape, t.dtype) for t in theirs], (rank, kind)


@pytest.mark.parametrize("layerwise", [False, True], ids=["galore", "layerwise"])
def test_svd_randomized_builds_randomized_projectors_and_trains(tiny_model, monkeypatch, layerwise):
    """No full SVD of a gradient: ``torch.linalg.svd`` sees only ``svd_lowrank``'s small ``q``-wide matrices."""
    from ft_core_galore.projector import RandomizedGaLoreProjector, oversampling

    rank = 2
    width = rank + oversampling(rank)
    shapes, lowrank_calls = [], []
    svd, svd_lowrank = torch.linalg.svd, torch.svd_lowrank

    def spy_svd(matrix, *args, **kwargs):
        shapes.append(tuple(matrix.shape))
        return svd(matrix, *args, **kwargs)

    def spy_svd_lowrank(matrix, *args, **kwargs):
        lowrank_calls.append(tuple(matrix.shape))
        return svd_lowrank(matrix, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "svd", spy_svd)
    monkeypatch.setattr(torch, "svd_lowrank", spy_svd_lowrank)
    options = GaLoreOptions(rank=rank, update_interval=1, svd="randomized", layerwise=layerwise)
    optimizer = _build(options, tiny_model)
    named = dict(tiny_model.named_parameters())
    names = galore_parameter_names(tiny_model, "all")
    assert all(min(named[n].shape) > width for n in names), "the tiny weights must be wider than q"
    before = {n: named[n].detach().clone() for n in names}
    for _ in range(2):  # the second step refreshes every projection (update_interval: 1)
        _step(tiny_model)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    states = _projected_states(optimizer, tiny_model)
    assert all(type(state["projector"]) is RandomizedGaLoreProjector for state in states.values())
    assert sorted(lowrank_calls) == sorted(2 * [tuple(named[n].shape) for n in names])
    assert shapes and all(min(shape) <= width for shape in shapes), shapes
    assert all(not torch.equal(named[n], before[n]) for n in names), "the projected weights train"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rank": 0}, "rank: expected an integer >= 1"),
        ({"update_interval": 0}, "update_interval: expected an integer >= 1"),
        ({"betas": [0.9]}, r"betas: expected two numbers in \[0, 1\)"),
        ({"targets": ""}, "targets: expected 'all'"),
        ({"svd": "fast"}, "svd: expected 'full' or 'randomized', got 'fast'"),
    ],
)
def test_bad_options(values, message):
    with pytest.raises(OptionsError, match=message):
        GaLoreOptions(**values)


def _config(tmp_path, model_dir, adapter, optimizer, **training):
    config = {
        "model": {"name_or_path": model_dir},
        "data": {"dataset": ["identity"], "cutoff_len": 64, "cache_dir": str(tmp_path / "cache")},
        "adapter": adapter,
        "optimizer": optimizer,
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 2,
            "use_cpu": True,
            "plot_loss": False,
            **training,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_galore_with_lora_is_refused_saying_what_works(tmp_path, tiny_model_dir, capsys):
    from ft_core.cli import main

    path = _config(tmp_path, tiny_model_dir, {"method": "lora"}, {"name": "galore"})
    assert main(["validate", path]) == 2
    err = capsys.readouterr().err
    assert "optimizer.name: galore projects the gradients of whole weight matrices" in err
    assert "use optimizer.name: adamw with lora, or galore with adapter.method: full or freeze" in err


def test_layerwise_needs_no_accumulation(tmp_path, tiny_model_dir, capsys):
    from ft_core.cli import main

    optimizer = {"name": "galore", "layerwise": True}
    path = _config(tmp_path, tiny_model_dir, "full", optimizer, gradient_accumulation_steps=2)
    assert main(["validate", path]) == 2
    assert "training.gradient_accumulation_steps must be 1" in capsys.readouterr().err


@pytest.mark.parametrize("layerwise", [False, True], ids=["galore", "layerwise"])
def test_a_full_run_trains_with_galore(tmp_path, tiny_model_dir, layerwise):
    from ft_core.cli import main

    optimizer = {"name": "galore", "rank": 2, "update_interval": 1, "layerwise": layerwise}
    assert main(["run", _config(tmp_path, tiny_model_dir, "full", optimizer)]) == 0
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("svd", ["full", "randomized"])
@pytest.mark.parametrize("layerwise", [False, True], ids=["galore", "layerwise"])
def test_state_dict_resumes_through_a_weights_only_load(tiny_model, tmp_path, layerwise, svd):
    """The Trainer loads ``optimizer.pt`` with ``weights_only=True``: the projectors are saved as plain values and
    rebuilt of the same kind, and the resumed optimizer takes the very step the original takes."""
    import copy

    from galore_torch.galore_projector import GaLoreProjector

    from ft_core_galore.projector import RandomizedGaLoreProjector

    kind = RandomizedGaLoreProjector if svd == "randomized" else GaLoreProjector
    options = GaLoreOptions(rank=2, update_interval=100, layerwise=layerwise, svd=svd)
    twin = copy.deepcopy(tiny_model)
    optimizer = _build(options, tiny_model)
    _step(tiny_model)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    twin.load_state_dict(tiny_model.state_dict())
    resumed = _build(options, twin)
    resumed.load_state_dict(torch.load(tmp_path / "optimizer.pt", weights_only=True))
    projectors = [state["projector"] for state in _projected_states(resumed, twin).values()]
    assert projectors and all(type(projector) is kind for projector in projectors)
    for model, opt in ((tiny_model, optimizer), (twin, resumed)):
        _step(model)
        opt.step()
    for (name, a), b in zip(tiny_model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
