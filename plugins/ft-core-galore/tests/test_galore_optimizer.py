"""The galore optimizer: projected-rank state, layer-wise stepping, refusal with LoRA, a run."""

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


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rank": 0}, "rank: expected an integer >= 1"),
        ({"update_interval": 0}, "update_interval: expected an integer >= 1"),
        ({"betas": [0.9]}, r"betas: expected two numbers in \[0, 1\)"),
        ({"targets": ""}, "targets: expected 'all'"),
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


@pytest.mark.parametrize("layerwise", [False, True], ids=["galore", "layerwise"])
def test_state_dict_resumes_through_a_weights_only_load(tiny_model, tmp_path, layerwise):
    """The Trainer loads ``optimizer.pt`` with ``weights_only=True``: the projectors are saved as plain values and
    rebuilt, and the resumed optimizer takes the very step the original takes."""
    import copy

    options = GaLoreOptions(rank=2, update_interval=100, layerwise=layerwise)
    twin = copy.deepcopy(tiny_model)
    optimizer = _build(options, tiny_model)
    _step(tiny_model)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    twin.load_state_dict(tiny_model.state_dict())
    resumed = _build(options, twin)
    resumed.load_state_dict(torch.load(tmp_path / "optimizer.pt", weights_only=True))
    for model, opt in ((tiny_model, optimizer), (twin, resumed)):
        _step(model)
        opt.step()
    for (name, a), b in zip(tiny_model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
