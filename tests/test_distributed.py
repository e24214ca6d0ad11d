"""Multi-process runs: a 2-process ``torchrun`` (gloo, CPU) LoRA SFT matches a 1-process run with the same global
batch, and only rank 0 writes outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TORCHRUN = Path(sys.executable).parent / "torchrun"


def _losses(run: Path) -> list[float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
def test_two_processes_train_like_one_with_the_same_global_batch(make_config, tmp_path):
    common = {"max_steps": 4, "learning_rate": 5e-3, "logging_steps": 1, "seed": 7}
    data = {"cache_dir": str(tmp_path / "cache-one")}
    one = make_config(
        "one.yaml",
        data=data,
        training={**common, "per_device_train_batch_size": 2, "output_dir": str(tmp_path / "one")},
    )
    two = make_config(
        "two.yaml",
        data={"cache_dir": str(tmp_path / "cache-two")},
        training={**common, "per_device_train_batch_size": 1, "output_dir": str(tmp_path / "two")},
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    single = subprocess.run(
        [sys.executable, "-m", "ft_core.cli", "run", str(one)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    double = subprocess.run(
        [
            str(TORCHRUN),
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
            "-m",
            "ft_core.cli",
            "run",
            str(two),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert double.returncode == 0, double.stderr[-3000:]
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 4
    assert b == pytest.approx(a, rel=2e-3), f"1 process {a} vs 2 processes {b}"
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert len(list((tmp_path / "cache-two").iterdir())) == 1, "the data was prepared once"
    assert double.stderr.count("[ft-core] chat template") == 1, "only rank 0 reports"
    assert double.stderr.count("lora: trainable params") == 1
    assert double.stdout.count("step 1/4") == 1
    assert "destroy_process_group" not in double.stderr
