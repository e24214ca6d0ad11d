"""What a crash leaves half-written is never read: atomic files, completion markers on checkpoints and cache entries,
staging folders of killed processes, a metrics line cut short, the status of a killed run. The whole kill-and-resume
chain is ``tests/test_kill_resume.py``."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from ft_core.engine.data.cache import cached
from ft_core.engine.killpoints import KILL_ENV, kill_point
from ft_core.engine.run.finish import _whole_run_loss
from ft_core.engine.run.output import latest_checkpoint, process_facts, run_status
from ft_core.engine.run.sinks import METRICS_FILE, drop_partial_record, read_metrics
from ft_core.engine.storage import (
    COMPLETE_FILE,
    atomic_folder,
    incomplete,
    mark_complete,
    write_atomic,
)


def _checkpoint(run: Path, step: int, mark: bool = True) -> Path:
    folder = run / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (folder / "optimizer.pt").write_bytes(b"x" * 100)
    if mark:
        mark_complete(folder)
    return folder


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda f: (f / "optimizer.pt").write_bytes(b"x" * 40), "optimizer.pt has 40 bytes, not 100"),
        (lambda f: (f / "optimizer.pt").unlink(), "optimizer.pt is missing"),
        (lambda f: (f / COMPLETE_FILE).unlink(), f"no {COMPLETE_FILE}"),
        (lambda f: (f / COMPLETE_FILE).write_text('{"files": {"optim'), f"{COMPLETE_FILE} is unreadable"),
    ],
)
def test_a_checkpoint_cut_short_is_skipped_on_resume_with_a_log_line(tmp_path, caplog, damage, reason):
    _checkpoint(tmp_path, 2)
    newest = _checkpoint(tmp_path, 4)
    assert latest_checkpoint(tmp_path) == newest
    damage(newest)
    with caplog.at_level(logging.WARNING):
        assert latest_checkpoint(tmp_path, say=True) == tmp_path / "checkpoint-2"
    assert f"skipping checkpoint-4: incomplete ({reason})" in caplog.text
    assert f"training.resume: {newest}" in caplog.text, "says how to resume from it anyway"


def test_trainer_state_alone_no_longer_makes_a_checkpoint(tmp_path):
    _checkpoint(tmp_path, 3, mark=False)  # what a run killed before ft-core's extras leaves
    assert latest_checkpoint(tmp_path) is None


def _table(rows: int) -> pa.Table:
    return pa.table({"input_ids": pa.array([[1, 2, 3]] * rows, type=pa.list_(pa.int32()))})


def test_a_cache_entry_cut_short_is_prepared_again_not_read(tmp_path, caplog):
    builds: list[int] = []

    def build() -> pa.Table:
        builds.append(1)
        return _table(8)

    key = {"k": 1}
    assert cached(key, build, str(tmp_path), False).num_rows == 8
    assert cached(key, build, str(tmp_path), False).num_rows == 8
    assert len(builds) == 1, "a complete entry is read"
    (entry,) = (p for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert incomplete(entry) is None
    arrow = next(entry.glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:50])  # cut short, as a torn copy or a crash mid-write would
    with caplog.at_level(logging.WARNING):
        assert cached(key, build, str(tmp_path), False).num_rows == 8
    assert len(builds) == 2 and "is incomplete" in caplog.text and "preparing it again" in caplog.text
    (entry / COMPLETE_FILE).unlink()  # an entry without its marker (never published by ft-core)
    assert cached(key, build, str(tmp_path), False).num_rows == 8
    assert len(builds) == 3
    assert [p.name for p in tmp_path.iterdir()] == [entry.name], "no staging folder left behind"


def test_a_tokenized_path_without_marker_is_still_read(tmp_path):
    """``data.tokenized_path`` folders prepared before markers existed are used as they are while readable."""
    target = tmp_path / "prepared" / "train"
    cached({"k": 1}, lambda: _table(4), None, False, folder=target)
    (target / COMPLETE_FILE).unlink()
    assert cached({"k": 1}, lambda: pytest.fail("rebuilt"), None, False, folder=target).num_rows == 4


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_staging_folders_of_killed_processes_are_removed(tmp_path):
    host = socket.gethostname()
    dead = tmp_path / f".tmp~{host}~{_dead_pid()}~0000abcd~entry"
    alive = tmp_path / f".tmp~{host}~{os.getpid()}~0000abcd~entry"
    elsewhere = tmp_path / f".tmp~another-host~{_dead_pid()}~0000abcd~entry"
    for folder in (dead, alive, elsewhere):
        folder.mkdir()
    with atomic_folder(tmp_path / "entry") as staging:
        (staging / "data").write_text("new")
    assert not dead.exists() and alive.exists() and elsewhere.exists()


def test_replace_swaps_a_whole_folder_for_another(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.bin").write_text("from a killed attempt")
    with atomic_folder(target, replace=True) as staging:
        (staging / "weights.bin").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["weights.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def _killed_python(code: str, point: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, KILL_ENV: point}, capture_output=True, text=True
    )
    assert result.returncode == -signal.SIGKILL, result.stderr


def test_a_file_killed_while_written_keeps_its_old_content(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text('{"status": "running"}')
    code = f"from ft_core.engine.storage import write_atomic; write_atomic({str(path)!r}, 'x' * 10**6)"
    _killed_python(code, "write:manifest.json")
    assert json.loads(path.read_text()) == {"status": "running"}
    write_atomic(path, '{"status": "completed"}')  # the next writer replaces the leftover temporary file
    assert json.loads(path.read_text()) == {"status": "completed"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_a_folder_killed_before_its_rename_is_never_published(tmp_path):
    code = (
        "from pathlib import Path; from ft_core.engine.storage import atomic_folder\n"
        f"with atomic_folder(Path({str(tmp_path / 'entry')!r}), mark=True, point='data.written') as d:\n"
        "    (d / 'data').write_text('x')"
    )
    _killed_python(code, "data.written")
    assert not (tmp_path / "entry").exists()
    (staging,) = tmp_path.iterdir()
    assert incomplete(staging) is None, "complete but unpublished: nothing reads it"
    with atomic_folder(tmp_path / "entry"):
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["entry"], "the killed process's staging folder is removed"


def test_kill_points_count_and_pick_a_rank(monkeypatch):
    killed: list[str] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append("killed"))
    monkeypatch.delenv(KILL_ENV, raising=False)
    kill_point("checkpoint.saved")
    monkeypatch.setenv(KILL_ENV, "checkpoint.saved:2@1")
    monkeypatch.setenv("RANK", "0")
    kill_point("checkpoint.saved")
    kill_point("checkpoint.saved")
    assert killed == []
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv(KILL_ENV, "write:config.yaml:2@1")
    kill_point("write:config.yaml")
    assert killed == []
    kill_point("write:config.yaml")
    assert killed == ["killed"]


def test_a_metrics_line_cut_short_is_skipped_and_dropped(tmp_path):
    path = tmp_path / METRICS_FILE
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert read_metrics(tmp_path) == [{"step": 1, "loss": 2.0}]
    drop_partial_record(tmp_path)
    assert path.read_text() == '{"step": 1, "loss": 2.0}\n'
    drop_partial_record(tmp_path)  # a whole file is left as it is
    assert path.read_text() == '{"step": 1, "loss": 2.0}\n'


def test_a_killed_run_does_not_read_as_running():
    me = process_facts()
    assert run_status({"status": "running", "process": me}) == "running"
    assert run_status({"status": "running", "process": {**me, "pid": _dead_pid()}}) == "interrupted"
    if "start_ticks" in me:  # the pid now belongs to another process
        assert run_status({"status": "running", "process": {**me, "start_ticks": 1}}) == "interrupted"
    elsewhere = {"pid": _dead_pid(), "host": "another-host"}
    assert run_status({"status": "running", "process": elsewhere}) == "running", "cannot tell on another host"
    assert run_status({"status": "completed", "process": {**me, "pid": _dead_pid()}}) == "completed"


def test_a_run_resumed_from_its_last_step_keeps_its_whole_loss():
    history = [{"step": 1, "loss": 4.0}, {"step": 2, "loss": 2.0}, {"step": 2, "train_loss": 3.0}]
    assert _whole_run_loss(history, resumed_step=2, session_loss=0.0, final_step=2) == 3.0
    assert _whole_run_loss(history, resumed_step=1, session_loss=2.0, final_step=2) == 3.0
