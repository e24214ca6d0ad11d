"""The apollo optimizer: low-rank state, the update is the gradient rescaled per channel, refusal with LoRA."""

import json
from types import SimpleNamespace

import pytest
import torch
import yaml

import ft_core_apollo
from ft_core.api import OptionsError, default_param_groups
from ft_core.testing.import_light import check_import_light
from ft_core_apollo import Apollo, ApolloOptions, apollo_parameter_names


def _build(options, model):
    args = SimpleNamespace(learning_rate=1e-2, weight_decay=0.0)
    defaults = default_param_groups(model, 0.0)
    groups = Apollo().param_groups(options, model, defaults, args) or defaults
    return Apollo().create(options, [g for g in groups if g["params"]], args)


def _backward(model, seed=0):
    ids = torch.randint(0, model.config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(seed))
    model(input_ids=ids, labels=ids).loss.backward()


def test_registers_apollo(make_plugins):
    assert make_plugins(ft_core_apollo).get("optimizer", "apollo").options_schema is ApolloOptions


def test_registration_is_import_light():
    check_import_light("ft_core_apollo")


def test_state_is_low_rank_and_the_update_is_the_gradient_scaled_per_channel(tiny_model):
    optimizer = _build(ApolloOptions(rank=2), tiny_model)
    named = dict(tiny_model.named_parameters())
    name = "model.layers.0.self_attn.q_proj.weight"
    assert name in apollo_parameter_names(tiny_model, "all")
    weight = named[name]
    _backward(tiny_model)
    before, grad = weight.detach().clone(), weight.grad.detach().clone()
    optimizer.step()
    assert min(optimizer.state[weight]["exp_avg"].shape) == 2, "Adam's moments live in the rank-2 projection"
    ratio = (weight.detach() - before) / -grad  # per entry: how much of the raw gradient was applied
    per_channel = ratio.mean(dim=1)
    assert (ratio.std(dim=1) / per_channel.abs()).max() < 1e-3, "one scaling factor per channel (row)"
    assert per_channel.std() / per_channel.mean().abs() > 1e-2, "the channels have different scalings"
    norm = named["model.norm.weight"]
    assert optimizer.state[norm]["exp_avg"].shape == norm.shape, "other parameters train with plain AdamW"


def test_apollo_mini_scales_the_whole_tensor(tiny_model):
    optimizer = _build(ApolloOptions(rank=1, scale_type="tensor", scale=128), tiny_model)
    weight = dict(tiny_model.named_parameters())["model.layers.1.mlp.up_proj.weight"]
    _backward(tiny_model)
    before, grad = weight.detach().clone(), weight.grad.detach().clone()
    optimizer.step()
    ratio = (weight.detach() - before) / -grad
    assert ratio.std() / ratio.mean().abs() < 1e-3, "one scaling factor for the tensor"


def test_layerwise_steps_in_backward(tiny_model):
    optimizer = _build(ApolloOptions(rank=2, layerwise=True), tiny_model)
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    _backward(tiny_model)
    assert all(not torch.equal(p, before[n]) for n, p in tiny_model.named_parameters())
    optimizer.remove_hooks()


def test_optimizer_conformance(tiny_model):
    from ft_core.testing.conformance_optimizers import check_optimizer

    tiny_model.model.embed_tokens.requires_grad_(False)
    check_optimizer(Apollo(), ApolloOptions(rank=2), tiny_model)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rank": 0}, "rank: expected an integer >= 1"),
        ({"scale": 0}, "scale: expected a positive number"),
        ({"betas": [1.0, 0.9]}, r"betas: expected two numbers"),
    ],
)
def test_bad_options(values, message):
    with pytest.raises(OptionsError, match=message):
        ApolloOptions(**values)


def _config(tmp_path, model_dir, adapter, optimizer):
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
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_apollo_with_lora_is_refused_saying_what_works(tmp_path, tiny_model_dir, capsys):
    from ft_core.cli import main

    assert main(["validate", _config(tmp_path, tiny_model_dir, {"method": "lora"}, {"name": "apollo"})]) == 2
    assert (
        "use optimizer.name: adamw with lora, or apollo with adapter.method: full" in capsys.readouterr().err
    )


def test_a_full_run_trains_with_apollo(tmp_path, tiny_model_dir):
    from ft_core.cli import main

    assert main(["run", _config(tmp_path, tiny_model_dir, "full", {"name": "apollo", "rank": 2})]) == 0
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "completed"


def test_state_dict_resumes_through_a_weights_only_load(tiny_model, tmp_path):
    """The Trainer loads ``optimizer.pt`` with ``weights_only=True``: the projectors are saved as plain values and
    rebuilt, and the resumed optimizer takes the very step the original takes."""
    import copy

    options = ApolloOptions(rank=2, update_interval=100)
    twin = copy.deepcopy(tiny_model)
    optimizer = _build(options, tiny_model)
    _backward(tiny_model)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    twin.load_state_dict(tiny_model.state_dict())
    resumed = _build(options, twin)
    resumed.load_state_dict(torch.load(tmp_path / "optimizer.pt", weights_only=True))
    for model, opt in ((tiny_model, optimizer), (twin, resumed)):
        _backward(model, seed=1)
        opt.step()
    for (name, a), b in zip(tiny_model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
