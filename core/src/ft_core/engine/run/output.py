"""The run's output folder: safety checks, the resolved config and the manifest."""

from __future__ import annotations

import json
import logging
import os
import platform
import re
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from ft_core.api.config import RunConfig
from ft_core.api.errors import FtCoreError
from ft_core.engine.training.callbacks import CANCEL_FILE

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
RESOLVED_CONFIG = "config.yaml"
ARTEFACT_DIR = "model"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
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


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint folder with the highest step that holds a complete trainer state, if any."""
    found = []
    if run_dir.is_dir():
        for child in run_dir.iterdir():
            match = _CHECKPOINT_RE.match(child.name)
            if match and (child / "trainer_state.json").is_file():
                found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


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
    checkpoint = latest_checkpoint(run_dir)
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
        return _mkdir(run_dir), Path(str(training.resume))
    if resume in ("false", "no"):
        if checkpoint is not None:
            raise FtCoreError(
                f"training.output_dir: {run_dir} already holds a run (checkpoints or results). "
                "Choose another output_dir, set training.resume: auto to continue it, or set "
                "training.overwrite_output_dir: true to train again into it (old checkpoints are kept until "
                "new ones replace them)."
            )
        return _mkdir(run_dir), None
    if resume == "true" and checkpoint is None:
        raise FtCoreError(f"training.resume: true, but {run_dir} holds no checkpoint to resume from")
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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so a crash never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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
        os.replace(path, run_dir / f"config.{number}.yaml")
        kept = f"config.{number}.yaml"
    path.write_text(text, encoding="utf-8")
    return changed, kept


def build_manifest(config: RunConfig, status: str, **extra: Any) -> dict[str, Any]:
    """Components used (name, distribution, version), library versions, status and extra facts."""
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
        **extra,
    }


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(run_dir / MANIFEST, manifest)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FtCoreError(f"{run_dir} is not an ft-core run folder: {MANIFEST} is missing") from None
    except json.JSONDecodeError as exc:
        raise FtCoreError(f"{path}: not valid JSON ({exc})") from None
