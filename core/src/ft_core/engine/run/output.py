"""The run's output folder: safety checks, the resolved config and the manifest."""

from __future__ import annotations

import errno
import json
import logging
import os
import platform
import socket
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from ft_core.api.config import RunConfig
from ft_core.api.errors import FtCoreError
from ft_core.engine.storage import incomplete, process_alive, write_atomic
from ft_core.engine.storage import write_json_atomic as write_json_atomic
from ft_core.engine.training.callbacks import CANCEL_FILE, checkpoints

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
RESOLVED_CONFIG = "config.yaml"
ARTEFACT_DIR = "model"
_LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "datasets",
    "accelerate",
    "pluggy",
    "omegaconf",
    "bitsandbytes",
    "liger-kernel",
)


def latest_checkpoint(run_dir: Path, *, say: bool = False) -> Path | None:
    """The complete checkpoint folder with the highest step, if any. A checkpoint is complete once ft-core marked it
    (``ft_core_complete.json``, written after every process saved its part) and every file it lists is there
    with its size: one cut short by a crash is skipped (``say``: with a log line)."""
    for _step, folder in reversed(checkpoints(run_dir)):
        reason = incomplete(folder)
        if reason is None:
            return folder
        if say:
            logger.warning(
                f"skipping {folder.name}: incomplete ({reason}): the run stopped while saving it, or ft-core 0.2 or "
                f"older wrote it (to resume from it anyway, set training.resume: {folder})"
            )
    return None


def prepare_run_dir(config: RunConfig) -> tuple[Path, Path | None]:
    """Create the output folder and decide where to resume from.

    Never deletes anything. A folder that holds a finished run, or checkpoints while ``resume: false``,
    is refused unless ``overwrite_output_dir`` is set.
    """
    training = config.training
    run_dir = Path(training.output_dir).expanduser()
    if run_dir.exists() and not run_dir.is_dir():
        raise FtCoreError(f"training.output_dir: {run_dir} exists and is not a folder")
    resume = str(training.resume).lower()  # YAML true/false arrive as booleans
    checkpoint = latest_checkpoint(
        run_dir, say=resume in ("auto", "true") and not training.overwrite_output_dir
    )
    manifest = read_manifest(run_dir) if (run_dir / MANIFEST).is_file() else {}
    if training.overwrite_output_dir:
        return _mkdir(run_dir), None if resume in ("auto", "true", "false", "no") else Path(
            str(training.resume)
        )
    if manifest.get("status") == "completed":
        raise FtCoreError(
            f"training.output_dir: {run_dir} already holds a finished run. Choose another output_dir, or set "
            "training.overwrite_output_dir: true to train again into it."
        )
    if resume not in ("auto", "true", "false", "no"):
        reason = incomplete(Path(str(training.resume)))
        if reason is not None:
            logger.warning(
                f"training.resume: {training.resume} is not marked complete ({reason}); resuming from it"
            )
        return _mkdir(run_dir), Path(str(training.resume))
    if resume in ("false", "no"):
        if checkpoints(run_dir):
            raise FtCoreError(
                f"training.output_dir: {run_dir} already holds a run (checkpoints or results). "
                "Choose another output_dir, set training.resume: auto to continue it, or set "
                "training.overwrite_output_dir: true to train again into it (old checkpoints are kept until "
                "new ones replace them)."
            )
        return _mkdir(run_dir), None
    if resume == "true" and checkpoint is None:
        raise FtCoreError(f"training.resume: true, but {run_dir} holds no complete checkpoint to resume from")
    return _mkdir(run_dir), checkpoint


def _mkdir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FtCoreError(f"training.output_dir: cannot create {path}: {exc.strerror or exc}") from None
    return path


def distribution_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or ``None`` when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: data}


def resumable_config(raw: dict[str, Any]) -> dict[str, Any]:
    """The config as the run folder keeps it: without ``training.overwrite_output_dir``, a one-off instruction
    that would make the run's own config restart it from step 0 instead of resuming it."""
    training = {k: v for k, v in (raw.get("training") or {}).items() if k != "overwrite_output_dir"}
    return {**raw, "training": training} if "training" in raw else dict(raw)


def start_run_dir(run_dir: Path, config: RunConfig) -> None:
    """Clear a cancel request left over from an earlier run of the folder and write the resolved config, keeping
    a changed earlier one (said in one line)."""
    (run_dir / CANCEL_FILE).unlink(missing_ok=True)
    changed, kept = write_resolved_config(run_dir, config)
    if changed:
        logger.info(
            f"the config differs from the one this folder was trained with ({', '.join(changed)}); the previous one "
            f"is kept as {kept}"
        )


def write_resolved_config(run_dir: Path, config: RunConfig) -> tuple[list[str], str | None]:
    """Write the fully merged, validated configuration (re-runnable as is).

    When the folder already holds a different one (a resumed run whose config changed), the old file is kept
    as ``config.<n>.yaml``; returns the dotted keys that changed and that file's name.
    """
    path = run_dir / RESOLVED_CONFIG
    text = yaml.safe_dump(resumable_config(config.raw), sort_keys=False)
    changed: list[str] = []
    kept: str | None = None
    if path.is_file() and path.read_text(encoding="utf-8") != text:
        old = _flat(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        new = _flat(resumable_config(config.raw))
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        number = 1
        while (run_dir / f"config.{number}.yaml").exists():
            number += 1
        write_atomic(run_dir / f"config.{number}.yaml", path.read_bytes())
        kept = f"config.{number}.yaml"
    write_atomic(path, text)
    return changed, kept


def build_manifest(config: RunConfig, status: str, **extra: Any) -> dict[str, Any]:
    """Components used (name, distribution, version), library versions, status, this process (pid, host, start
    time: lets readers such as ``ft-core cancel`` and chat see a killed run) and extra facts."""
    components = [
        {
            "section": s.section,
            "kind": s.kind,
            "name": s.name,
            "distribution": s.distribution,
            "version": s.version,
        }
        for selections in config.selections.values()
        for s in selections
    ]
    return {
        "status": status,
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ft_core_version": distribution_version("ft-core"),
        "components": components,
        "libraries": {name: distribution_version(name) for name in _LIBRARIES},
        "python": platform.python_version(),
        "process": process_facts(),
        **extra,
    }


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` atomically (the crash tests' kill point: ``manifest.<status>``)."""
    write_json_atomic(run_dir / MANIFEST, manifest, point=f"manifest.{manifest.get('status')}")


def process_facts() -> dict[str, Any]:
    """This process as the manifest records it (pid, host, start time): lets readers see a run that was killed."""
    facts: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
    started = process_start(os.getpid())
    if started is not None:
        facts["start_ticks"] = started
    return facts


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``; ``None`` where unknown): a pid reused
    by another process has another start."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def run_status(manifest: dict[str, Any]) -> str | None:
    """The run's status: the manifest's, except that a ``running`` run whose process on this machine is gone
    (killed: SIGKILL, the out-of-memory killer, a lost node) is ``interrupted``."""
    status = manifest.get("status")
    process = manifest.get("process") or {}
    if status != "running" or process.get("host") != socket.gethostname():
        return status
    pid = process.get("pid")
    if not process_alive(pid):
        return "interrupted"
    started = process.get("start_ticks")
    if isinstance(pid, int) and isinstance(started, int) and process_start(pid) not in (None, started):
        return "interrupted"  # the pid now belongs to another process
    return status


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FtCoreError(f"{run_dir} is not an ft-core run folder: {MANIFEST} is missing") from None
    except json.JSONDecodeError as exc:
        raise FtCoreError(f"{path}: not valid JSON ({exc})") from None


#: Write errors of the machine (not of the run): the disk is full, over quota or read-only.
_WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}


def write_failure(exc: BaseException, run_dir: Path) -> FtCoreError | None:
    """A clear error for a run stopped by a failed write (a full disk while saving a checkpoint or the model, a
    folder that turned read-only), naming the file and the checkpoint a resume starts from; ``None`` for any other
    error."""
    if not isinstance(exc, OSError) or exc.errno not in _WRITE_ERRNOS:
        return None
    where = f" writing {exc.filename}" if exc.filename else f" writing into {run_dir}"
    checkpoint = latest_checkpoint(run_dir)
    kept = (
        f"the checkpoints saved before are intact; `ft-core run {run_dir / RESOLVED_CONFIG}` resumes from "
        f"{checkpoint.name}"
        if checkpoint is not None
        else f"no checkpoint was complete yet; `ft-core run {run_dir / RESOLVED_CONFIG}` starts it again"
    )
    return FtCoreError(
        f"the run stopped: {_WRITE_ERRNOS[exc.errno]}{where} ({exc.strerror or exc}). Free space (or give "
        f"training.output_dir on another disk), then run again: {kept}"
    )
