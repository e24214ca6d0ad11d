"""Each vision-language architecture trains a few LoRA steps end to end through ``ft-core run`` on the shapes demo
set, with a tiny random-init model and its processor built offline."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import tiny_vlm
import yaml

import ft_core_gemma
import ft_core_llava
import ft_core_paligemma
import ft_core_qwen_vl
from ft_core.testing import run_config


def train(
    tmp_path: Path, model_dir: Path, template: str, module: Any, **extra: Any
) -> tuple[Path, dict[str, Any]]:
    config = {
        "model": {"name_or_path": str(model_dir)},
        "template": {"name": template},
        "data": {
            "dataset": ["vlm_shapes_demo"],
            "cutoff_len": 256,
            "max_samples": 8,
            "cache_dir": str(tmp_path / "cache"),
        },
        "adapter": {"method": "lora", "rank": 4, "alpha": 8, "targets": "all"},
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 3,
            "per_device_train_batch_size": 2,
            "learning_rate": 1e-3,
            "logging_steps": 1,
            "save_steps": 100,
            "use_cpu": True,
            "plot_loss": False,
        },
    }
    for section, values in extra.items():
        config.setdefault(section, {}).update(values)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = run_config(path, module)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return run_dir, manifest


def losses(run_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


@pytest.mark.parametrize("model_type", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_vl_trains(tmp_path: Path, model_type: str) -> None:
    model_dir = tiny_vlm.qwen2_vl(tmp_path / model_type, ft_core_qwen_vl.QWEN2_VL, model_type)
    run_dir, manifest = train(tmp_path, model_dir, "qwen2_vl", ft_core_qwen_vl)
    assert manifest["status"] == "completed"
    assert manifest["model_family"]["name"] == "qwen2_vl"
    found = losses(run_dir)
    assert len(found) == 3 and all(math.isfinite(x) for x in found)


def test_llava_trains(tmp_path: Path) -> None:
    model_dir = tiny_vlm.llava(tmp_path / "llava", ft_core_llava.LLAVA)
    run_dir, manifest = train(tmp_path, model_dir, "llava", ft_core_llava)
    assert manifest["status"] == "completed" and manifest["model_family"]["name"] == "llava"
    assert len(losses(run_dir)) == 3


def test_paligemma_trains(tmp_path: Path) -> None:
    model_dir = tiny_vlm.paligemma(tmp_path / "paligemma")
    run_dir, manifest = train(tmp_path, model_dir, "paligemma", ft_core_paligemma)
    assert manifest["status"] == "completed" and manifest["model_family"]["name"] == "paligemma"
    assert len(losses(run_dir)) == 3


def test_gemma3_trains(tmp_path: Path) -> None:
    model_dir = tiny_vlm.gemma3(tmp_path / "gemma3", ft_core_gemma.GEMMA3)
    run_dir, manifest = train(tmp_path, model_dir, "gemma3", ft_core_gemma)
    assert manifest["status"] == "completed" and manifest["model_family"]["name"] == "gemma3"
    assert len(losses(run_dir)) == 3
