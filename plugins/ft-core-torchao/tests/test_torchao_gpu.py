"""The torchao quantizer on a CUDA GPU: FP8 weights with FP8 matmuls (compute capability >= 8.9), FP8 and int8
weight-only LoRA training, weight memory, and an ``ft-core run``."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ft_core.testing.quantizers import quantizer_run
from ft_core_torchao import TorchAoOptions, TorchAoQuantizer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
pytest.importorskip("torchao")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def fp8_gpu() -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)


needs_fp8 = pytest.mark.skipif(not fp8_gpu(), reason="FP8 matmuls need compute capability >= 8.9")


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory) -> str:
    """A Llama-shaped random model with every linear size a multiple of 16 (FP8 matmul shapes), ~8M params."""
    from ft_core.testing import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    model = tiny_model(
        tokenizer, hidden_size=512, intermediate_size=1024, num_attention_heads=8, num_key_value_heads=4
    )
    path = str(tmp_path_factory.mktemp("small-model"))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def load(model_dir: str, options: TorchAoOptions | None):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    kwargs = TorchAoQuantizer().load_kwargs(options, config) if options else {}
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, config=config, dtype=torch.bfloat16, device_map={"": 0}, **kwargs
    )
    if options is None:
        return model.requires_grad_(False)
    return TorchAoQuantizer().prepare(model, options, quantizer_run(precision="bf16"))


def with_lora(model):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=list(PROJECTIONS)))
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()  # as the lora adapter's upcast does
    return model


def inputs(model_dir: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = tokenizer(["hello world, this is a tiny test of FP8 training " * 4] * 4)["input_ids"]
    ids = torch.tensor(ids, device="cuda")
    return {"input_ids": ids, "labels": ids}


def train(model, batch, steps: int = 5) -> list[float]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    model.train()
    losses = []
    for _ in range(steps):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


@needs_fp8
@pytest.mark.parametrize("fp8_backward", [False, True])
def test_float8_dynamic_lora_trains_through_fp8_matmuls(small_model_dir, monkeypatch, fp8_backward):
    from ft_core_torchao.linear import FrozenQuantizedLinear

    model = load(small_model_dir, TorchAoOptions(scheme="float8_dynamic", fp8_backward=fp8_backward))
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in PROJECTIONS:
            assert type(module) is FrozenQuantizedLinear, name
            assert (
                type(module.weight).__name__ == "Float8Tensor"
                and module.weight.qdata.dtype == torch.float8_e4m3fn
            )
            assert module.weight.act_quant_kwargs is not None, name  # activations go to FP8 too
    calls = []
    real_scaled_mm = torch._scaled_mm

    def counting_scaled_mm(*args, **kwargs):
        calls.append(args[0].dtype)
        return real_scaled_mm(*args, **kwargs)

    monkeypatch.setattr(torch, "_scaled_mm", counting_scaled_mm)
    model = with_lora(model)
    losses = train(model, inputs(small_model_dir))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    mslk = getattr(torch.ops, "mslk", None) is not None and hasattr(torch.ops.mslk, "f8f8bf16_rowwise")
    if not mslk:  # torchao's own FP8 GEMM (MSLK's, when installed, is called instead of torch._scaled_mm)
        assert calls and set(calls) == {torch.float8_e4m3fn}
        # every projection of every layer in every step; with the FP8 backward also the input gradients (all
        # but those of the first layer's q/k/v, whose input, the embeddings, needs none)
        forward = 5 * 2 * len(PROJECTIONS)
        assert len(calls) >= (2 * forward - 5 * 3 if fp8_backward else forward)


@needs_fp8
@pytest.mark.parametrize("fp8_backward", [False, True])
def test_float8_dynamic_adapter_gradients_match_the_dequantized_model(small_model_dir, fp8_backward):
    from ft_core_torchao.linear import dequantized, is_quantized

    quantized = load(small_model_dir, TorchAoOptions(scheme="float8_dynamic", fp8_backward=fp8_backward))
    reference = load(small_model_dir, None)
    modules = dict(reference.named_modules())
    with torch.no_grad():
        for name, module in quantized.named_modules():
            if isinstance(module, nn.Linear) and is_quantized(module.weight):
                modules[name].weight.copy_(dequantized(module.weight, torch.bfloat16))
    quantized, reference = with_lora(quantized), with_lora(reference)
    for model in (quantized, reference):
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                torch.manual_seed(hash(name) % 2**31)
                nn.init.normal_(parameter, std=0.02)
    batch = inputs(small_model_dir)
    grads = []
    for model in (quantized, reference):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            model(**batch).loss.backward()
        grads.append({n: p.grad.float().flatten() for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[1].items():
        # FP8 activations in the forward pass (and FP8 gradients with fp8_backward): close, not equal
        assert torch.cosine_similarity(grads[0][name], grad, dim=0) > (0.95 if fp8_backward else 0.97), name


@pytest.mark.parametrize("scheme", ["int8_weight_only", "float8_weight_only"])
def test_weight_only_lora_trains_on_the_gpu(small_model_dir, scheme):
    model = with_lora(load(small_model_dir, TorchAoOptions(scheme=scheme)))
    losses = train(model, inputs(small_model_dir))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    "scheme",
    [
        pytest.param("float8_dynamic", marks=needs_fp8),
        "float8_weight_only",
        "int8_weight_only",
    ],
)
def test_quantized_linear_weights_take_half_the_bf16_memory(small_model_dir, scheme):
    from ft_core_torchao.linear import is_quantized, weight_bytes

    torch.cuda.empty_cache()
    start = torch.cuda.memory_allocated()
    reference = load(small_model_dir, None)
    bf16_total = torch.cuda.memory_allocated() - start
    bf16_linear = sum(
        weight_bytes(m)
        for n, m in reference.named_modules()
        if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in PROJECTIONS
    )
    del reference
    torch.cuda.empty_cache()
    start = torch.cuda.memory_allocated()
    model = load(small_model_dir, TorchAoOptions(scheme=scheme))
    quantized_total = torch.cuda.memory_allocated() - start
    quantized = [m for m in model.modules() if isinstance(m, nn.Linear) and is_quantized(m.weight)]
    assert len(quantized) == 2 * len(PROJECTIONS)
    ratio = sum(weight_bytes(m) for m in quantized) / bf16_linear
    assert 0.5 <= ratio < 0.52, ratio  # a byte per weight plus a scale per row (in_features >= 512)
    # the GPU memory the model takes shrinks by (about) the bytes saved on the linear weights
    saved = bf16_total - quantized_total
    assert saved > 0.45 * bf16_linear, (bf16_total, quantized_total, bf16_linear)


@needs_fp8
def test_float8_dynamic_run_on_the_gpu(tmp_path, make_config, capfd):
    from ft_core.cli import main

    path = make_config(
        "torchao-fp8.yaml",
        data={"cutoff_len": 48, "max_samples": 8, "preprocessing_workers": 1},
        quantization={"method": "torchao", "scheme": "float8_dynamic"},
        training={"use_cpu": False, "precision": "bf16", "save_steps": 1000, "plot_loss": False},
    )
    assert main(["run", str(path)]) == 0
    err = capfd.readouterr().err
    assert "torchao: float8_dynamic (per-row scales): 14 linear layers quantized" in err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "completed"
