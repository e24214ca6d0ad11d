"""End to end on the real embedded model (SmolLM2-135M-Instruct): ``configs/grpo.yaml`` as written, for 2 steps,
logs the stage's metrics as run events and saves the adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ft_core_grpo
from ft_core.testing import run_config

pytestmark = pytest.mark.e2e
CONFIG = Path(__file__).resolve().parents[3] / "configs" / "grpo.yaml"
METRICS = ("reward", "rewards/exact_match/mean")


def test_the_example_config_trains_and_logs_its_metrics(tmp_path):
    overrides = [
        f"training.output_dir={tmp_path / 'run'}",
        "training.max_steps=2",
        "training.logging_steps=1",
    ]
    run = run_config(CONFIG, ft_core_grpo, overrides=overrides, distribution="ft-core-grpo")
    assert json.loads((run / "manifest.json").read_text())["status"] == "completed"
    assert list(run.rglob("adapter_model.safetensors"))
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [s.get("metrics", s) for s in steps]
    steps = [s for s in steps if "loss" in s]
    assert len(steps) == 2
    for name in METRICS:
        assert any(name in s for s in steps), (name, steps)
    # the demo's rewards (length among them) differ within a group from the first step: the policy gets a gradient
    assert steps[0]["reward_std"] > 0 and steps[0]["grad_norm"] > 0, steps[0]
