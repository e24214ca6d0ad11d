import json

import pytest
import torch
import yaml

import ft_core_lora
from ft_core.api import FtCoreError, ModelFamily, OptionsError
from ft_core.testing.conformance_adapters import check_adapter
from ft_core.testing.import_light import check_import_light
from ft_core_lora.adapter import LoraAdapter, LoraOptions


def test_lora_registers_through_the_hook(make_plugins):
    plugins = make_plugins(ft_core_lora)
    assert isinstance(plugins.get("adapter", "lora"), LoraAdapter)
    assert not LoraAdapter.saves_full_model


@pytest.mark.parametrize(
    "options",
    [
        LoraOptions(),
        LoraOptions(targets="q_proj,v_proj", use_rslora=True, init="gaussian"),
        LoraOptions(use_dora=True),
    ],
    ids=["all", "rslora-gaussian", "dora"],
)
def test_lora_conformance(options, tiny_model, tmp_path):
    # B starts at zero, so one step only moves B; the reloaded, merged model must match the PEFT model.
    check_adapter(LoraAdapter(), options, tiny_model, tmp_path)


def test_lora_saves_the_adapter_only(tiny_model, tmp_path):
    adapter = LoraAdapter()
    model = adapter.apply(tiny_model, LoraOptions(targets=["q_proj"]), None)
    adapter.save(model, str(tmp_path))
    assert (tmp_path / "adapter_model.safetensors").is_file()
    assert (tmp_path / "adapter_config.json").is_file()
    assert not (tmp_path / "model.safetensors").exists()


def test_lora_all_targets_every_linear_layer_except_the_head(tiny_model):
    model = LoraAdapter().apply(tiny_model, LoraOptions(), None)
    targeted = set(model.peft_config["default"].target_modules)
    assert targeted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_lora_family_targets_win(tiny_model):
    family = ModelFamily(model_types=("llama",), lora_targets=("q_proj", "v_proj"))
    model = LoraAdapter().apply(tiny_model, LoraOptions(), family)
    assert set(model.peft_config["default"].target_modules) == {"q_proj", "v_proj"}


def test_lora_unknown_target_lists_available_modules(tiny_model):
    with pytest.raises(FtCoreError) as error:
        LoraAdapter().apply(tiny_model, LoraOptions(targets=["q_proj", "query_key_value"]), None)
    message = str(error.value)
    assert "'query_key_value' not found" in message
    assert "q_proj" in message and "down_proj" in message


def test_lora_upcasts_trainable_parameters_of_a_half_precision_model(tiny_model):
    model = LoraAdapter().apply(tiny_model.to(torch.bfloat16), LoraOptions(), None)
    dtypes = {p.dtype for p in model.parameters() if p.requires_grad}
    assert dtypes == {torch.float32}
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.bfloat16}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rank": 0}, "rank must be >= 1, got 0"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"targets": " , "}, "targets must be 'all' or a non-empty list"),
        ({"targets": []}, "targets must be 'all' or a non-empty list"),
    ],
)
def test_lora_bad_options_raise_options_error(values, message):
    with pytest.raises(OptionsError, match=message):
        LoraOptions(**values)


def test_lora_comma_separated_targets_become_a_list():
    assert LoraOptions(targets="q_proj, v_proj").targets == ["q_proj", "v_proj"]


def _validate(tmp_path, model_dir, adapter, capsys):
    from ft_core.cli import main

    config = {
        "model": {"name_or_path": model_dir},
        "data": {"dataset": ["identity"]},
        "adapter": adapter,
        "training": {"output_dir": str(tmp_path / "run")},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    status = main(["validate", str(path)])
    return status, capsys.readouterr().err


def test_lora_options_are_validated_by_the_config_validator(tmp_path, tiny_model_dir, capsys):
    status, err = _validate(tmp_path, tiny_model_dir, {"method": "lora", "rank": 0}, capsys)
    assert status == 2 and "adapter: rank must be >= 1, got 0" in err
    status, err = _validate(tmp_path, tiny_model_dir, {"method": "lora", "init": "olora"}, capsys)
    assert status == 2 and "adapter.init" in err
    status, err = _validate(tmp_path, tiny_model_dir, {"method": "lora", "rank": 4}, capsys)
    assert status == 0, err


def test_lora_registration_is_import_light():
    check_import_light("ft_core_lora")


def test_autocast_training_skips_the_input_casts_with_the_same_result(tiny_model):
    from types import SimpleNamespace

    model = LoraAdapter().apply(tiny_model.to(torch.bfloat16), LoraOptions(rank=4, targets="all"), None)
    for name, parameter in model.named_parameters():  # trained adapters are fp32, as the engine upcasts them
        if "lora_" in name:
            parameter.data = parameter.data.float()
            torch.nn.init.normal_(parameter, std=0.02)
    inputs = torch.tensor([[5, 6, 7, 8, 9]])
    trainer = SimpleNamespace(args=SimpleNamespace(bf16=True, fp16=False), model=model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model(inputs).logits
        ft_core_lora.ft_before_train(trainer=trainer, run=None)
        layers = [
            m for m in model.modules() if hasattr(m, "lora_A") and hasattr(m, "cast_input_dtype_enabled")
        ]
        assert layers and not any(m.cast_input_dtype_enabled for m in layers)
        assert torch.equal(model(inputs).logits, expected)
    ft_core_lora.ft_after_train(trainer=trainer, run=None, metrics={})
    assert all(m.cast_input_dtype_enabled for m in layers)  # inference without autocast needs the casts back
    trainer.args.bf16 = False
    ft_core_lora.ft_before_train(trainer=trainer, run=None)
    assert all(m.cast_input_dtype_enabled for m in layers)  # full precision: nothing to skip


@pytest.mark.parametrize("dora", [False, True])
def test_a_generation_outside_autocast_while_training_casts_the_inputs(tiny_model, dora):
    """ppo and grpo generate inside a training step, outside autocast, while the casts are off: a bf16 model with
    fp32 adapters must still run (the lean path and PEFT's own, DoRA's), with the result of the casts being on."""
    from types import SimpleNamespace

    options = LoraOptions(rank=4, targets="all", use_dora=dora)
    model = LoraAdapter().apply(tiny_model.to(torch.bfloat16), options, None)
    for name, parameter in model.named_parameters():
        if "lora_" in name:
            parameter.data = parameter.data.float()
            torch.nn.init.normal_(parameter, std=0.02)
    inputs = torch.tensor([[5, 6, 7, 8, 9]])
    expected = model(inputs).logits
    trainer = SimpleNamespace(args=SimpleNamespace(bf16=True, fp16=False), model=model)
    ft_core_lora.ft_before_train(trainer=trainer, run=None)
    layers = [m for m in model.modules() if hasattr(m, "lora_A") and hasattr(m, "cast_input_dtype_enabled")]
    assert layers and not any(m.cast_input_dtype_enabled for m in layers)
    assert torch.equal(model(inputs).logits, expected)


# ------------------------------------------------------------------------------------------------ lean forward
def _lora_pair(tiny_model, options: LoraOptions):
    """The same LoRA model twice: through ``LoraAdapter.apply`` (lean forward) and with PEFT's own classes."""
    import copy

    from peft.tuners.lora import layer

    lean = LoraAdapter().apply(copy.deepcopy(tiny_model), options, None)
    for name, parameter in lean.named_parameters():  # B leaves zero, so that the update counts
        if "lora_" in name:
            torch.nn.init.normal_(parameter, std=0.1, generator=torch.Generator().manual_seed(len(name)))
    plain = copy.deepcopy(lean)
    for module in plain.modules():
        if isinstance(module, layer.Linear):
            module.__class__ = layer.Linear
    return lean, plain


def _pass(model, inputs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    out = model(input_ids=inputs, labels=inputs)
    out.loss.backward()
    return out.logits.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    ("options", "exact"),
    [
        (LoraOptions(rank=4, alpha=8), True),  # scaling 2: the same roundings as PEFT
        (LoraOptions(rank=4, alpha=5, dropout=0.0), False),  # scaling 1.25: one rounding fewer
    ],
    ids=["power-of-two-scaling", "other-scaling"],
)
def test_lean_forward_computes_what_peft_computes(tiny_model, options, exact):
    from peft.tuners.lora import layer

    from ft_core_lora import lean as lean_module

    lean, plain = _lora_pair(tiny_model, options)
    layers = [m for m in lean.modules() if isinstance(m, layer.Linear)]
    assert len(layers) == 14 and all(type(m) is lean_module.LeanLinear for m in layers)
    inputs = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
    logits, grads = _pass(lean, inputs)
    expected_logits, expected_grads = _pass(plain, inputs)
    tolerance = {"rtol": 0, "atol": 0} if exact else {}
    torch.testing.assert_close(logits, expected_logits, **tolerance)
    assert grads.keys() == expected_grads.keys() and len(grads) == 28
    for name, grad in grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grad, expected_grads[name], **tolerance, msg=name)


def test_lean_forward_skips_peft_forward_in_the_common_case_only(tiny_model, monkeypatch):
    from peft.tuners.lora import layer

    lean, _ = _lora_pair(tiny_model, LoraOptions(rank=4, alpha=8, dropout=0.1))
    peft_calls = []
    original = layer.Linear.forward
    monkeypatch.setattr(
        layer.Linear, "forward", lambda self, *a, **k: peft_calls.append(1) or original(self, *a, **k)
    )
    inputs = torch.tensor([[5, 6, 7, 8]])
    lean.train()
    lean(input_ids=inputs)
    assert peft_calls == []  # dropout is applied by the lean path too
    with lean.disable_adapter():  # adapters off: PEFT's forward
        lean(input_ids=inputs)
    assert len(peft_calls) == 14
    peft_calls.clear()
    lean.eval()
    with torch.no_grad():
        before = lean(input_ids=inputs).logits
        lean.merge_adapter()  # merged: PEFT's forward, the same logits
        torch.testing.assert_close(lean(input_ids=inputs).logits, before)
        lean.unmerge_adapter()
    assert len(peft_calls) == 14


def test_lean_forward_leaves_dora_to_peft(tiny_model):
    from peft.tuners.lora import layer

    lean, plain = _lora_pair(tiny_model, LoraOptions(rank=4, alpha=8, use_dora=True))
    assert all(type(m).__name__ == "LeanLinear" for m in lean.modules() if isinstance(m, layer.Linear))
    inputs = torch.tensor([[5, 6, 7, 8]])
    torch.testing.assert_close(_pass(lean, inputs)[0], _pass(plain, inputs)[0], rtol=0, atol=0)


def test_lean_layers_pickle_and_save_as_peft_layers(tiny_model, tmp_path):
    import pickle

    lean, plain = _lora_pair(tiny_model, LoraOptions(rank=4, alpha=8))
    copy = pickle.loads(pickle.dumps(lean))
    inputs = torch.tensor([[5, 6, 7, 8]])
    torch.testing.assert_close(copy(input_ids=inputs).logits, lean(input_ids=inputs).logits, rtol=0, atol=0)
    LoraAdapter().save(lean, str(tmp_path / "lean"))
    LoraAdapter().save(plain, str(tmp_path / "plain"))
    name = "adapter_model.safetensors"
    assert (tmp_path / "lean" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()

    def config(folder: str) -> dict:
        # PEFT writes target_modules from a set: its order follows the process's string hashing
        loaded = json.loads((tmp_path / folder / "adapter_config.json").read_text())
        loaded["target_modules"] = sorted(loaded["target_modules"])
        return loaded

    assert config("lean") == config("plain")
