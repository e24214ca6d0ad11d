"""The adamw optimizer: registration, options, the parameter groups and the optimizer it builds."""

import json
from types import SimpleNamespace

import pytest
import torch
import yaml

import ft_core_adamw
from ft_core.api import OptionsError, default_param_groups
from ft_core.testing.import_light import check_import_light
from ft_core_adamw import AdamW, AdamWOptions


def _args(learning_rate=3e-4, weight_decay=0.0):
    return SimpleNamespace(learning_rate=learning_rate, weight_decay=weight_decay)


def _build(options, model, args):
    factory = AdamW()
    defaults = default_param_groups(model, args.weight_decay)
    groups = factory.param_groups(options, model, defaults, args)
    return factory.create(options, defaults if groups is None else groups, args)


def _decay_of(optimizer):
    """``{id(parameter): weight_decay}`` as the optimizer will apply it."""
    return {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}


def test_registers_adamw(make_plugins):
    assert make_plugins(ft_core_adamw).get("optimizer", "adamw").options_schema is AdamWOptions


def test_builds_torch_adamw_over_thedefault_param_groups(tiny_model):
    options = AdamWOptions(betas=[0.9, 0.95], eps=1e-6)
    args = _args(learning_rate=3e-4, weight_decay=0.05)
    assert AdamW().param_groups(options, tiny_model, default_param_groups(tiny_model, 0.05), args) is None
    optimizer = _build(options, tiny_model, args)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0]
    for group in optimizer.param_groups:
        assert group["lr"] == 3e-4 and group["betas"] == (0.9, 0.95) and group["eps"] == 1e-6
    decay = _decay_of(optimizer)
    named = dict(tiny_model.named_parameters())
    assert decay[id(named["model.layers.0.mlp.up_proj.weight"])] == 0.05
    assert decay[id(named["model.norm.weight"])] == 0.0


def test_weight_decay_option_overrides_the_training_section(tiny_model):
    optimizer = _build(AdamWOptions(weight_decay=0.1), tiny_model, _args(weight_decay=0.0))
    decay = _decay_of(optimizer)
    trainable = [(n, p) for n, p in tiny_model.named_parameters() if p.requires_grad]
    assert len(decay) == len(trainable), "every trainable parameter is optimized exactly once"
    for name, parameter in trainable:
        expected = 0.0 if "norm" in name or name.endswith("bias") else 0.1
        assert decay[id(parameter)] == expected, name
    assert all(g["lr"] == 3e-4 for g in optimizer.param_groups)


def test_the_weight_decay_really_applies(tiny_model):
    """With zero gradients, one AdamW step only decays: weights shrink by ``lr * weight_decay``, norms don't."""
    named = dict(tiny_model.named_parameters())
    weight, norm = named["model.layers.0.mlp.up_proj.weight"], named["model.norm.weight"]
    before_weight, before_norm = weight.detach().clone(), norm.detach().clone()
    optimizer = _build(AdamWOptions(weight_decay=0.5), tiny_model, _args(learning_rate=0.1, weight_decay=0.0))
    for parameter in tiny_model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    torch.testing.assert_close(weight.detach(), before_weight * (1 - 0.1 * 0.5))
    torch.testing.assert_close(norm.detach(), before_norm)


def test_weight_decay_option_splits_a_mixed_group(tiny_model):
    """A group holding weights and norms alike gets the option's decay on its weights only."""
    everything = [p for p in tiny_model.parameters() if p.requires_grad]
    groups = AdamW().param_groups(
        AdamWOptions(weight_decay=0.2),
        tiny_model,
        [{"params": everything, "weight_decay": 0.0, "lr": 1e-3}],
        _args(),
    )
    assert [g["weight_decay"] for g in groups] == [0.2, 0.0]
    assert all(g["lr"] == 1e-3 for g in groups)
    assert sum(len(g["params"]) for g in groups) == len(everything)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"betas": [0.9]}, r"betas: expected two numbers in \[0, 1\), got \[0.9\]"),
        ({"eps": 0.0}, "eps: expected a positive number"),
        ({"weight_decay": -0.1}, "weight_decay: expected a number >= 0"),
    ],
)
def test_bad_options_raise_options_error(values, message):
    with pytest.raises(OptionsError, match=message):
        AdamWOptions(**values)


def _config(tmp_path, model_dir, optimizer):
    config = {
        "model": {"name_or_path": model_dir},
        "data": {"dataset": ["identity"], "cutoff_len": 64, "cache_dir": str(tmp_path / "cache")},
        "adapter": {"method": "lora", "rank": 4, "alpha": 8},
        "optimizer": optimizer,
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 1,
            "use_cpu": True,
            "plot_loss": False,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_bad_betas_are_a_config_problem(tmp_path, tiny_model_dir, capsys):
    from ft_core.cli import main

    assert main(["validate", _config(tmp_path, tiny_model_dir, {"name": "adamw", "betas": [0.9]})]) == 2
    assert "optimizer: betas: expected two numbers in [0, 1), got [0.9]" in capsys.readouterr().err


def test_a_run_trains_with_the_weight_decay_option(tmp_path, tiny_model_dir):
    from ft_core.cli import main

    optimizer = {"name": "adamw", "weight_decay": 0.1, "betas": [0.9, 0.95]}
    assert main(["run", _config(tmp_path, tiny_model_dir, optimizer)]) == 0
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "completed"


def test_registration_is_import_light():
    check_import_light("ft_core_adamw")


def test_optimizer_conformance(tiny_model):
    from ft_core.testing.conformance_optimizers import check_optimizer

    tiny_model.requires_grad_(False)
    tiny_model.lm_head.requires_grad_(True)
    tiny_model.model.norm.requires_grad_(True)
    optimizer = check_optimizer(AdamW(), AdamWOptions(weight_decay=0.1), tiny_model, weight_decay=0.0)
    assert sorted(group["weight_decay"] for group in optimizer.param_groups) == [0.0, 0.1]


# --------------------------------------------------------------------------- 8-bit and paged AdamW (bitsandbytes)
has_bitsandbytes = __import__("importlib").util.find_spec("bitsandbytes") is not None
needs_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and has_bitsandbytes),
    reason="8-bit / paged AdamW need CUDA and bitsandbytes",
)


@pytest.mark.skipif(not has_bitsandbytes, reason="needs bitsandbytes")
@pytest.mark.parametrize(
    ("bits", "paged", "expected"),
    [(8, False, "AdamW8bit"), (32, True, "PagedAdamW"), (8, True, "PagedAdamW8bit")],
)
def test_bits_and_paged_pick_the_bitsandbytes_optimizer(tiny_model, bits, paged, expected):
    optimizer = _build(AdamWOptions(bits=bits, paged=paged, weight_decay=0.1), tiny_model, _args())
    assert type(optimizer).__name__ == expected
    assert sorted(g["weight_decay"] for g in optimizer.param_groups) == [0.0, 0.1]


def test_8bit_and_paged_are_refused_on_a_cpu_run(tmp_path, tiny_model_dir, capsys):
    from ft_core.cli import main

    assert (
        main(["validate", _config(tmp_path, tiny_model_dir, {"name": "adamw", "bits": 8, "paged": True})])
        == 2
    )
    err = capsys.readouterr().err
    expected = (
        "paged 8-bit AdamW (bitsandbytes) runs on CUDA GPUs only"
        if has_bitsandbytes
        else "needs bitsandbytes"
    )
    assert expected in err and ("use bits: 32 and paged: false" in err or "bits: 32, paged: false" in err)


@pytest.mark.parametrize(
    ("values", "message"),
    [({"bits": 16}, "bits: expected 32 or 8"), ({"bits": 8, "fused": True}, "fused: torch's fused kernel")],
)
def test_bad_bitsandbytes_options(values, message):
    with pytest.raises(OptionsError, match=message):
        AdamWOptions(**values)


@needs_cuda
@pytest.mark.parametrize("paged", [False, True])
def test_8bit_state_is_8bit_on_cuda(paged):
    model = torch.nn.Sequential(
        torch.nn.Linear(128, 128)
    ).cuda()  # >= 4096 entries: smaller ones keep fp32 state
    optimizer = _build(AdamWOptions(bits=8, paged=paged), model, _args())
    before = model[0].weight.detach().clone()
    for parameter in model.parameters():
        parameter.grad = torch.randn_like(parameter)
    optimizer.step()
    assert optimizer.state[model[0].weight]["state1"].dtype == torch.uint8
    assert not torch.equal(model[0].weight.detach(), before)
