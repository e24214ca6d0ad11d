"""The bitsandbytes quantizer: options, load kwargs, validation, preparation and a QLoRA run on the CPU.

bitsandbytes >= 0.49 runs 4-bit and 8-bit layers on the CPU, so everything here runs without a GPU.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import ft_core_bitsandbytes
from ft_core.api import (
    FtCoreError,
    OptionsError,
    TrainingSection,
)
from ft_core.testing import tiny_model, tiny_tokenizer
from ft_core.testing.import_light import check_import_light
from ft_core.testing.quantizers import load_quantized, quantizer_config, quantizer_run, text_batch
from ft_core_bitsandbytes import BitsAndBytesOptions, BitsAndBytesQuantizer, resolve_compute_dtype

bnb = pytest.importorskip("bitsandbytes")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def checkpointing(model) -> bool:
    return (
        model.is_activation_checkpointing
        if hasattr(model, "is_activation_checkpointing")
        else (model.is_gradient_checkpointing)
    )


# ----------------------------------------------------------------------------------------- registration
def test_registers_as_bitsandbytes_and_bnb(make_plugins):
    plugins = make_plugins(ft_core_bitsandbytes)
    quantizer = plugins.get("quantizer", "bitsandbytes")
    assert isinstance(quantizer, BitsAndBytesQuantizer)
    assert plugins.get("quantizer", "bnb") is quantizer
    assert quantizer.trains_with_adapters_only
    assert quantizer.options_schema is BitsAndBytesOptions


def test_registration_is_import_light():
    check_import_light("ft_core_bitsandbytes")


def test_bitsandbytes_log_noise_is_filtered(make_plugins):
    import logging

    make_plugins(ft_core_bitsandbytes)

    def passes(logger_name: str, message: str, *args) -> bool:
        record = logging.LogRecord(logger_name, logging.WARNING, __file__, 1, message, args, None)
        return bool(logging.getLogger(logger_name).filter(record))

    cpu, autograd = "bitsandbytes.backends.cpu.ops", "bitsandbytes.autograd._functions"
    assert not passes(cpu, "Failed to load CPU gemm_4bit_forward from kernels-community: %s.", "No module")
    assert passes(cpu, "something else")
    cast = "MatMul8bitLt: inputs will be cast from %s to float16 during quantization"
    assert passes(autograd, cast, "dtype-a")  # the first of each dtype is kept
    assert not passes(autograd, cast, "dtype-a")
    assert passes(autograd, cast, "dtype-b")


# ----------------------------------------------------------------------------------------------- options
def test_four_bit_defaults_are_qlora():
    options = BitsAndBytesOptions()
    assert (options.bits, options.quant_type, options.double_quant) == (4, "nf4", True)
    assert options.compute_dtype == "auto" and options.quant_storage is None
    assert options.llm_int8_threshold is None and options.upcast == "none"
    assert options.fast_matmul is True


def test_eight_bit_defaults_leave_four_bit_options_unset():
    options = BitsAndBytesOptions(bits=8)
    assert options.llm_int8_threshold == 6.0
    assert options.quant_type is None and options.double_quant is None and options.fast_matmul is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bits": 8, "quant_type": "fp4"}, "quant_type: fp4: 4-bit options, but bits is 8"),
        ({"bits": 8, "quant_type": "nf4"}, "quant_type: nf4: 4-bit options"),
        ({"bits": 8, "double_quant": True}, "double_quant: True: 4-bit options"),
        ({"bits": 8, "compute_dtype": "bfloat16"}, "compute_dtype: bfloat16: 4-bit options"),
        ({"bits": 8, "quant_storage": "uint8"}, "quant_storage: uint8: 4-bit options"),
        ({"bits": 8, "fast_matmul": False}, "fast_matmul: False: 4-bit options"),
        ({"bits": 4, "llm_int8_threshold": 4.0}, "llm_int8_threshold only applies to 8-bit"),
        ({"bits": 8, "llm_int8_threshold": -1.0}, "llm_int8_threshold must be >= 0"),
        ({"bits": 2}, "bits must be 4 or 8, got 2"),
        ({"skip_modules": ["lm_head", " "]}, "skip_modules must be module names"),
    ],
)
def test_bad_options_raise_options_error(values, message):
    with pytest.raises(OptionsError, match=message):
        BitsAndBytesOptions(**values)


def test_skip_modules_accepts_a_comma_separated_string():
    assert BitsAndBytesOptions(skip_modules="down_proj, mlp.up_proj").skip_modules == [
        "down_proj",
        "mlp.up_proj",
    ]


def _validate(make_config, quantization, capsys, adapter="lora"):
    """``ft-core validate`` of the kit's tiny run config with ``quantization`` and ``adapter``: (status, stderr)."""
    from ft_core.cli import main

    path = make_config(quantization=quantization, adapter={"method": adapter}, training={"use_cpu": None})
    return main(["validate", str(path)]), capsys.readouterr().err


def test_config_validator_reports_option_problems(make_config, capsys):
    status, err = _validate(make_config, {"method": "bitsandbytes", "bits": 8, "quant_type": "fp4"}, capsys)
    assert status == 2 and "quantization: quant_type: fp4: 4-bit options, but bits is 8" in err
    status, err = _validate(make_config, {"method": "bnb", "quant_type": "nf8"}, capsys)
    assert status == 2 and "quantization.quant_type" in err and "nf4" in err
    status, err = _validate(make_config, {"method": "bnb", "double_quantization": True}, capsys)
    assert status == 2 and "quantization.double_quantization: unknown key" in err and "double_quant" in err
    status, err = _validate(make_config, {"method": "bitsandbytes", "bits": 4}, capsys)
    assert status == 0, err


def test_config_validator_refuses_full_tuning_of_quantized_weights(make_config, capsys):
    pytest.importorskip("ft_core_full")
    status, err = _validate(make_config, {"method": "bitsandbytes"}, capsys, adapter="full")
    assert status == 2 and "quantization" in err and "full" in err


# ------------------------------------------------------------------------------------------- validation
def test_validate_accepts_a_cpu_run():
    # bitsandbytes' CPU backend runs 4-bit and 8-bit layers: a CPU-only run is no problem.
    quantizer = BitsAndBytesQuantizer()
    assert quantizer.validate(BitsAndBytesOptions(), quantizer_config(use_cpu=True)) == []
    assert quantizer.validate(BitsAndBytesOptions(bits=8), quantizer_config(use_cpu=True)) == []


def test_validate_says_how_to_install_a_missing_bitsandbytes(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bitsandbytes" else real_find_spec(name, *a),
    )
    problems = BitsAndBytesQuantizer().validate(BitsAndBytesOptions(), quantizer_config())
    assert problems == [
        "quantization.method: the bitsandbytes package is not installed: pip install 'bitsandbytes>=0.49'"
    ]
    with pytest.raises(FtCoreError, match="not installed"):
        BitsAndBytesQuantizer().load_kwargs(BitsAndBytesOptions(), None)


def test_validate_refuses_an_old_bitsandbytes(monkeypatch):
    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: "0.45.5" if name == "bitsandbytes" else real_version(name)
    )
    (problem,) = BitsAndBytesQuantizer().validate(BitsAndBytesOptions(), quantizer_config())
    assert "bitsandbytes 0.45.5 is too old" in problem and "pip install 'bitsandbytes>=0.49'" in problem


# ---------------------------------------------------------------------------------------- load kwargs
def test_load_kwargs_four_bit(tiny_model_dir):
    from transformers import AutoConfig, BitsAndBytesConfig

    options = BitsAndBytesOptions(quant_type="fp4", double_quant=False, compute_dtype="bfloat16")
    kwargs = BitsAndBytesQuantizer().load_kwargs(options, AutoConfig.from_pretrained(tiny_model_dir))
    assert set(kwargs) == {"quantization_config"}
    config = kwargs["quantization_config"]
    assert isinstance(config, BitsAndBytesConfig)
    assert config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_quant_type == "fp4" and config.bnb_4bit_use_double_quant is False
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert config.bnb_4bit_quant_storage == torch.uint8
    assert config.llm_int8_skip_modules is None  # transformers' defaults: the output head stays unquantized


def test_load_kwargs_four_bit_auto_compute_dtype_and_storage(tiny_model_dir):
    from transformers import AutoConfig

    options = BitsAndBytesOptions(quant_storage="bfloat16")
    config = BitsAndBytesQuantizer().load_kwargs(options, AutoConfig.from_pretrained(tiny_model_dir))
    config = config["quantization_config"]
    assert config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant is True
    # auto is resolved for the machine here (fp32 without a GPU) and for the run's precision in prepare()
    expected = resolve_compute_dtype(options, None)
    assert expected == "float32" or torch.cuda.is_available()
    assert config.bnb_4bit_compute_dtype == getattr(torch, expected)
    assert config.bnb_4bit_quant_storage == torch.bfloat16


@pytest.mark.parametrize("threshold", [None, 4.0, 0.0])
def test_load_kwargs_eight_bit(tiny_model_dir, threshold):
    from transformers import AutoConfig

    options = BitsAndBytesOptions(bits=8, llm_int8_threshold=threshold)
    config = BitsAndBytesQuantizer().load_kwargs(options, AutoConfig.from_pretrained(tiny_model_dir))
    config = config["quantization_config"]
    assert config.load_in_8bit and not config.load_in_4bit
    assert config.llm_int8_threshold == (6.0 if threshold is None else threshold)


def test_load_kwargs_skip_modules_keep_the_output_head(tiny_model_dir):
    # transformers drops its default skips (the output head) once llm_int8_skip_modules is given.
    from transformers import AutoConfig

    options = BitsAndBytesOptions(skip_modules=["down_proj"])
    config = BitsAndBytesQuantizer().load_kwargs(options, AutoConfig.from_pretrained(tiny_model_dir))
    assert {"lm_head", "down_proj"} <= set(config["quantization_config"].llm_int8_skip_modules)


@pytest.mark.parametrize(
    ("compute_dtype", "training", "expected"),
    [
        ("auto", {"precision": "bf16"}, "bfloat16"),
        ("auto", {"precision": "fp16"}, "float16"),
        ("auto", {"precision": "fp32"}, "float32"),
        ("auto", {"use_cpu": True}, "float32"),
        ("float16", {"precision": "bf16"}, "float16"),
    ],
)
def test_compute_dtype_follows_the_training_precision(compute_dtype, training, expected):
    options = BitsAndBytesOptions(compute_dtype=compute_dtype)
    assert resolve_compute_dtype(options, TrainingSection(**training)) == expected


# ------------------------------------------------------------------------------------- quantized models
def test_four_bit_nf4_quantizes_every_projection_but_not_the_head(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    options = BitsAndBytesOptions(compute_dtype="float32")
    model = BitsAndBytesQuantizer().prepare(
        load_quantized(BitsAndBytesQuantizer(), tiny_model_dir, options), options, quantizer_run()
    )
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in PROJECTIONS:
            assert isinstance(module, bnb.nn.Linear4bit), name
            assert module.weight.quant_state.quant_type == "nf4"
    assert not isinstance(model.lm_head, bnb.nn.Linear4bit)
    # Quantization is close to, but not the same as, the full-precision model.
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    inputs = text_batch(tiny_model_dir)
    with torch.no_grad():
        quantized_loss, reference_loss = model(**inputs).loss, reference(**inputs).loss
    assert torch.isfinite(quantized_loss)
    assert 0 < abs(quantized_loss - reference_loss) < 0.1 * reference_loss


def test_skip_modules_stay_unquantized(tiny_model_dir):
    options = BitsAndBytesOptions(skip_modules=["down_proj", r"model\.layers\.1\.self_attn\.q_proj"])
    model = BitsAndBytesQuantizer().prepare(
        load_quantized(BitsAndBytesQuantizer(), tiny_model_dir, options), options, quantizer_run()
    )
    assert type(model.model.layers[1].self_attn.q_proj) is nn.Linear
    assert isinstance(model.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    layer = model.model.layers[0]
    assert type(layer.mlp.down_proj) is nn.Linear
    assert isinstance(layer.mlp.up_proj, bnb.nn.Linear4bit)
    assert type(model.lm_head) is nn.Linear


def test_prepare_refuses_skip_modules_that_match_nothing(tiny_model_dir):
    options = BitsAndBytesOptions(skip_modules=["down_prj"])
    model = load_quantized(BitsAndBytesQuantizer(), tiny_model_dir, options)
    with pytest.raises(FtCoreError, match=r"skip_modules: 'down_prj' matches no module .*down_proj"):
        BitsAndBytesQuantizer().prepare(model, options, quantizer_run())


@pytest.mark.parametrize("gradient_checkpointing", [True, "auto", "offload", False])
def test_prepare_sets_the_run_compute_dtype_freezes_and_leaves_checkpointing_to_core(
    tiny_model_dir, capsys, gradient_checkpointing
):
    model = load_quantized(
        BitsAndBytesQuantizer(), tiny_model_dir, BitsAndBytesOptions(), dtype=torch.bfloat16
    )
    prepared = BitsAndBytesQuantizer().prepare(
        model,
        BitsAndBytesOptions(),
        quantizer_run(precision="bf16", gradient_checkpointing=gradient_checkpointing),
    )
    four_bit = [m for m in prepared.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four_bit) == 2 * len(PROJECTIONS)
    assert {m.compute_dtype for m in four_bit} == {torch.bfloat16}
    assert not any(p.requires_grad for p in prepared.parameters())
    # core applies the run's checkpointing plan after prepare ("auto" may well decide off)
    assert not checkpointing(prepared)
    # upcast: none (the default) leaves the unquantized weights in the load dtype
    assert prepared.model.norm.weight.dtype == torch.bfloat16
    assert (
        "bitsandbytes: 4-bit (nf4 + double quant, compute bfloat16): 14 Linear4bit layers"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize("upcast", ["norms", "all"])
def test_prepare_upcasts(tiny_model_dir, upcast):
    options = BitsAndBytesOptions(upcast=upcast)
    model = load_quantized(BitsAndBytesQuantizer(), tiny_model_dir, options, dtype=torch.bfloat16)
    prepared = BitsAndBytesQuantizer().prepare(model, options, quantizer_run(precision="bf16"))
    norms = [prepared.model.norm.weight, prepared.model.layers[0].input_layernorm.weight]
    assert {p.dtype for p in norms} == {torch.float32}
    embeddings = prepared.model.embed_tokens.weight.dtype
    assert embeddings == (torch.float32 if upcast == "all" else torch.bfloat16)
    assert not any(p.requires_grad for p in prepared.parameters())
    assert not checkpointing(prepared)


def test_prepare_refuses_a_model_without_quantized_layers(tiny_model):
    with pytest.raises(FtCoreError, match="no layer of LlamaForCausalLM was quantized"):
        BitsAndBytesQuantizer().prepare(tiny_model, BitsAndBytesOptions(), quantizer_run())


def lora_on_quantized(model_dir: str, options: BitsAndBytesOptions, **training):
    from peft import LoraConfig, get_peft_model

    model = load_quantized(BitsAndBytesQuantizer(), model_dir, options)
    model = BitsAndBytesQuantizer().prepare(model, options, quantizer_run(**training))
    layer_type = bnb.nn.Linear4bit if options.bits == 4 else bnb.nn.Linear8bitLt
    assert isinstance(model.model.layers[0].self_attn.q_proj, layer_type)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(PROJECTIONS)))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    return model, optimizer, frozen


def train_step(model, optimizer, inputs) -> float:
    model.train()
    loss = model(**inputs).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


@pytest.mark.parametrize("bits", [4, 8])
def test_lora_trains_on_quantized_weights(tiny_model_dir, bits):
    options = BitsAndBytesOptions(bits=bits)
    model, optimizer, frozen = lora_on_quantized(
        tiny_model_dir, options, use_cpu=True, gradient_checkpointing=True
    )
    inputs = text_batch(tiny_model_dir)
    losses = [train_step(model, optimizer, inputs) for _ in range(3)]
    assert losses[-1] < losses[0]
    # Only the adapter trained: every base weight (quantized or not) is unchanged.
    after = {
        name.replace("base_model.model.", "", 1).replace(".base_layer", ""): parameter
        for name, parameter in model.named_parameters()
        if "lora_" not in name
    }
    assert after.keys() == frozen.keys()
    for name, before in frozen.items():
        assert torch.equal(after[name].detach(), before), name


@pytest.fixture(scope="module")
def wide_model_dir(tmp_path_factory) -> str:
    """A tiny model whose layers are wide enough (64) for bitsandbytes' CPU inference layout."""
    path = str(tmp_path_factory.mktemp("wide-model"))
    tokenizer = tiny_tokenizer()
    tiny_model(tokenizer, hidden_size=64, intermediate_size=128).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("bits", [4, 8])
def test_gradients_still_flow_after_an_evaluation_pass(wide_model_dir, bits):
    # On AVX512-BF16 CPUs bitsandbytes repacks 4-bit weights in place into an inference-only layout (whose kernel
    # has no backward) on the first eval-mode, no-grad forward; prepare() keeps the trainable layout.
    model, optimizer, _ = lora_on_quantized(wide_model_dir, BitsAndBytesOptions(bits=bits), use_cpu=True)
    inputs = text_batch(wide_model_dir)
    train_step(model, optimizer, inputs)  # the B matrices leave zero, so every A gets a gradient

    def lora_gradients() -> dict[str, torch.Tensor]:
        model.train()
        model(**inputs).loss.backward()
        grads = {
            n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None
        }
        optimizer.zero_grad()
        return grads

    before = lora_gradients()
    assert len(before) == 4 * len(PROJECTIONS)  # A and B of every projection of both layers
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).loss)
    after = lora_gradients()
    assert after.keys() == before.keys()
    for name, grad in before.items():
        assert torch.allclose(after[name], grad, rtol=1e-4, atol=1e-6), name


# ----------------------------------------------------------------------------------------- fast matmul
def lora_gradients_and_logits(
    model_dir, options
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """One training forward and backward of a LoRA model on quantized weights: logits, LoRA gradients and the
    gradient reaching the input embeddings (through every quantized layer)."""
    torch.manual_seed(0)  # the same LoRA initialisation for both paths
    model, _, _ = lora_on_quantized(model_dir, options, use_cpu=True)
    for name, parameter in model.named_parameters():  # B leaves zero, so the A matrices get gradients too
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.1, generator=torch.Generator().manual_seed(len(name)))
    model.train()
    inputs = text_batch(model_dir)
    embeds = model.get_input_embeddings()(inputs["input_ids"]).detach().requires_grad_(True)
    out = model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"], labels=inputs["labels"])
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    return out.logits.detach(), grads, embeds.grad


@pytest.mark.parametrize("double_quant", [True, False])
def test_fast_matmul_computes_what_bitsandbytes_computes(wide_model_dir, double_quant):
    from ft_core_bitsandbytes.fast_matmul import FastLinear4bit

    fast = lora_gradients_and_logits(wide_model_dir, BitsAndBytesOptions(double_quant=double_quant))
    slow = lora_gradients_and_logits(
        wide_model_dir, BitsAndBytesOptions(double_quant=double_quant, fast_matmul=False)
    )
    torch.testing.assert_close(fast[0], slow[0], rtol=1e-5, atol=1e-5)
    assert fast[1].keys() == slow[1].keys() and len(fast[1]) == 4 * len(PROJECTIONS)
    for name, grad in fast[1].items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grad, slow[1][name], rtol=1e-4, atol=1e-6, msg=name)
    assert fast[2].abs().sum() > 0
    torch.testing.assert_close(fast[2], slow[2], rtol=1e-4, atol=1e-6)
    model, _, _ = lora_on_quantized(wide_model_dir, BitsAndBytesOptions(), use_cpu=True)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(isinstance(m, FastLinear4bit) for m in layers)


def test_fast_matmul_leaves_inference_to_bitsandbytes(wide_model_dir, monkeypatch):
    from ft_core_bitsandbytes import fast_matmul

    model, _, _ = lora_on_quantized(wide_model_dir, BitsAndBytesOptions(), use_cpu=True)
    calls = []
    original = fast_matmul.dequantized_weight
    monkeypatch.setattr(fast_matmul, "dequantized_weight", lambda *a: calls.append(1) or original(*a))
    inputs = text_batch(wide_model_dir)
    with torch.no_grad():
        model(**inputs)
    assert calls == []  # no autograd: bitsandbytes' own (small-batch) kernels
    model(**inputs).loss.backward()
    # every layer of both blocks forward; backward all but the first block's q/k/v, whose input (the frozen
    # embeddings' output) needs no gradient
    assert len(calls) == 2 * len(PROJECTIONS) + 2 * len(PROJECTIONS) - 3


def test_lean_lora_forward_on_4bit_layers_computes_what_peft_computes(wide_model_dir):
    # ft-core-lora gives PEFT's 4-bit LoRA layers a leaner forward; it must compute what PEFT's does
    lean = pytest.importorskip("ft_core_lora.lean")
    from peft.tuners.lora.bnb import Linear4bit as PeftLinear4bit

    torch.manual_seed(0)
    model, _, _ = lora_on_quantized(wide_model_dir, BitsAndBytesOptions(), use_cpu=True)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.1, generator=torch.Generator().manual_seed(len(name)))
    inputs = text_batch(wide_model_dir)

    def logits_and_grads():
        model.zero_grad()
        out = model(**inputs)
        out.loss.backward()
        return out.logits.detach(), {
            n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad
        }

    expected = logits_and_grads()
    assert lean.make_lean(model) == 2 * len(PROJECTIONS)
    assert all(type(m).__name__ == "LeanLinear4bit" for m in model.modules() if isinstance(m, PeftLinear4bit))
    logits, grads = logits_and_grads()
    torch.testing.assert_close(logits, expected[0], rtol=0, atol=0)  # scaling 2: PEFT's roundings
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected[1][name], rtol=0, atol=0, msg=name)


def test_prepare_says_how_many_layers_use_the_fast_matmul(tiny_model_dir, capsys):
    options = BitsAndBytesOptions()
    model = load_quantized(BitsAndBytesQuantizer(), tiny_model_dir, options)
    BitsAndBytesQuantizer().prepare(model, options, quantizer_run(use_cpu=True))
    assert "14 Linear4bit layers (14 through ft-core's fast 4-bit matmul)" in capsys.readouterr().err
    slow = BitsAndBytesOptions(fast_matmul=False)
    model = load_quantized(BitsAndBytesQuantizer(), tiny_model_dir, slow)
    BitsAndBytesQuantizer().prepare(model, slow, quantizer_run(use_cpu=True))
    assert "14 Linear4bit layers\n" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- QLoRA run
def test_qlora_run_on_the_cpu(tmp_path, make_config, capfd):
    from ft_core.cli import main

    path = make_config(
        "qlora.yaml",
        data={"cutoff_len": 48, "max_samples": 8, "preprocessing_workers": 1},
        quantization={"method": "bitsandbytes", "bits": 4, "quant_type": "nf4", "double_quant": True},
        training={"save_steps": 1000, "plot_loss": False, "gradient_checkpointing": True},
    )
    assert main(["run", str(path)]) == 0
    err = capfd.readouterr().err
    assert (
        "bitsandbytes: 4-bit (nf4 + double quant, compute float32): 14 Linear4bit layers (14 through ft-core's fast 4-bit matmul)"
        in err
    )
    assert "gradient checkpointing: on, every layer" in err  # core's plan, applied after prepare
    artefact = Path(tmp_path / "run" / "model")
    assert (artefact / "adapter_model.safetensors").is_file()
    adapter_config = json.loads((artefact / "adapter_config.json").read_text())
    assert set(adapter_config["target_modules"]) == set(PROJECTIONS)
    assert not (artefact / "model.safetensors").exists()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    used = {(c["section"], c["name"], c["distribution"]) for c in manifest["components"]}
    assert ("quantization", "bitsandbytes", "ft-core-bitsandbytes") in used
