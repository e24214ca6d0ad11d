"""LoRA variants: PiSSA, LoftQ and LoRA+ — each checked for what makes it that method."""

import copy
import json
from types import SimpleNamespace

import pytest
import torch
import yaml

import ft_core_lora
from ft_core.api import OptionsError, default_param_groups
from ft_core.testing.conformance_adapters import check_adapter
from ft_core_lora.adapter import LoraAdapter, LoraOptions

needs_bitsandbytes = pytest.mark.skipif(
    __import__("importlib").util.find_spec("bitsandbytes") is None, reason="LoftQ needs bitsandbytes"
)


def _ids(vocab):
    return torch.randint(0, vocab, (2, 12), generator=torch.Generator().manual_seed(0))


def _lora_layers(model):
    return [(n, m) for n, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A]


def _delta(module):
    """``scaling * B @ A`` of a LoRA layer."""
    a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
    return module.scaling["default"] * (b @ a)


def _original(base, name):
    return dict(base.named_modules())[name.removeprefix("base_model.model.")].weight.detach()


@pytest.mark.parametrize("pissa_iter", [0, 4], ids=["exact-svd", "fast-svd"])
def test_pissa_keeps_the_output_and_splits_each_weight(tiny_model, pissa_iter):
    base = copy.deepcopy(tiny_model)
    options = LoraOptions(rank=4, alpha=8, init="pissa", pissa_iter=pissa_iter)
    assert options.peft_init == ("pissa" if pissa_iter == 0 else f"pissa_niter_{pissa_iter}")
    model = LoraAdapter().apply(tiny_model, options, None)
    ids = _ids(model.config.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(
            model(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-4, rtol=1e-4
        )
    layers = _lora_layers(model)
    assert layers
    for name, module in layers:
        original = _original(base, name)
        residual = module.get_base_layer().weight.detach()
        assert not torch.allclose(residual, original), f"{name}: the base kept the principal part"
        assert module.lora_B["default"].weight.abs().sum() > 0, f"{name}: B starts non-zero under PiSSA"
        torch.testing.assert_close(residual + _delta(module).detach(), original, atol=1e-5, rtol=1e-4)
    if pissa_iter == 0:  # the adapter holds the top-r singular part: the residual's norm is the tail's
        name, module = layers[0]
        s = torch.linalg.svdvals(_original(base, name).float())
        torch.testing.assert_close(
            torch.linalg.matrix_norm(module.get_base_layer().weight.detach()),
            s[4:].norm(),
            atol=1e-4,
            rtol=1e-4,
        )


def test_pissa_saves_a_plain_lora_adapter_of_the_original_base(tiny_model, tmp_path):
    """Trained, saved (converted to rank 2r over the original weights), reloaded onto the original base: equal
    logits (the conformance check's save / load round trip)."""
    check_adapter(
        LoraAdapter(), LoraOptions(rank=4, alpha=8, init="pissa", pissa_iter=0), tiny_model, tmp_path
    )
    config = json.loads((tmp_path / "artefact" / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16 and config["init_lora_weights"] is True


def test_pissa_rslora_conversion_keeps_the_scaling(tiny_model, tmp_path):
    options = LoraOptions(rank=4, alpha=8, init="pissa", pissa_iter=0, use_rslora=True)
    check_adapter(LoraAdapter(), options, tiny_model, tmp_path)


@needs_bitsandbytes
@pytest.mark.parametrize("bits", [4, 8])
def test_loftq_adapter_closes_the_quantization_gap(tiny_model, bits):
    from ft_core_lora.variants import fake_quantize

    base = copy.deepcopy(tiny_model)
    model = LoraAdapter().apply(tiny_model, LoraOptions(rank=4, alpha=8, init="loftq", loftq_bits=bits), None)
    for name, module in _lora_layers(model):
        original = _original(base, name)
        quantized = module.get_base_layer().weight.detach()
        torch.testing.assert_close(quantized, fake_quantize(original, bits))
        assert not torch.equal(quantized, original), f"{name}: the base was not quantized"
        alone = torch.linalg.matrix_norm(original - quantized)
        with_adapter = torch.linalg.matrix_norm(original - (quantized + _delta(module).detach()))
        assert with_adapter < alone, f"{name}: {with_adapter} >= {alone}"


@needs_bitsandbytes
def test_loftq_artefact_reloads_onto_the_requantized_base(tiny_model, tmp_path):
    check_adapter(LoraAdapter(), LoraOptions(rank=4, alpha=8, init="loftq"), tiny_model, tmp_path)
    record = json.loads((tmp_path / "artefact" / "ft_core_loftq.json").read_text())
    assert record["bits"] == 4 and "model.layers.0.self_attn.q_proj" in record["modules"]


def test_lora_plus_puts_b_in_its_own_group_at_lr_times_ratio(tiny_model):
    from ft_core_lora.variants import lora_plus_groups

    model = LoraAdapter().apply(tiny_model, LoraOptions(rank=4, lora_plus_ratio=16), None)
    groups = default_param_groups(model, 0.01)
    groups = lora_plus_groups(groups, model, 16.0, 2e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    b_groups = [g for g in groups if all(".lora_B." in names[id(p)] for p in g["params"])]
    other = [g for g in groups if g not in b_groups]
    assert b_groups and other
    assert all(g["lr"] == pytest.approx(2e-4 * 16) for g in b_groups)
    assert all(g.get("lr", 2e-4) == 2e-4 for g in other)
    assert not any(".lora_B." in names[id(p)] for g in other for p in g["params"])
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(id(p) for p in trainable)
    optimizer = torch.optim.AdamW(groups, lr=2e-4)
    assert sorted({g["lr"] for g in optimizer.param_groups}) == pytest.approx([2e-4, 3.2e-3])


def test_lora_plus_hook_rewrites_the_groups_in_place(tiny_model):
    model = LoraAdapter().apply(tiny_model, LoraOptions(rank=4), None)
    groups = default_param_groups(model, 0.0)
    selection = SimpleNamespace(options=LoraOptions(lora_plus_ratio=4))
    run = SimpleNamespace(
        config=SimpleNamespace(adapter=selection, training=SimpleNamespace(learning_rate=1e-3))
    )
    ft_core_lora.ft_adjust_parameter_groups(groups=groups, model=model, run=run)
    assert sorted(g.get("lr", 1e-3) for g in groups)[-1] == pytest.approx(4e-3)
    untouched = default_param_groups(model, 0.0)
    run.config.adapter = SimpleNamespace(options=LoraOptions())
    ft_core_lora.ft_adjust_parameter_groups(groups=untouched, model=model, run=run)
    assert len(untouched) == len(default_param_groups(model, 0.0))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"pissa_iter": -1}, "pissa_iter must be >= 0"),
        ({"loftq_bits": 3}, "loftq_bits must be 4 or 8"),
        ({"lora_plus_ratio": 0}, "lora_plus_ratio must be > 0"),
        ({"init": "pissa", "use_dora": True}, "does not combine with use_dora"),
    ],
)
def test_bad_variant_options(values, message):
    with pytest.raises(OptionsError, match=message):
        LoraOptions(**values)


def _config(tmp_path, model_dir, adapter, **extra):
    config = {
        "model": {"name_or_path": model_dir},
        "data": {"dataset": ["identity"], "cutoff_len": 64, "cache_dir": str(tmp_path / "cache")},
        "adapter": adapter,
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 2,
            "use_cpu": True,
            "plot_loss": False,
            "logging_steps": 1,
        },
        **extra,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_pissa_on_a_quantized_base_is_refused(tmp_path, tiny_model_dir, capsys):
    pytest.importorskip("ft_core_bitsandbytes")
    from ft_core.cli import main

    adapter = {"method": "lora", "init": "pissa"}
    path = _config(tmp_path, tiny_model_dir, adapter, quantization={"method": "bitsandbytes", "bits": 4})
    assert main(["validate", path]) == 2
    assert "adapter.init: pissa rewrites the base weights" in capsys.readouterr().err


def test_a_run_trains_pissa_with_lora_plus(tmp_path, tiny_model_dir):
    from ft_core.cli import main

    adapter = {
        "method": "lora",
        "rank": 4,
        "alpha": 8,
        "init": "pissa",
        "pissa_iter": 2,
        "lora_plus_ratio": 16,
    }
    assert main(["run", _config(tmp_path, tiny_model_dir, adapter)]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "manifest.json").read_text())["status"] == "completed"
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rates = [
        (row["learning_rate"], row["learning_rate_group1"]) for row in logged if "learning_rate_group1" in row
    ]
    assert rates, "LoRA+ groups log their own learning rates"
    # the B group runs at up to 16 x the peak rate (1e-4); the core logs ``learning_rate`` before the scheduler
    # step and the group rates after it, so the two columns of a row are one schedule step apart
    assert all(1e-4 < group <= 16 * 1e-4 + 1e-12 for _, group in rates)
    assert (
        json.loads((run / "model" / "adapter_config.json").read_text())["r"] == 8
    )  # PiSSA saved as LoRA, 2r
