"""configs/vlm_lora_demo.yaml as written (only its caches and output in a temporary folder): tiny-qwen2-vl, a small
random-init Qwen2-VL built on first use, learns the shapes demo set, its loss falling well below where it started."""

from __future__ import annotations

import json
from pathlib import Path

import ft_core_qwen_vl
from ft_core.testing import run_config

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "vlm_lora_demo.yaml"


def test_the_demo_config_learns(tmp_path: Path) -> None:
    run_dir = run_config(
        CONFIG,
        ft_core_qwen_vl,
        overrides=[
            f"model.cache_dir={tmp_path / 'models'}",
            f"training.output_dir={tmp_path / 'run'}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "training.logging_steps=1",
        ],
    )
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 30
    start, end = losses[0], sum(losses[-3:]) / 3
    assert start > 4.0, losses  # ~ln(vocabulary): the random model knows nothing
    assert end < start / 4, losses
    assert (tmp_path / "models" / "tiny-qwen2-vl-v1" / "config.json").is_file()  # built into the cache
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["model_family"]["name"] == "qwen2_vl" and manifest["status"] == "completed"
