"""Crash anywhere, resume to the same place: ``ft-core run`` is killed with SIGKILL at ten moments — while writing its
config and manifest, while tokenizing and writing the data cache, while writing a checkpoint (weights only, the
trainer's files but not ft-core's, while rotating an old one out), while writing the artefact, the results and the
final manifest — each time resumed with the same command, and ends where an uninterrupted run ends.

The moments are named kill points (``FT_CORE_TEST_KILL_AT``, :mod:`ft_core.engine.killpoints`): the process sends
itself SIGKILL there, so each run of the chain stops at one precise moment. After every kill the folder is checked:
no manifest claims ``completed`` or a live ``running``, the newest checkpoint resume would pick is complete, every
published cache entry is complete; the next run's log says what it resumed from and what it skipped. The SIGKILL of
one rank under ``torchrun`` is in ``tests/test_distributed.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file

from ft_core.engine.killpoints import KILL_ENV
from ft_core.engine.run.output import latest_checkpoint, run_status
from ft_core.engine.storage import incomplete

TRAINING = {
    "max_steps": 16,
    "save_steps": 4,
    "save_total_limit": 2,
    "learning_rate": 5e-3,
    "logging_steps": 1,
    "seed": 7,
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
ENV.pop(KILL_ENV, None)


def _run(config: Path, kill_at: str | None = None) -> subprocess.Popen[str]:
    env = {**ENV, **({KILL_ENV: kill_at} if kill_at else {})}
    return subprocess.Popen(
        [sys.executable, "-m", "ft_core.cli", "run", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finished(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


def _manifest(run: Path) -> dict[str, Any] | None:
    path = run / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _cache_entries(cache: Path) -> list[Path]:
    return [p for p in cache.iterdir() if not p.name.startswith(".")] if cache.is_dir() else []


def _loss_at(run: Path, step: int) -> float:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r and r["step"] == step][-1]


def _check_consistent(run: Path, cache: Path) -> None:
    """What every kill must leave: nothing half-written that a reader or a resume would take."""
    manifest = _manifest(run)
    if manifest is not None:
        assert manifest["status"] != "completed"
        assert run_status(manifest) == "interrupted", "a killed run must not read as running"
    checkpoint = latest_checkpoint(run)
    if checkpoint is not None:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        assert f"checkpoint-{state['global_step']}" == checkpoint.name
    for entry in _cache_entries(cache):
        assert incomplete(entry) is None, entry
    if (run / "config.yaml").is_file():
        assert yaml.safe_load((run / "config.yaml").read_text())["training"]["max_steps"] == 16


def _no_checkpoint(run: Path, cache: Path) -> None:
    assert latest_checkpoint(run) is None


def _no_cache_entry(run: Path, cache: Path) -> None:
    assert not _cache_entries(cache), "nothing published while tokenizing / before the rename"


def _at(step: int) -> Callable[[Path, Path], None]:
    def check(run: Path, cache: Path) -> None:
        assert latest_checkpoint(run) == run / f"checkpoint-{step}"

    return check


def _trainer_files_without_mark(run: Path, cache: Path) -> None:
    # the trainer's own files are all there (the old rule, "has trainer_state.json", would have resumed from it),
    # ft-core's extras and the marker are not
    assert (run / "checkpoint-8" / "trainer_state.json").is_file()
    assert not (run / "checkpoint-8" / "ft_core_progress.json").exists()
    assert latest_checkpoint(run) == run / "checkpoint-4"


def _no_artefact(run: Path, cache: Path) -> None:
    assert not (run / "model").exists() and latest_checkpoint(run) == run / "checkpoint-16"


def _artefact_no_results(run: Path, cache: Path) -> None:
    assert (run / "model" / "adapter_model.safetensors").is_file()
    assert not (run / "train_results.json").exists()


def _everything_but_the_manifest(run: Path, cache: Path) -> None:
    assert json.loads((run / "train_results.json").read_text())["train_loss"] > 0
    assert _manifest(run)["status"] == "running"  # type: ignore[index]


#: (kill point, what the folder shows after the kill, what the next run resumes from, a line the killed run logged)
KILLS: list[tuple[str, Callable[[Path, Path], None], str | None, str]] = [
    ("write:config.yaml", _no_checkpoint, None, ""),
    ("manifest.running", _no_checkpoint, None, ""),
    ("data.tokenized", _no_cache_entry, None, "preprocessing"),
    ("data.written", _no_cache_entry, None, "preprocessing"),
    # the entry staged (complete, unpublished) by the run before is not read: this run prepares the data again
    ("checkpoint.weights:2", _at(4), "checkpoint-4", "preprocessing"),
    ("checkpoint.saved", _trainer_files_without_mark, "checkpoint-4", ""),
    ("checkpoint.rotating", _at(12), "checkpoint-12", "skipping checkpoint-8: incomplete"),
    ("artefact.written", _no_artefact, "checkpoint-16", ""),
    ("write:train_results.json", _artefact_no_results, "checkpoint-16", ""),
    ("manifest.completed", _everything_but_the_manifest, "checkpoint-16", ""),
]


def test_a_run_killed_at_ten_moments_resumes_to_the_uninterrupted_result(make_config, tmp_path):
    reference_config = make_config(
        "reference.yaml",
        data={"cache_dir": str(tmp_path / "cache-reference")},
        training={**TRAINING, "output_dir": str(tmp_path / "reference")},
    )
    cache = tmp_path / "cache"
    config = make_config(
        "killed.yaml",
        data={"cache_dir": str(cache)},
        training={**TRAINING, "output_dir": str(tmp_path / "run")},
    )
    run = tmp_path / "run"
    reference = _run(reference_config)  # alongside the chain (2 cores)

    resumed_from: str | None = None
    for point, check, next_resume, logged in KILLS:
        code, stderr = _finished(_run(config, point))
        assert code == -signal.SIGKILL, (
            f"{point}: the run was not killed there (exit {code}):\n{stderr[-3000:]}"
        )
        if resumed_from is not None:
            assert f"resuming from {run / resumed_from}" in stderr, f"{point}:\n{stderr[-3000:]}"
        assert logged in stderr, f"{point}: {logged!r} not logged:\n{stderr[-3000:]}"
        _check_consistent(run, cache)
        check(run, cache)
        # a killed run's staging folder is removed by the next run that writes there
        assert len(list(cache.glob(".tmp~*"))) == (point in ("data.tokenized", "data.written"))
        resumed_from = next_resume

    code, stderr = _finished(_run(config))
    assert code == 0, stderr[-3000:]
    assert f"resuming from {run / resumed_from}" in stderr
    code, reference_stderr = _finished(reference)
    assert code == 0, reference_stderr[-3000:]

    manifest = _manifest(run)
    assert manifest is not None and manifest["status"] == "completed" and run_status(manifest) == "completed"
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-16"]
    final, expected = _loss_at(run, 16), _loss_at(tmp_path / "reference", 16)
    whole = json.loads((run / "train_results.json").read_text())["train_loss"]
    whole_expected = json.loads((tmp_path / "reference" / "train_results.json").read_text())["train_loss"]
    weights = load_file(str(run / "model" / "adapter_model.safetensors"))
    reference_weights = load_file(str(tmp_path / "reference" / "model" / "adapter_model.safetensors"))
    largest = max(float((weights[k] - reference_weights[k]).abs().max()) for k in reference_weights)
    print(
        f"\nkill/resume: final loss {final:.6f} vs {expected:.6f} (diff {abs(final - expected):.2e}); train_loss "
        f"{whole:.6f} vs {whole_expected:.6f} (diff {abs(whole - whole_expected):.2e}); largest weight diff "
        f"{largest:.2e}"
    )
    assert abs(final - expected) < 1e-3
    assert abs(whole - whole_expected) < 1e-3
    assert weights.keys() == reference_weights.keys()
    for key in reference_weights:
        torch.testing.assert_close(weights[key], reference_weights[key], rtol=1e-4, atol=1e-5)
