"""The hqq quantizer: options, validation, quantization, LoRA training at every bit width, adapter reload and a run.

hqq's PyTorch backend runs on the CPU, so everything here runs without a GPU.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from torch import nn

import ft_core_hqq
from ft_core.api import FtCoreError, OptionsError
from ft_core.testing.import_light import check_import_light
from ft_core.testing.quantizers import quantizer_config, quantizer_run, text_batch
from ft_core_hqq import BITS, HqqOptions, HqqQuantizer, load_quantized_model, quantize_model

hqq_quantize = pytest.importorskip("hqq.core.quantize")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def options(**values) -> HqqOptions:
    """Options fitting the tiny model (hidden size 32, 16 key/value features): groups of 16."""
    return HqqOptions(**{"group_size": 16, **values})


# ----------------------------------------------------------------------------------------- registration
def test_registers_as_hqq(make_plugins):
    quantizer = make_plugins(ft_core_hqq).get("quantizer", "hqq")
    assert isinstance(quantizer, HqqQuantizer)
    assert quantizer.trains_with_adapters_only and quantizer.quantizes_after_load
    assert quantizer.options_schema is HqqOptions


def test_registration_is_import_light():
    check_import_light("ft_core_hqq")


# ----------------------------------------------------------------------------------------------- options
def test_defaults():
    default = HqqOptions()
    assert (default.bits, default.group_size, default.axis, default.compute_dtype) == (4, 64, 1, "auto")
    assert default.skip_modules == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bits": 7}, "bits must be one of 1, 2, 3, 4, 5, 6, 8, got 7"),
        ({"bits": 1.58}, "stored in 2 bits: use bits: 2"),
        ({"bits": True}, "bits must be one of"),
        ({"group_size": 60}, "group_size must be a positive multiple of 8"),
        ({"group_size": 0}, "group_size must be a positive multiple of 8"),
        ({"axis": 2}, "axis must be 0 or 1, got 2"),
        ({"compute_dtype": "int8"}, "compute_dtype must be auto, bfloat16, float16 or float32"),
        ({"skip_modules": ["lm_head", " "]}, "skip_modules must be module names"),
    ],
)
def test_bad_options_raise_options_error(values, message):
    with pytest.raises(OptionsError, match=message):
        HqqOptions(**values)


def test_skip_modules_accepts_a_comma_separated_string():
    assert HqqOptions(skip_modules="down_proj, mlp.up_proj").skip_modules == ["down_proj", "mlp.up_proj"]


def _validate(make_config, quantization, capsys, adapter="lora", **sections):
    from ft_core.cli import main

    path = make_config(quantization=quantization, adapter={"method": adapter}, **sections)
    return main(["validate", str(path)]), capsys.readouterr().err


def test_config_validator_reports_option_problems(make_config, capsys):
    status, err = _validate(make_config, {"method": "hqq", "bits": 7}, capsys)
    assert status == 2 and "quantization: bits must be one of 1, 2, 3, 4, 5, 6, 8" in err
    status, err = _validate(make_config, {"method": "hqq", "nbits": 4}, capsys)
    assert status == 2 and "quantization.nbits: unknown key" in err and "bits" in err
    status, err = _validate(make_config, {"method": "hqq", "bits": 2, "group_size": 16}, capsys)
    assert status == 0, err


@pytest.mark.parametrize("adapter", ["full", "freeze"])
def test_config_validator_refuses_whole_model_tuning_of_quantized_weights(make_config, capsys, adapter):
    pytest.importorskip(f"ft_core_{adapter}")
    status, err = _validate(make_config, {"method": "hqq"}, capsys, adapter=adapter)
    assert status == 2
    assert f"hqq-quantized weights cannot be trained with adapter.method: {adapter}" in err and "lora" in err


def test_validate_refuses_fp16_on_the_cpu_and_sharding_strategies():
    quantizer = HqqQuantizer()
    assert quantizer.validate(HqqOptions(), quantizer_config(use_cpu=True)) == []
    (problem,) = quantizer.validate(HqqOptions(compute_dtype="float16"), quantizer_config(use_cpu=True))
    assert "float16 matmuls need a GPU" in problem
    config = quantizer_config()
    for strategy in ("fsdp", "deepspeed"):
        config.distributed.strategy = strategy
        (problem,) = quantizer.validate(HqqOptions(), config)
        assert f"cannot be sharded by distributed.strategy: {strategy}" in problem and "ddp" in problem


def test_validate_says_how_to_install_a_missing_hqq(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "hqq" else real_find_spec(name, *a)
    )
    problems = HqqQuantizer().validate(HqqOptions(), quantizer_config())
    assert problems == ["quantization.method: the hqq package is not installed: pip install 'hqq>=0.2.8'"]
    with pytest.raises(FtCoreError, match="not installed"):
        HqqQuantizer().load_kwargs(HqqOptions(), None)


def test_load_kwargs_check_group_size_and_skip_modules_before_the_weights_load(tiny_model_dir):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert HqqQuantizer().load_kwargs(options(), config) == {}
    with pytest.raises(FtCoreError, match=r"group_size: 64 does not divide the input size 32 .*e\.g\. 32"):
        HqqQuantizer().load_kwargs(HqqOptions(group_size=64), config)
    # axis 0 groups the output size: the key/value projections have 16 outputs
    with pytest.raises(FtCoreError, match="does not divide the output size 16"):
        HqqQuantizer().load_kwargs(HqqOptions(group_size=32, axis=0), config)
    with pytest.raises(FtCoreError, match=r"skip_modules: 'down_prj' matches no module .*down_proj"):
        HqqQuantizer().load_kwargs(options(skip_modules=["down_prj"]), config)


# ------------------------------------------------------------------------------------- quantized models
def test_every_projection_but_the_head_is_quantized_on_the_cpu(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = load_quantized_model(tiny_model_dir, options(bits=4))
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in PROJECTIONS:
            assert isinstance(module, hqq_quantize.HQQLinear), name
            assert module.W_q.device.type == "cpu" and module.meta["nbits"] == 4
    assert type(model.lm_head) is nn.Linear
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    inputs = text_batch(tiny_model_dir)
    with torch.no_grad():
        quantized, full = model(**inputs).loss, reference(**inputs).loss
    assert torch.isfinite(quantized) and 0 < abs(quantized - full) < 0.1 * full


def test_fewer_bits_stray_further_from_the_weights(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    weight = original.model.layers[0].mlp.down_proj.weight.detach()
    errors = []
    for bits in (2, 4, 8):
        layer = load_quantized_model(tiny_model_dir, options(bits=bits)).model.layers[0].mlp.down_proj
        errors.append((layer.dequantize().float() - weight).norm().item())
    assert errors[0] > errors[1] > errors[2] > 0


def test_skip_modules_stay_unquantized(tiny_model_dir):
    model = load_quantized_model(
        tiny_model_dir, options(skip_modules=["down_proj", r"model\.layers\.1\.self_attn\.q_proj"])
    )
    assert type(model.model.layers[1].self_attn.q_proj) is nn.Linear
    assert isinstance(model.model.layers[0].self_attn.q_proj, hqq_quantize.HQQLinear)
    assert type(model.model.layers[0].mlp.down_proj) is nn.Linear


def test_compute_dtype_follows_the_load_dtype_unless_given(tiny_model_dir):
    model = load_quantized_model(tiny_model_dir, options(), dtype=torch.bfloat16)
    assert model.model.layers[0].self_attn.q_proj.compute_dtype == torch.bfloat16
    model = load_quantized_model(tiny_model_dir, options(compute_dtype="float32"), dtype=torch.bfloat16)
    assert model.model.layers[0].self_attn.q_proj.compute_dtype == torch.float32


def test_prepare_freezes_and_refuses_an_unquantized_model(tiny_model_dir, tiny_model, capsys):
    model = load_quantized_model(tiny_model_dir, options(bits=2))
    prepared = HqqQuantizer().prepare(model, options(bits=2), quantizer_run(use_cpu=True))
    assert not any(p.requires_grad for p in prepared.parameters())
    assert (
        "hqq: 2-bit (groups of 16, axis 1), compute float32: 14 HQQLinear layers" in capsys.readouterr().err
    )
    with pytest.raises(FtCoreError, match="no layer of LlamaForCausalLM was quantized by hqq"):
        HqqQuantizer().prepare(tiny_model, options(), quantizer_run())
    with pytest.raises(FtCoreError, match="found no linear layer"):
        quantize_model(tiny_model, options(skip_modules=list(PROJECTIONS)))


# ------------------------------------------------------------------ training and reloading the adapter
def _logits(model, inputs) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits


@pytest.mark.parametrize("bits", BITS)
def test_each_bit_width_trains_lora_and_the_adapter_reloads_with_equal_logits(tiny_model_dir, tmp_path, bits):
    from peft import LoraConfig, PeftModel, get_peft_model

    chosen = options(bits=bits)
    model = load_quantized_model(tiny_model_dir, chosen)
    model = HqqQuantizer().prepare(model, chosen, quantizer_run(use_cpu=True))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(PROJECTIONS)))
    assert type(model.base_model.model.model.layers[0].self_attn.q_proj).__name__ == "HqqLoraLinear"
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    inputs = text_batch(tiny_model_dir)
    losses = []
    for _ in range(3):
        model.train()
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    after = {
        n.replace("base_model.model.", "", 1).replace(".base_layer", ""): p
        for n, p in model.named_parameters()
        if "lora_" not in n
    }
    assert all(torch.equal(after[n].detach(), before) for n, before in frozen.items())  # only LoRA trained
    trained = _logits(model, inputs)
    model.save_pretrained(str(tmp_path / "adapter"))

    base = load_quantized_model(tiny_model_dir, chosen)  # the same quantized base, quantized again
    reloaded = PeftModel.from_pretrained(base, str(tmp_path / "adapter"))
    torch.testing.assert_close(_logits(reloaded, inputs), trained, rtol=0, atol=0)
    assert not torch.equal(
        _logits(load_quantized_model(tiny_model_dir, chosen), inputs), trained
    )  # it trained


# ------------------------------------------------------------------------------------------ a whole run
def test_hqq_lora_run_on_the_cpu(tmp_path, make_config, capfd):
    from peft import PeftModel

    from ft_core.bootstrap import load_trained_model
    from ft_core.cli import main

    path = make_config(
        data={"cutoff_len": 48, "max_samples": 8, "preprocessing_workers": 1},
        quantization={"method": "hqq", "bits": 3, "group_size": 16},
        training={"save_steps": 1000, "plot_loss": False},
    )
    assert main(["run", str(path)]) == 0
    assert "hqq: 3-bit (groups of 16, axis 1), compute float32: 14 HQQLinear layers" in capfd.readouterr().err
    run = tmp_path / "run"
    artefact = run / "model"
    adapter_config = json.loads((artefact / "adapter_config.json").read_text())
    assert set(adapter_config["target_modules"]) == set(PROJECTIONS)  # targets: all found the HQQ layers
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    used = {(c["section"], c["name"], c["distribution"]) for c in manifest["components"]}
    assert ("quantization", "hqq", "ft-core-hqq") in used
    # ft-core chat / load_trained_model: the adapter merged into the unquantized base (as for bitsandbytes);
    # the adapter on the quantized base it trained on: load_quantized_model + PEFT.
    merged, _ = load_trained_model(str(run))
    assert type(merged.model.layers[0].self_attn.q_proj) is nn.Linear
    base_dir = manifest["base_model"]["path"]
    on_quantized = PeftModel.from_pretrained(load_quantized_model(base_dir, options(bits=3)), str(artefact))
    inputs = text_batch(base_dir)
    close = _logits(merged, inputs) - _logits(on_quantized, inputs)
    assert close.abs().max() < 0.5  # the quantization error only
