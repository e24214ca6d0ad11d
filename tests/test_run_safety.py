"""A run and the machine: one run per output folder (a lock a killed run does not leave stuck), an output folder
that cannot be written, a dataset file removed or changed after validation, a disk that fills up while saving."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import transformers

from ft_core.api.errors import FtCoreError
from ft_core.cli import main
from ft_core.engine.run import lock
from ft_core.engine.run.output import latest_checkpoint


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def _config_of(folder: Path) -> SimpleNamespace:
    return SimpleNamespace(training=SimpleNamespace(output_dir=str(folder)))


def _holder(folder: Path) -> subprocess.Popen[str]:
    """Another process that holds ``folder`` as a live run does (the same lock code), until killed."""
    code = textwrap.dedent(
        f"""
        import time
        from types import SimpleNamespace
        from ft_core.engine.run.lock import hold_output_dir
        config = SimpleNamespace(training=SimpleNamespace(output_dir={str(folder)!r}))
        with hold_output_dir(config):
            print("held", flush=True)
            time.sleep(600)
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", lock.HELD_ENV)}
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_into_a_live_folder_is_refused_and_a_killed_run_leaves_no_lock(
    make_config, tmp_path, capsys
):
    run = tmp_path / "run"
    path = make_config(training={"max_steps": 1})
    holder = _holder(run)
    try:
        assert main(["run", str(path)]) == 2
        error = capsys.readouterr().err
        assert (
            f"training.output_dir: {run} is in use by another ft-core run (process {holder.pid} on" in error
        )
        assert "ft-core cancel" in error and "another training.output_dir" in error
        assert not (run / "manifest.json").exists(), "refused before the run wrote anything"
        assert not (tmp_path / "cache").exists(), "refused before the data was prepared"
        assert main(["prepare", str(path)]) == 0, "prepare writes only the shared data cache: allowed"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(["run", str(path)]) == 0, "the kernel released the killed holder's lock"
    assert _manifest(run)["status"] == "completed"


def test_only_one_process_of_a_run_holds_the_folder(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    monkeypatch.delenv(lock.HELD_ENV, raising=False)
    with lock.hold_output_dir(_config_of(folder)):
        assert len(lock.held_lock_fds()) == 1, "a relaunch hands this lock to torchrun"
        assert os.environ[lock.HELD_ENV] == str(folder.resolve()), "torchrun's ranks see the folder is held"
        with lock.hold_output_dir(_config_of(folder)):  # re-entrant: the command, then run_training
            assert len(lock.held_lock_fds()) == 1
    assert lock.held_lock_fds() == () and lock.HELD_ENV not in os.environ
    holder = _holder(folder)
    try:
        monkeypatch.setenv(
            "RANK", "1"
        )  # a rank other than 0 never takes the lock, so ranks never refuse each other
        with lock.hold_output_dir(_config_of(folder)):
            assert lock.held_lock_fds() == ()
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv(
            lock.HELD_ENV, str(folder.resolve())
        )  # rank 0 of a relaunch whose launcher holds it
        with lock.hold_output_dir(_config_of(folder)):
            assert lock.held_lock_fds() == ()
        monkeypatch.delenv(lock.HELD_ENV)
        with (
            pytest.raises(FtCoreError, match="is in use by another ft-core run"),
            lock.hold_output_dir(_config_of(folder)),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_an_output_folder_that_cannot_be_written_is_refused_before_training(make_config, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    path = make_config()
    if os.geteuid() != 0:
        run.chmod(0o555)
    real_access = os.access

    def access(target, mode, *args, **kwargs):  # root writes anywhere: refuse it for the run folder
        return False if Path(target) == run and mode & os.W_OK else real_access(target, mode, *args, **kwargs)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(lock.os, "access", access)
            assert main(["run", str(path)]) == 2
    finally:
        run.chmod(0o755)
    error = capsys.readouterr().err
    assert f"training.output_dir: {run} is not writable" in error
    assert "data: preparing" not in error and not (tmp_path / "cache").exists()
    assert main(["run", str(tmp_path / "nowhere.yaml"), f"training.output_dir={run / 'run.txt'}"]) == 2


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("removed", "dataset 'mine': file_name 'rows.json' not found: {rows}"),
        ("changed", "{rows}: invalid JSON at line 1"),
    ],
)
def test_a_dataset_file_removed_or_changed_after_validate_is_a_clear_error(
    make_config, tmp_path, capsys, damage, message
):
    data = tmp_path / "data"
    data.mkdir()
    rows = data / "rows.json"
    (data / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "rows.json"}}))
    rows.write_text(json.dumps([{"instruction": "hi", "output": "hello"}] * 4))
    path = make_config(data={"dataset": ["mine"], "dataset_dir": str(data)})
    assert main(["validate", str(path)]) == 0
    if damage == "removed":
        rows.unlink()
    else:
        rows.write_text('[{"instruction": "hi", "outp')
    assert main(["run", str(path)]) == 2
    error = capsys.readouterr().err
    assert message.format(rows=rows) in error and "Traceback" not in error
    if damage == "removed":  # `run` checks the files exist before it starts: nothing is written
        assert not (tmp_path / "run" / "manifest.json").exists()
    else:  # the rows are read while the run prepares its data: the run ends failed, saying why
        manifest = _manifest(tmp_path / "run")
        assert manifest["status"] == "failed" and str(rows) in manifest["error"]


def test_a_full_disk_while_saving_fails_clearly_and_keeps_the_earlier_checkpoints(
    make_config, tmp_path, capsys, monkeypatch
):
    run = tmp_path / "run"
    path = make_config(training={"max_steps": 3, "save_steps": 1})
    save = transformers.Trainer._save

    def full_disk(
        self, output_dir=None, state_dict=None
    ):  # the weights writer of checkpoint-2 meets a full disk
        if str(output_dir).endswith("checkpoint-2"):
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            Path(output_dir, "adapter_model.safetensors").write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(self, output_dir, state_dict)

    monkeypatch.setattr(transformers.Trainer, "_save", full_disk)
    assert main(["run", str(path)]) == 2
    error = capsys.readouterr().err
    assert "the run stopped: no space left on device" in error and "Traceback" not in error
    assert "resumes from checkpoint-1" in error
    manifest = _manifest(run)
    assert manifest["status"] == "failed" and "no space left on device" in manifest["error"]
    assert latest_checkpoint(run) == run / "checkpoint-1", "the half-written checkpoint is never resumed from"
    state = json.loads((run / "checkpoint-1" / "trainer_state.json").read_text())
    assert state["global_step"] == 1
    monkeypatch.setattr(transformers.Trainer, "_save", save)
    assert main(["run", str(path)]) == 0, "with space again the run resumes from checkpoint-1"
    manifest = _manifest(run)
    assert manifest["status"] == "completed" and manifest["resumed_from"].endswith("checkpoint-1")
