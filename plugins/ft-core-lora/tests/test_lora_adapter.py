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
    status, err = _validate(tmp_path, tiny_model_dir, {"method": "lora", "init": "pissa"}, capsys)
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
