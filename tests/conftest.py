"""Shared helpers for the cross-package tests: write a run config around a tiny model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

# CI runs in strict mode: a plugin of this repo that fails to load fails the tests.
os.environ.setdefault("FT_CORE_STRICT", "1")


@pytest.fixture
def make_config(tmp_path: Path, tiny_model_dir: str):
    """``make_config(**sections)`` writes a config for the tiny model and returns its path.

    Each keyword is a section merged over the defaults (LoRA SFT on the identity demo set, 2 steps).
    """

    def make(name: str = "config.yaml", **sections: Any) -> Path:
        config: dict[str, Any] = {
            "model": {"name_or_path": tiny_model_dir},
            "data": {"dataset": ["identity"], "cutoff_len": 64, "cache_dir": str(tmp_path / "cache")},
            "adapter": {"method": "lora", "rank": 4, "alpha": 8},
            "training": {
                "output_dir": str(tmp_path / "run"),
                "max_steps": 2,
                "per_device_train_batch_size": 2,
                "learning_rate": 1e-3,
                "logging_steps": 1,
                "save_steps": 100,
                "use_cpu": True,
            },
        }
        for section, value in sections.items():
            if section != "adapter" and isinstance(value, dict) and isinstance(config.get(section), dict):
                config[section] = {**config[section], **value}
            else:
                config[section] = value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config))
        return path

    return make
