"""HQQ on a CUDA GPU: the weights are quantized layer by layer onto the GPU from a CPU copy, LoRA trains in bf16 and
its adapter reloads onto the same quantized base with equal logits; a whole run on the GPU."""

from __future__ import annotations

import json

import pytest
import torch

from ft_core.testing.quantizers import quantizer_run, text_batch
from ft_core_hqq import HqqOptions, HqqQuantizer, load_quantized_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
hqq_quantize = pytest.importorskip("hqq.core.quantize")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_lora_trains_on_the_gpu_and_reloads(tiny_model_dir, tmp_path, bits):
    from peft import LoraConfig, PeftModel, get_peft_model

    options = HqqOptions(bits=bits, group_size=16)
    model = load_quantized_model(tiny_model_dir, options, device=0, dtype=torch.bfloat16)
    layer = model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, hqq_quantize.HQQLinear) and layer.W_q.device.type == "cuda"
    assert layer.compute_dtype == torch.bfloat16 and model.model.embed_tokens.weight.device.type == "cuda"
    model = HqqQuantizer().prepare(model, options, quantizer_run(precision="bf16"))
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(PROJECTIONS)))
    inputs = {k: v.cuda() for k, v in text_batch(tiny_model_dir).items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(3):
        model.train()
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    with torch.no_grad():
        trained = model(**inputs).logits
    model.save_pretrained(str(tmp_path / "adapter"))
    base = load_quantized_model(tiny_model_dir, options, device=0, dtype=torch.bfloat16)
    reloaded = PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, trained, rtol=0, atol=0)


def test_hqq_run_on_the_gpu(tmp_path, make_config, capfd):
    from ft_core.cli import main

    path = make_config(
        data={"cutoff_len": 48, "max_samples": 8, "preprocessing_workers": 1},
        quantization={"method": "hqq", "bits": 4, "group_size": 16},
        training={"use_cpu": False, "precision": "bf16", "plot_loss": False},
    )
    assert main(["run", str(path)]) == 0
    assert (
        "hqq: 4-bit (groups of 16, axis 1), compute bfloat16: 14 HQQLinear layers" in capfd.readouterr().err
    )
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "completed"
