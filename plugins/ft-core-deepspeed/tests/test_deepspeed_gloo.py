"""DeepSpeed ZeRO end to end on the CPU (DeepSpeed's CPU accelerator, 2 processes): ``ft-core run`` relaunches
itself (``distributed.nproc: 2``), trains like one process with the same global batch, and writes a plain Hugging
Face artefact with whole weights. Skipped when deepspeed is not installed (the plugin's ``deepspeed`` extra)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed")

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _ft_core(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ft_core.cli", *args], env=ENV, capture_output=True, text=True, timeout=600
    )


def _losses(run: Path) -> list[float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


def _state_dict(folder: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    assert files, f"no safetensors in {folder}: {sorted(p.name for p in folder.iterdir())}"
    return {k: v for f in files for k, v in load_file(str(f)).items()}


@pytest.mark.parametrize(("stage", "adapter"), [(3, {"method": "full"}), (2, {"method": "lora", "rank": 4})])
def test_two_zero_processes_train_like_one_and_save_whole_weights(make_config, tmp_path, stage, adapter):
    common = {"max_steps": 3, "learning_rate": 1e-3, "logging_steps": 1, "seed": 7}
    one = make_config(
        "one.yaml",
        adapter=adapter,
        data={"cache_dir": str(tmp_path / "cache-one")},
        training={**common, "per_device_train_batch_size": 2, "output_dir": str(tmp_path / "one")},
    )
    two = make_config(
        "two.yaml",
        adapter=adapter,
        data={"cache_dir": str(tmp_path / "cache-two")},
        training={**common, "per_device_train_batch_size": 1, "output_dir": str(tmp_path / "two")},
        distributed={"strategy": "deepspeed", "nproc": 2},
        deepspeed={"stage": stage},
    )
    single = _ft_core("run", str(one))
    assert single.returncode == 0, single.stderr[-3000:]
    double = _ft_core("run", str(two))
    assert double.returncode == 0, double.stderr[-3000:]
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 3
    assert b == pytest.approx(a, rel=2e-3), f"1 process {a} vs 2 ZeRO-{stage} processes {b}"

    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["decisions"]["strategy"]["value"] == "deepspeed"
    assert manifest["decisions"]["deepspeed"]["value"]["stage"] == stage
    plain, gathered = _state_dict(tmp_path / "one" / "model"), _state_dict(tmp_path / "two" / "model")
    assert sorted(gathered) == sorted(plain)
    for key, tensor in plain.items():
        assert gathered[key].shape == tensor.shape, key
        assert (gathered[key].float() - tensor.float()).abs().max() < 5e-3, key
