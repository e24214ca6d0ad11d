"""Training on a CUDA GPU (bf16, padded batches, fused kernels). Skipped where there is no GPU."""

from __future__ import annotations

import json

import pytest
import torch

from ft_core.bootstrap import load_plugins
from ft_core.engine.run.runner import load_and_validate, run_training

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("adapter", [{"method": "lora", "rank": 4}, {"method": "full"}])
def test_bf16_training_on_the_gpu(make_config, adapter):
    path = make_config(adapter=adapter, training={"use_cpu": False, "precision": "bf16", "max_steps": 3})
    plugins = load_plugins()
    run = run_training(load_and_validate(str(path), [], plugins), plugins)
    results = json.loads((run / "train_results.json").read_text())
    assert results["train_loss"] > 0 and results["effective_tokens_per_sec"] > 0
    assert torch.cuda.max_memory_allocated() > 0
