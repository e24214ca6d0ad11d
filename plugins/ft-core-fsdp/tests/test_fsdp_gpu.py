"""FSDP2 end to end on 2 CUDA GPUs (NCCL): ``ft-core run`` relaunches itself on 2 processes
(``distributed.nproc: 2``), trains like one process with the same global batch, writes a plain Hugging Face artefact,
and a run whose rank is killed resumes from its last sharded checkpoint. Skipped without 2 GPUs (accelerate runs
FSDP only on GPU process groups); ``tools/gpu_tests.sh`` runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="FSDP2 runs need 2 CUDA GPUs"),
]
GPU = {"use_cpu": None, "precision": "bf16"}

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _ft_core(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ft_core.cli", *args], env=ENV, capture_output=True, text=True, timeout=timeout
    )


def _losses(run: Path) -> list[float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


def _state_dict(folder: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    assert files, f"no safetensors in {folder}: {sorted(p.name for p in folder.iterdir())}"
    return {k: v for f in files for k, v in load_file(str(f)).items()}


def test_two_fsdp_processes_train_like_one_and_save_a_plain_adapter(make_config, tmp_path):
    common = {"max_steps": 3, "learning_rate": 5e-3, "logging_steps": 1, "seed": 7}
    one = make_config(
        "one.yaml",
        data={"cache_dir": str(tmp_path / "cache-one")},
        training={**common, **GPU, "per_device_train_batch_size": 2, "output_dir": str(tmp_path / "one")},
    )
    two = make_config(
        "two.yaml",
        data={"cache_dir": str(tmp_path / "cache-two")},
        training={**common, **GPU, "per_device_train_batch_size": 1, "output_dir": str(tmp_path / "two")},
        distributed={"strategy": "fsdp", "nproc": 2},
        fsdp={"checkpoints": "sharded"},
    )
    single = _ft_core("run", str(one))
    assert single.returncode == 0, single.stderr[-3000:]
    double = _ft_core("run", str(two))
    assert double.returncode == 0, double.stderr[-3000:]
    assert "distributed.nproc: 2 processes through torchrun" in double.stderr
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 3
    assert b == pytest.approx(a, rel=2e-2), f"1 process {a} vs 2 FSDP2 processes {b}"

    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    decisions = manifest["decisions"]
    assert decisions["strategy"]["value"] == "fsdp", decisions["strategy"]
    assert decisions["fsdp"]["value"]["version"] == 2
    # the artefact is a plain PEFT folder with whole (gathered) tensors, the same shapes as the 1-process one
    plain, sharded = _state_dict(tmp_path / "one" / "model"), _state_dict(tmp_path / "two" / "model")
    assert sorted(sharded) == sorted(plain)
    for key, tensor in plain.items():
        assert sharded[key].shape == tensor.shape, key
        assert (sharded[key] - tensor).abs().max() < 5e-2, key


def _kill_one_rank_when(folder: Path, process: subprocess.Popen[str], deadline: float) -> None:
    """SIGKILL one training rank (a child of torchrun's agent) once ``folder`` holds a checkpoint."""
    while time.time() < deadline and not any(folder.glob("checkpoint-*/trainer_state.json")):
        assert process.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.05)
    import psutil

    agent = next(
        c for c in psutil.Process(process.pid).children() if "torch.distributed.run" in " ".join(c.cmdline())
    )
    ranks = agent.children()
    assert len(ranks) == 2, ranks
    os.kill(ranks[1].pid, signal.SIGKILL)


def test_full_fine_tuning_resumes_after_a_rank_is_killed(make_config, tmp_path):
    training = {
        "max_steps": 40,
        "save_steps": 4,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "per_device_train_batch_size": 1,
        "seed": 3,
        **GPU,
    }
    sections = {
        "adapter": {"method": "full"},
        "distributed": {"strategy": "fsdp", "nproc": 2},
        "fsdp": {"checkpoints": "sharded"},
    }
    reference = make_config(
        "reference.yaml", training={**training, "output_dir": str(tmp_path / "reference")}, **sections
    )
    done = _ft_core("run", str(reference))
    assert done.returncode == 0, done.stderr[-3000:]

    config = make_config(
        "killed.yaml", training={**training, "output_dir": str(tmp_path / "run")}, **sections
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "ft_core.cli", "run", str(config)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _kill_one_rank_when(tmp_path / "run", process, time.time() + 120)
    process.communicate(timeout=120)
    assert process.returncode != 0, "killing a rank fails the run"
    checkpoints = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "run").glob("checkpoint-*"))
    assert checkpoints and checkpoints[-1] < 40, checkpoints
    assert any((tmp_path / "run" / f"checkpoint-{checkpoints[-1]}").glob("pytorch_model_fsdp_*")), (
        "sharded FSDP checkpoints"
    )

    resumed = _ft_core("run", str(config))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    start = int(Path(manifest["resumed_from"]).name.split("-")[1])
    # after the resume point the run trains exactly as the uninterrupted one
    after = [r for r in _records(tmp_path / "run") if "loss" in r and r["step"] > start]
    expected = {r["step"]: r["loss"] for r in _records(tmp_path / "reference") if "loss" in r}
    assert after and after[-1]["step"] == 40
    for record in after:
        assert record["loss"] == pytest.approx(expected[record["step"]], rel=2e-2), record["step"]
    whole = _state_dict(tmp_path / "run" / "model")
    assert "model.embed_tokens.weight" in whole or any(k.endswith("embed_tokens.weight") for k in whole)


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
