"""The bitsandbytes quantizer on a CUDA GPU: 4-bit NF4 (QLoRA) and 8-bit LLM.int8 runs of a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ft_core.testing.quantizers import quantizer_run
from ft_core_bitsandbytes import BitsAndBytesOptions, BitsAndBytesQuantizer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
bnb = pytest.importorskip("bitsandbytes")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _prepared_on_the_gpu(model_dir: str, options: BitsAndBytesOptions, **training):
    """``model_dir`` loaded in bf16 on GPU 0 with the quantizer's load kwargs, then ``prepare``d."""
    from transformers import AutoConfig, AutoModelForCausalLM

    quantizer = BitsAndBytesQuantizer()
    config = AutoConfig.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        config=config,
        dtype=torch.bfloat16,
        device_map={"": 0},
        **quantizer.load_kwargs(options, config),
    )
    return quantizer.prepare(model, options, quantizer_run(precision="bf16", **training))


@pytest.mark.parametrize("bits", [4, 8])
def test_quantized_lora_trains_on_the_gpu(tiny_model_dir, bits):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer

    model = _prepared_on_the_gpu(tiny_model_dir, BitsAndBytesOptions(bits=bits), gradient_checkpointing=True)
    q_proj = model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, bnb.nn.Linear4bit if bits == 4 else bnb.nn.Linear8bitLt)
    assert q_proj.weight.device.type == "cuda"
    if bits == 4:
        assert q_proj.compute_dtype == torch.bfloat16
        assert q_proj.weight.quant_state.quant_type == "nf4"
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(PROJECTIONS)))
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = torch.tensor(tokenizer(["hello world, this is a tiny test"] * 2)["input_ids"], device="cuda")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(3):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    ("quantization", "report"),
    [
        (
            {"method": "bitsandbytes", "bits": 4, "quant_type": "nf4", "double_quant": True},
            "bitsandbytes: 4-bit (nf4 + double quant, compute bfloat16): 14 Linear4bit layers (14 through ft-core's "
            "fast 4-bit matmul)",
        ),
        (
            {"method": "bnb", "bits": 8},
            "bitsandbytes: 8-bit (LLM.int8, threshold 6.0): 14 Linear8bitLt layers",
        ),
    ],
    ids=["nf4", "int8"],
)
def test_quantized_lora_run_on_the_gpu(tmp_path, make_config, capfd, quantization, report):
    from ft_core.cli import main

    path = make_config(
        "quantized.yaml",
        data={"cutoff_len": 48, "max_samples": 8, "preprocessing_workers": 1},
        quantization=quantization,
        training={"save_steps": 1000, "plot_loss": False, "gradient_checkpointing": True, "use_cpu": None},
    )
    assert main(["run", str(path)]) == 0
    assert report in capfd.readouterr().err
    artefact = Path(tmp_path / "run" / "model")
    assert (artefact / "adapter_model.safetensors").is_file()
    assert not (artefact / "model.safetensors").exists()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert len(losses) == 2 and all(loss == loss for loss in losses)  # logged, not NaN


def _qlora_pass(model_dir: str, options: BitsAndBytesOptions, ids: torch.Tensor):
    """Logits and LoRA gradients of one bf16 training pass of a LoRA model on 4-bit weights, on the GPU."""
    from peft import LoraConfig, get_peft_model

    model = _prepared_on_the_gpu(model_dir, options)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(PROJECTIONS)))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # nonzero, so that every A gets a gradient
            torch.nn.init.normal_(parameter, std=0.1)
    model.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    return out.logits.float(), {n: p.grad.float() for n, p in model.named_parameters() if p.requires_grad}


def test_fast_matmul_matches_bitsandbytes_on_the_gpu(tiny_model_dir):
    from ft_core_bitsandbytes.fast_matmul import _cuda_dequantize

    assert (
        _cuda_dequantize() is not None
    )  # this bitsandbytes' CUDA kernel is called without the op's dispatch
    # 2 x 320 tokens: above bitsandbytes' small-batch kernels, its matmul dequantizes and multiplies as ours does
    ids = torch.randint(0, 100, (2, 320), generator=torch.Generator().manual_seed(0)).cuda()
    fast = _qlora_pass(tiny_model_dir, BitsAndBytesOptions(), ids)
    slow = _qlora_pass(tiny_model_dir, BitsAndBytesOptions(fast_matmul=False), ids)
    torch.testing.assert_close(fast[0], slow[0], rtol=1e-2, atol=1e-2)
    assert fast[1].keys() == slow[1].keys() and len(fast[1]) == 4 * len(PROJECTIONS)
    for name, grad in fast[1].items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grad, slow[1][name], rtol=2e-2, atol=1e-3, msg=name)
