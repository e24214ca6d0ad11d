"""EETQ on a CUDA GPU: LoRA trains on int8 weights and its adapter reloads with equal logits. Skips without a CUDA
GPU, the eetq package (built from source) or kernels with EETQ's Hub kernel cached."""

from __future__ import annotations

import pytest
import torch

from ft_core.testing.quantizers import load_quantized, quantizer_config, quantizer_run, text_batch
from ft_core_eetq import EetqOptions, EetqQuantizer, installation_problems

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(autouse=True)
def _eetq_ready():
    problems = installation_problems() + EetqQuantizer().validate(EetqOptions(), quantizer_config())
    if problems:
        pytest.skip("; ".join(dict.fromkeys(problems)))


def test_lora_trains_on_eetq_weights_and_reloads(tiny_model_dir, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    quantizer, options = EetqQuantizer(), EetqOptions()

    def quantized():
        model = load_quantized(quantizer, tiny_model_dir, options, dtype=torch.float16, device=0)
        return quantizer.prepare(model, options, quantizer_run(precision="fp16"))

    model = get_peft_model(quantized(), LoraConfig(r=4, lora_alpha=8, target_modules=list(PROJECTIONS)))
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()
    inputs = {k: v.cuda() for k, v in text_batch(tiny_model_dir).items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(3):
        model.train()
        with torch.autocast("cuda", dtype=torch.float16):
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
    reloaded = PeftModel.from_pretrained(quantized(), str(tmp_path / "adapter")).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, trained)
