"""The torchao quantizer on the CPU: options, validation, load kwargs, quantized models, gradients through the
quantized layers, LoRA training and a run.

``int8_weight_only`` and ``float8_weight_only`` run on the CPU; ``float8_dynamic`` is refused there (torchao
checks for an FP8-capable GPU when it quantizes), but its layer is exercised on the CPU with that check bypassed
(PyTorch's CPU ``_scaled_mm`` runs FP8 matmuls).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import ft_core_torchao
from ft_core.api import (
    FtCoreError,
    OptionsError,
    Selection,
)
from ft_core.testing.import_light import check_import_light
from ft_core.testing.quantizers import load_quantized, quantizer_config, quantizer_run, text_batch
from ft_core_torchao import TorchAoOptions, TorchAoQuantizer, ignore_quantized_weights_in_ddp, torchao_config

torchao = pytest.importorskip("torchao")
from ft_core_torchao.linear import (  # noqa: E402 - after the importorskip
    FrozenQuantizedLinear,
    dequantized,
    is_quantized,
    make_trainable_through,
    weight_bytes,
)

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def prepared(model_dir: str, options: TorchAoOptions, dtype=torch.float32):
    return TorchAoQuantizer().prepare(
        load_quantized(TorchAoQuantizer(), model_dir, options, dtype), options, quantizer_run()
    )


def dequantized_copy(model_dir: str, quantized, dtype=torch.float32):
    """The unquantized model with every quantized weight of ``quantized`` replaced by its dequantized value."""
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    modules = dict(reference.named_modules())
    with torch.no_grad():
        for name, module in quantized.named_modules():
            if isinstance(module, nn.Linear) and is_quantized(module.weight):
                modules[name].weight.copy_(dequantized(module.weight, dtype))
    return reference.requires_grad_(False)


def with_lora(model, use_dora: bool = False):
    """LoRA on every projection, with non-zero B matrices (so that every adapter gets a gradient at once)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=list(PROJECTIONS), use_dora=use_dora)
    )
    torch.manual_seed(2)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            nn.init.normal_(parameter, std=0.1)
    return model


def adapter_grads(model, inputs) -> tuple[float, dict[str, torch.Tensor]]:
    loss = model(**inputs).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


# ----------------------------------------------------------------------------------------- registration
def test_registers_as_torchao(make_plugins):
    quantizer = make_plugins(ft_core_torchao).get("quantizer", "torchao")
    assert isinstance(quantizer, TorchAoQuantizer)
    assert quantizer.trains_with_adapters_only
    assert quantizer.options_schema is TorchAoOptions


def test_registration_is_import_light():
    check_import_light("ft_core_torchao", forbidden=("torch", "transformers", "peft", "torchao"))


def test_torchao_cpu_build_noise_is_filtered(make_plugins):
    make_plugins(ft_core_torchao)

    def passes(logger_name: str, message: str) -> bool:
        record = logging.LogRecord(logger_name, logging.WARNING, __file__, 1, message, (), None)
        return bool(logging.getLogger(logger_name).filter(record))

    kernel = "Failed to load /x/torchao/_C_cutlass_90a.abi3.so: Could not load this library"
    assert passes("torchao", kernel) == (torch.version.cuda is not None)  # kept where CUDA kernels matter
    assert passes("torchao", "something else")
    enum = "<enum 'KernelPreference'> is an Enum subclass and is now natively supported by torch.compile"
    assert not passes("torch.utils._pytree", enum)


# ----------------------------------------------------------------------------------------------- options
def test_defaults():
    options = TorchAoOptions()
    assert (options.scheme, options.granularity, options.group_size, options.skip_modules) == (
        "float8_dynamic",
        "row",
        None,
        [],
    )
    assert options.fp8_backward is False
    assert options.bits == 8  # read by the engine's checkpointing memory estimate
    assert options.describe() == "float8_dynamic (per-row scales)"
    assert TorchAoOptions(fp8_backward=True).describe() == "float8_dynamic (per-row scales, FP8 backward)"
    assert TorchAoOptions(skip_modules="down_proj, mlp.up_proj").skip_modules == ["down_proj", "mlp.up_proj"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"scheme": "int4_weight_only"},
            "int4_weight_only cannot be trained: PEFT cannot put LoRA.*bitsandbytes",
        ),
        ({"scheme": "int2"}, "scheme must be one of float8_dynamic, float8_weight_only, int8_weight_only"),
        ({"granularity": "block"}, "granularity must be row or tensor"),
        ({"scheme": "float8_dynamic", "group_size": 64}, "group_size applies to the weight-only schemes"),
        ({"scheme": "int8_weight_only", "group_size": 0}, "group_size must be a positive integer"),
        ({"scheme": "int8_weight_only", "group_size": True}, "group_size must be a positive integer"),
        ({"skip_modules": ["lm_head", " "]}, "skip_modules must be module names"),
        (
            {"scheme": "int8_weight_only", "fp8_backward": True},
            "fp8_backward applies to scheme float8_dynamic",
        ),
    ],
)
def test_bad_options_raise_options_error(values, message):
    with pytest.raises(OptionsError, match=message):
        TorchAoOptions(**values)


@pytest.mark.parametrize(
    ("values", "config_class", "granularity"),
    [
        ({"scheme": "float8_dynamic"}, "Float8DynamicActivationFloat8WeightConfig", "PerRow"),
        (
            {"scheme": "float8_dynamic", "granularity": "tensor"},
            "Float8DynamicActivationFloat8WeightConfig",
            "PerTensor",
        ),
        ({"scheme": "float8_weight_only"}, "Float8WeightOnlyConfig", "PerRow"),
        ({"scheme": "float8_weight_only", "group_size": 16}, "Float8WeightOnlyConfig", "PerGroup"),
        ({"scheme": "int8_weight_only", "granularity": "tensor"}, "Int8WeightOnlyConfig", "PerTensor"),
        ({"scheme": "int8_weight_only", "group_size": 32}, "Int8WeightOnlyConfig", "PerGroup"),
    ],
)
def test_torchao_config_per_scheme(values, config_class, granularity):
    config = torchao_config(TorchAoOptions(**values))
    assert type(config).__name__ == config_class
    granularities = config.granularity if isinstance(config.granularity, list) else [config.granularity]
    assert {type(g).__name__ for g in granularities} == {granularity}
    if values.get("group_size"):
        assert config.granularity.group_size == values["group_size"]
    assert config.set_inductor_config is False  # no global torch._inductor settings changed


# ------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("scheme", ["int8_weight_only", "float8_weight_only"])
def test_weight_only_schemes_validate_on_a_cpu_run(scheme):
    assert TorchAoQuantizer().validate(TorchAoOptions(scheme=scheme), quantizer_config(use_cpu=True)) == []


def test_float8_dynamic_is_refused_on_a_cpu_run():
    (problem,) = TorchAoQuantizer().validate(TorchAoOptions(), quantizer_config(use_cpu=True))
    assert problem.startswith("quantization.scheme: scheme float8_dynamic runs FP8 matmuls")
    assert "compute capability >= 8.9" in problem and "training.use_cpu is true" in problem
    assert "float8_weight_only" in problem and "int8_weight_only" in problem


def test_float8_dynamic_is_refused_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (problem,) = TorchAoQuantizer().validate(TorchAoOptions(), quantizer_config())
    assert "no CUDA GPU is visible" in problem


@pytest.mark.parametrize(
    ("capability", "ok"), [((8, 0), False), ((8, 6), False), ((8, 9), True), ((9, 0), True)]
)
def test_float8_dynamic_needs_compute_capability_8_9(monkeypatch, capability, ok):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Some GPU")
    monkeypatch.setattr(torch.version, "hip", None)
    problems = TorchAoQuantizer().validate(TorchAoOptions(), quantizer_config(precision="bf16"))
    if ok:
        assert problems == []
    else:
        (problem,) = problems
        assert f"Some GPU has {capability[0]}.{capability[1]}" in problem and "float8_weight_only" in problem


@pytest.mark.parametrize(
    ("granularity", "model_dtype", "precision", "ok"),
    [
        ("row", "auto", "fp16", False),
        ("row", "float32", "auto", False),
        ("row", "auto", "bf16", True),
        ("row", "auto", "auto", True),
        ("tensor", "auto", "fp16", True),
    ],
)
def test_row_scaled_float8_dynamic_needs_bf16_weights(monkeypatch, granularity, model_dtype, precision, ok):
    monkeypatch.setattr(ft_core_torchao.quantizer, "fp8_hardware_problem", lambda config: None)
    options = TorchAoOptions(granularity=granularity)
    problems = TorchAoQuantizer().validate(
        options, quantizer_config(model_dtype=model_dtype, precision=precision)
    )
    if ok:
        assert problems == []
    else:
        (problem,) = problems
        assert problem.startswith(
            "quantization.granularity: row-scaled float8_dynamic needs bfloat16 weights"
        )


def test_validate_says_how_to_install_a_missing_torchao(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real_find_spec(name, *a)
    )
    problems = TorchAoQuantizer().validate(TorchAoOptions(scheme="int8_weight_only"), quantizer_config())
    assert problems == [
        "quantization.method: the torchao package is not installed: pip install 'torchao>=0.18' (a release "
        "built for your torch version)"
    ]
    with pytest.raises(FtCoreError, match="not installed"):
        TorchAoQuantizer().load_kwargs(TorchAoOptions(scheme="int8_weight_only"), None)


def test_validate_refuses_an_old_torchao(monkeypatch):
    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: "0.12.0" if name == "torchao" else real_version(name)
    )
    (problem,) = TorchAoQuantizer().validate(TorchAoOptions(scheme="int8_weight_only"), quantizer_config())
    assert "torchao 0.12.0 is too old" in problem


def _validate(make_config, quantization, capsys, adapter="lora"):
    """``ft-core validate`` of the kit's tiny run config with ``quantization`` and ``adapter``: (status, stderr)."""
    from ft_core.cli import main

    path = make_config(quantization=quantization, adapter={"method": adapter})
    return main(["validate", str(path)]), capsys.readouterr().err


def test_ft_core_validate(make_config, capsys):
    status, err = _validate(make_config, {"method": "torchao", "scheme": "int4_weight_only"}, capsys)
    assert status == 2 and "int4_weight_only cannot be trained" in err
    status, err = _validate(make_config, {"method": "torchao", "scheme": "float8_dynamic"}, capsys)
    assert status == 2 and "quantization.scheme: scheme float8_dynamic runs FP8 matmuls" in err
    status, err = _validate(make_config, {"method": "torchao", "scheme": "int8_weight_only"}, capsys)
    assert status == 0, err


def test_ft_core_validate_refuses_full_tuning_of_quantized_weights(make_config, capsys):
    pytest.importorskip("ft_core_full")
    quantization = {"method": "torchao", "scheme": "int8_weight_only"}
    status, err = _validate(make_config, quantization, capsys, adapter="full")
    assert status == 2 and "quantization" in err and "full" in err


# ---------------------------------------------------------------------------------------- load kwargs
def test_load_kwargs(tiny_model_dir):
    from transformers import AutoConfig, TorchAoConfig

    options = TorchAoOptions(scheme="int8_weight_only")
    kwargs = TorchAoQuantizer().load_kwargs(options, AutoConfig.from_pretrained(tiny_model_dir))
    assert set(kwargs) == {"quantization_config"}
    config = kwargs["quantization_config"]
    assert isinstance(config, TorchAoConfig)
    assert type(config.quant_type).__name__ == "Int8WeightOnlyConfig"
    assert config.modules_to_not_convert is None  # transformers' defaults: the output head stays unquantized


def test_load_kwargs_expand_skip_modules_to_full_names(tiny_model_dir):
    # transformers matches modules_to_not_convert from the start of parameter names: "down_proj" alone would
    # skip nothing, so the patterns are expanded to module names (plus the output head).
    from transformers import AutoConfig

    options = TorchAoOptions(
        scheme="int8_weight_only", skip_modules=["down_proj", r"model\.layers\.1\.self_attn\.q_proj"]
    )
    config = TorchAoQuantizer().load_kwargs(options, AutoConfig.from_pretrained(tiny_model_dir))
    assert config["quantization_config"].modules_to_not_convert == [
        "lm_head",
        "model.layers.0.mlp.down_proj",
        "model.layers.1.mlp.down_proj",
        "model.layers.1.self_attn.q_proj",
    ]


def test_load_kwargs_refuse_skip_modules_that_match_nothing(tiny_model_dir):
    from transformers import AutoConfig

    options = TorchAoOptions(scheme="int8_weight_only", skip_modules=["down_prj"])
    with pytest.raises(FtCoreError, match=r"skip_modules: 'down_prj' matches no module .*down_proj"):
        TorchAoQuantizer().load_kwargs(options, AutoConfig.from_pretrained(tiny_model_dir))


def test_load_kwargs_refuse_a_group_size_that_does_not_divide(tiny_model_dir):
    from transformers import AutoConfig

    options = TorchAoOptions(scheme="int8_weight_only", group_size=24)  # hidden 32, intermediate 64
    with pytest.raises(FtCoreError, match="group_size: 24 does not divide the input size 32"):
        TorchAoQuantizer().load_kwargs(options, AutoConfig.from_pretrained(tiny_model_dir))


# ------------------------------------------------------------------------------------- quantized models
@pytest.mark.parametrize(
    ("scheme", "tensor_class", "dtype"),
    [
        ("int8_weight_only", "Int8Tensor", torch.float32),
        ("float8_weight_only", "Float8Tensor", torch.bfloat16),
    ],
)
def test_every_projection_is_quantized_but_not_the_head(tiny_model_dir, capsys, scheme, tensor_class, dtype):
    from transformers import AutoModelForCausalLM

    options = TorchAoOptions(scheme=scheme)
    model = prepared(tiny_model_dir, options, dtype)
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in PROJECTIONS:
            assert type(module) is FrozenQuantizedLinear, name
            assert type(module.weight).__name__ == tensor_class, name
    assert type(model.lm_head) is nn.Linear and not is_quantized(model.lm_head.weight)
    assert not any(p.requires_grad for p in model.parameters())
    err = capsys.readouterr().err
    assert f"torchao: {scheme} (per-row scales): 14 linear layers quantized" in err
    assert "unquantized: lm_head" in err
    # 8-bit weights: a byte per weight, plus an fp32 scale (and, for int8, an int8 zero point) per row
    projection = model.model.layers[0].mlp.up_proj
    extra = weight_bytes(projection) - projection.weight.numel()
    assert 4 * projection.out_features <= extra <= 5 * projection.out_features
    # close to, but not the same as, the full-precision model
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=dtype)
    inputs = text_batch(tiny_model_dir)
    with torch.no_grad():
        quantized_loss, reference_loss = model(**inputs).loss.float(), reference(**inputs).loss.float()
    assert 0 < abs(quantized_loss - reference_loss) < 0.02 * reference_loss


def test_skip_modules_stay_unquantized(tiny_model_dir, capsys):
    options = TorchAoOptions(
        scheme="int8_weight_only", skip_modules="down_proj, model.layers.1.self_attn.q_proj"
    )
    model = prepared(tiny_model_dir, options)
    assert type(model.model.layers[1].self_attn.q_proj) is nn.Linear
    assert type(model.model.layers[0].self_attn.q_proj) is FrozenQuantizedLinear
    assert all(type(layer.mlp.down_proj) is nn.Linear for layer in model.model.layers)
    assert "11 linear layers quantized" in capsys.readouterr().err


def test_prepare_refuses_a_model_without_quantized_layers(tiny_model):
    with pytest.raises(FtCoreError, match="no layer of LlamaForCausalLM was quantized by torchao"):
        TorchAoQuantizer().prepare(tiny_model, TorchAoOptions(scheme="int8_weight_only"), quantizer_run())


# ----------------------------------------------------------------------- gradients through the quantized base
@pytest.mark.parametrize(
    ("scheme", "dtype", "use_dora"),
    [
        ("int8_weight_only", torch.float32, False),
        ("float8_weight_only", torch.float32, False),
        ("int8_weight_only", torch.float32, True),
    ],
)
def test_adapter_gradients_equal_those_of_the_dequantized_model(tiny_model_dir, scheme, dtype, use_dora):
    # The adapters of layer 0 get their gradient through every quantized layer above them: the gradients must be
    # those of the same model with plain (dequantized) weights.
    quantized = prepared(tiny_model_dir, TorchAoOptions(scheme=scheme), dtype)
    reference = dequantized_copy(tiny_model_dir, quantized, dtype)
    quantized, reference = with_lora(quantized, use_dora), with_lora(reference, use_dora)
    assert type(quantized.base_model.model.model.layers[0].self_attn.q_proj).__name__ == "TorchaoLoraLinear"
    inputs = text_batch(tiny_model_dir)
    loss, grads = adapter_grads(quantized, inputs)
    reference_loss, reference_grads = adapter_grads(reference, inputs)
    assert loss == pytest.approx(reference_loss, rel=1e-5)
    assert grads.keys() == reference_grads.keys() and len(grads) == 2 * len(PROJECTIONS) * 2 * (
        1 + use_dora / 2
    )
    for name, grad in reference_grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_the_backward_pass_keeps_no_dequantized_weight():
    # torchao's weight-only linear computes x @ dequantized(W) with autograd on: autograd would keep a
    # full-precision copy of every weight until the backward pass. FrozenQuantizedLinear keeps none.
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    def saved_bytes(layer) -> int:
        sizes = []

        def pack(tensor):
            sizes.append(tensor.numel() * tensor.element_size())
            return tensor

        x = torch.randn(4, 256, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y = layer(x)
        y.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        return sum(sizes)

    torch.manual_seed(0)
    layer = nn.Linear(256, 512, bias=False)
    quantize_(layer, Int8WeightOnlyConfig(set_inductor_config=False))
    layer.weight.requires_grad_(False)
    full_weight = 256 * 512 * 4
    assert saved_bytes(layer) >= full_weight  # torchao alone: an fp32 copy of the weight is kept
    assert make_trainable_through(layer) == [""]
    assert saved_bytes(layer) < full_weight / 100


@pytest.mark.parametrize("fp8_backward", [False, True])
@pytest.mark.parametrize("granularity", ["row", "tensor"])
def test_float8_dynamic_layers_train_through_fp8_matmuls(monkeypatch, granularity, fp8_backward):
    # torch._scaled_mm (the FP8 matmul of float8_dynamic) has no derivative; FrozenQuantizedLinear gives the
    # input gradient. torchao refuses to quantize for float8_dynamic without an FP8 GPU, but PyTorch's CPU
    # _scaled_mm runs FP8 matmuls: bypass the check to run the layer here.
    from torchao.quantization import quant_api, quantize_

    monkeypatch.setattr(quant_api, "_check_hardware_support", lambda granularity: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    calls = []
    real_scaled_mm = torch._scaled_mm

    def counting_scaled_mm(*args, **kwargs):
        calls.append(tuple(args[0].shape))
        return real_scaled_mm(*args, **kwargs)

    monkeypatch.setattr(torch, "_scaled_mm", counting_scaled_mm)
    torch.manual_seed(0)
    layer = nn.Linear(64, 128, bias=False, dtype=torch.bfloat16)
    options = TorchAoOptions(scheme="float8_dynamic", granularity=granularity, fp8_backward=fp8_backward)
    quantize_(layer, torchao_config(options))
    assert layer.weight.act_quant_kwargs is not None  # activations are quantized to FP8 too
    assert make_trainable_through(layer, fp8_backward=fp8_backward) == [""]
    reference = nn.Linear(64, 128, bias=False, dtype=torch.bfloat16)
    reference.weight.data = dequantized(layer.weight, torch.bfloat16)
    x = torch.randn(3, 5, 64, dtype=torch.bfloat16, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    upstream = torch.randn(3, 5, 128, dtype=torch.bfloat16)
    output = layer(x)
    assert calls == [(15, 64)]  # the forward: an FP8 matmul of the 15 tokens
    (output * upstream).sum().backward()
    assert calls == [(15, 64), (15, 128)] if fp8_backward else [(15, 64)]
    (reference(x_ref) * upstream).sum().backward()
    error = (x.grad.float() - x_ref.grad.float()).norm() / x_ref.grad.float().norm()
    assert error < (0.05 if fp8_backward else 0.01)  # e4m3 gradients: a few percent
    torch.testing.assert_close(output, reference(x), rtol=0.1, atol=0.1)  # FP8 activations: coarse


def test_fp8_grad_input_equals_the_product_with_the_dequantized_weight():
    from torchao.quantization import Float8Tensor, PerRow, PerTensor

    from ft_core_torchao.linear import fp8_backward_supported, fp8_grad_input

    torch.manual_seed(0)
    grad = torch.randn(2, 7, 96, dtype=torch.bfloat16)
    for granularity in (PerRow(), PerTensor()):
        weight = Float8Tensor.from_hp(
            torch.randn(96, 48, dtype=torch.bfloat16) * 0.02, granularity=granularity
        )
        assert fp8_backward_supported(weight, grad)
        assert not fp8_backward_supported(weight, grad.float())  # row-scaled FP8 matmuls return bf16
        result = fp8_grad_input(grad, weight)
        expected = grad.float() @ weight.dequantize(torch.float32)
        assert result.shape == (2, 7, 48) and result.dtype == torch.bfloat16
        assert (result.float() - expected).norm() / expected.norm() < 0.05


# ---------------------------------------------------------------------------------------------- training
def train_step(model, optimizer, inputs) -> float:
    model.train()
    loss = model(**inputs).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def test_lora_trains_on_int8_weights_like_on_full_precision_ones(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    inputs = text_batch(tiny_model_dir)
    losses = {}
    for quantize in (True, False):
        if quantize:
            model = prepared(tiny_model_dir, TorchAoOptions(scheme="int8_weight_only"))
        else:
            model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).requires_grad_(
                False
            )
        frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not is_quantized(p)}
        torch.manual_seed(0)
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(PROJECTIONS)))
        lora = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        losses[quantize] = [train_step(model, optimizer, inputs) for _ in range(3)]
        after = dict(model.named_parameters())
        assert all(not torch.equal(after[n], before) for n, before in lora.items())  # every adapter moved
        untouched = {
            n.replace("base_model.model.", "", 1).replace(".base_layer", ""): p
            for n, p in after.items()
            if "lora_" not in n and not is_quantized(p)
        }
        assert all(torch.equal(untouched[n], before) for n, before in frozen.items())
    assert losses[True][-1] < losses[True][0]
    for quantized_loss, full_loss in zip(losses[True], losses[False], strict=True):
        assert quantized_loss == pytest.approx(full_loss, rel=0.01)


def test_ddp_ignores_the_quantized_weights(tiny_model_dir, tmp_path):
    # DistributedDataParallel broadcasts every parameter when it wraps a model: torchao weights cannot be.
    import torch.distributed as dist

    model = with_lora(prepared(tiny_model_dir, TorchAoOptions(scheme="int8_weight_only")))
    names = ignore_quantized_weights_in_ddp(model)
    assert len(names) == 2 * len(PROJECTIONS)
    assert all(n.endswith(".base_layer.weight") for n in names)
    assert model._ddp_params_and_buffers_to_ignore == sorted(names)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        wrapped = nn.parallel.DistributedDataParallel(model)
        loss = wrapped(**text_batch(tiny_model_dir)).loss
        loss.backward()
    finally:
        dist.destroy_process_group()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_model_ready_hook_marks_the_quantized_weights_of_torchao_runs(tiny_model_dir):
    model = with_lora(prepared(tiny_model_dir, TorchAoOptions(scheme="int8_weight_only")))
    quantizer = TorchAoQuantizer()
    selection = Selection(
        "quantization", "quantizer", "torchao", quantizer, TorchAoOptions(), "ft-core-torchao", "0"
    )
    ft_core_torchao.ft_model_ready(model=model, run=SimpleNamespace(config=quantizer_config()), role="policy")
    assert not hasattr(model, "_ddp_params_and_buffers_to_ignore")  # not a torchao run
    run = SimpleNamespace(config=quantizer_config(selections={"quantization": [selection]}))
    ft_core_torchao.ft_model_ready(model=model, run=run, role="policy")
    assert len(model._ddp_params_and_buffers_to_ignore) == 2 * len(PROJECTIONS)


# ------------------------------------------------------------------------------------------------ a run
def test_lora_run_on_int8_weights(tmp_path, make_config, capfd):
    from ft_core.cli import main

    path = make_config(
        "torchao.yaml",
        data={"cutoff_len": 48, "max_samples": 8, "preprocessing_workers": 1},
        quantization={"method": "torchao", "scheme": "int8_weight_only"},
        training={"save_steps": 1000, "plot_loss": False, "gradient_checkpointing": True},
    )
    assert main(["run", str(path)]) == 0
    err = capfd.readouterr().err
    assert "torchao: int8_weight_only (per-row scales): 14 linear layers quantized" in err
    artefact = Path(tmp_path / "run" / "model")
    assert (artefact / "adapter_model.safetensors").is_file()
    assert not (artefact / "model.safetensors").exists()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    used = {(c["section"], c["name"], c["distribution"]) for c in manifest["components"]}
    assert ("quantization", "torchao", "ft-core-torchao") in used
