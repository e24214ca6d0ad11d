"""Model FLOPs of the benchmark workload and model-FLOPs utilisation (MFU), shared by ``bench_sft.py`` (ft-core)
and ``lf_bench_modes.py`` (LLaMA-Factory): plain Python plus the workload's tokenizer, no ft-core import.

Training FLOPs per token, the PaLM-paper convention (Chowdhery et al. 2022, appendix B):

    6 * N  +  12 * L * d * s

``N`` = parameters taking part in matrix products per token (every decoder layer's projections and the output
head; not the embedding lookup), ``L`` layers, ``d`` hidden size, ``s`` the attention context. Each row attends
over itself only (padding and packed neighbours do not count), so ``s`` is the token-weighted mean row length
``sum(len^2) / sum(len)`` over the workload's rows (cut at ``cutoff_len``). The formula counts a full backward
(weight and input gradients) and no recomputation, so it is the *model* FLOPs of a full fine-tune: with LoRA on a
frozen base the hardware skips the weight gradients (about 4N) and gradient checkpointing adds a forward (2N);
MFU here is always quoted on the standard 6N formula, so that figures of both systems and all modes compare.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Dense bf16 peak of an NVIDIA H200 (and H100 SXM), TFLOP/s, without sparsity.
H200_BF16_PEAK_TFLOPS = 989.0
#: Device names with the peak above.
_PEAKS = {"H200": H200_BF16_PEAK_TFLOPS, "H100": H200_BF16_PEAK_TFLOPS}


def matmul_parameters(config: dict[str, Any]) -> int:
    """Parameters in per-token matrix products of a Llama-like decoder (q/k/v/o, gate/up/down, output head)."""
    d, layers = config["hidden_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or d // heads
    attention = 2 * d * heads * head_dim + 2 * d * kv_heads * head_dim
    mlp = 3 * d * config["intermediate_size"]
    return layers * (attention + mlp) + d * config["vocab_size"]


def _rows(data_dir: Path) -> list[str]:
    """Every row of the alpaca-format datasets named in ``dataset_info.json``, as one text."""
    info = json.loads((data_dir / "dataset_info.json").read_text())
    texts = []
    for entry in info.values():
        for row in json.loads((data_dir / entry["file_name"]).read_text()):
            texts.append(" ".join(str(row.get(k) or "") for k in ("instruction", "input", "output")).strip())
    return texts


def effective_context(work: Path, cutoff_len: int) -> float:
    """``sum(len^2) / sum(len)`` of the workload's rows in tokens (template tokens left out; cut at cutoff)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(work / "model"))
    lengths = [min(len(ids), cutoff_len) for ids in tokenizer(_rows(work / "data"))["input_ids"]]
    total = sum(lengths)
    return sum(n * n for n in lengths) / total if total else 0.0


def workload_flops(work: Path, cutoff_len: int) -> dict[str, Any]:
    """FLOPs per trained token of the workload in ``work`` (``model/config.json``, ``data/``) and its parts."""
    config = json.loads((work / "model" / "config.json").read_text())
    params = matmul_parameters(config)
    context = effective_context(work, cutoff_len)
    attention = 12 * config["num_hidden_layers"] * config["hidden_size"] * context
    return {
        "flops_per_token": 6 * params + attention,
        "matmul_params": params,
        "attention_context": round(context, 1),
        "mfu_formula": "6N + 12*L*d*s per token (standard 6N even for LoRA with a frozen base)",
    }


def peak_tflops(device_name: str | None, override: float | None = None) -> float | None:
    """The dense bf16 peak of the device (``override`` wins), or ``None`` when unknown (CPU)."""
    if override:
        return override
    for key, value in _PEAKS.items():
        if device_name and key in device_name:
            return value
    return None


def mfu(tokens_per_sec: float | None, flops_per_token: float, peak: float | None) -> float | None:
    """Model-FLOPs utilisation (0-1) at ``tokens_per_sec``, or ``None`` without a rate or a peak."""
    if not tokens_per_sec or not peak:
        return None
    return round(tokens_per_sec * flops_per_token / (peak * 1e12), 4)
