"""End to end on the real embedded model (SmolLM2-135M-Instruct): ``configs/ppo.yaml`` as written, for 2 steps,
logs the stage's metrics as run events and saves the adapter with the value head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ft_core_ppo
from ft_core.testing import run_config

pytestmark = pytest.mark.e2e
CONFIG = Path(__file__).resolve().parents[3] / "configs" / "ppo.yaml"
METRICS = (
    "objective/scores",
    "objective/kl",
    "objective/entropy",
    "policy/loss",
    "policy/clipfrac",
    "value/loss",
)


def test_the_example_config_trains_and_logs_its_metrics(tmp_path):
    overrides = [
        f"training.output_dir={tmp_path / 'run'}",
        "training.max_steps=2",
        "training.logging_steps=1",
    ]
    run = run_config(CONFIG, ft_core_ppo, overrides=overrides, distribution="ft-core-ppo")
    assert json.loads((run / "manifest.json").read_text())["status"] == "completed"
    assert (run / "model" / "adapter_model.safetensors").is_file()
    assert (run / "model" / "heads.safetensors").is_file()
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [s.get("metrics", s) for s in steps]
    steps = [s for s in steps if "loss" in s]
    assert len(steps) == 2
    for name in METRICS:
        assert all(name in s for s in steps), (name, steps)
    # the demo's rewards (length among them) score the first answers above zero: the policy gets a gradient
    assert steps[0]["objective/scores"] > 0 and steps[0]["grad_norm"] > 0, steps[0]
