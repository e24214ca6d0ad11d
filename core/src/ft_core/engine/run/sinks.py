"""Core's own consumers of run events (a built-in plugin): console lines and the run's ``metrics.jsonl``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ft_core.api.events import RunEvent
from ft_core.api.hookspecs import hookimpl

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
_HIDDEN = {"epoch", "eta_s", "tokens_per_sec"}


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def console_line(event: RunEvent) -> str | None:
    """``step 10/30 | loss 1.23 | learning_rate 1e-4 | 812 tok/s | ETA 0:42``, ``phase: message`` and the like, or
    ``None``."""
    if event.kind in ("step", "eval"):
        summary = "train_runtime" in event.metrics  # the trainer's closing log: whole-run averages
        parts = [
            f"training summary after step {event.step}" if summary else f"step {event.step}/{event.max_steps}"
        ]
        parts += [f"{k} {_format(v)}" for k, v in event.metrics.items() if k not in _HIDDEN]
        if "tokens_per_sec" in event.metrics:
            parts.append(f"{event.metrics['tokens_per_sec']:.0f} tok/s")
        if "eta_s" in event.metrics and not summary:
            parts.append(f"ETA {_duration(event.metrics['eta_s'])}")
        return " | ".join(parts)
    if event.kind == "checkpoint":
        return f"checkpoint saved: {event.message}"
    if event.kind == "phase":
        return f"{event.phase}: {event.message}" if event.message else None
    if event.kind in ("failed", "cancelled"):  # the command reports the error itself, once
        return f"run {event.kind}; the manifest records why"
    return f"run {event.kind}" + (f": {event.message}" if event.message else "")


@hookimpl
def ft_run_event(event: RunEvent) -> None:
    """Show the event (step and eval lines on stdout, the others as progress lines) and append step / eval records
    to ``metrics.jsonl``."""
    line = console_line(event)
    if line and event.kind in ("step", "eval"):
        print(line, flush=True)
    elif line:
        logger.info(line)
    if event.kind in ("step", "eval"):
        record = {"step": event.step, **{k: v for k, v in event.metrics.items() if k not in ("eta_s",)}}
        with (Path(event.run_dir) / METRICS_FILE).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=float) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Records of ``metrics.jsonl`` in order (records from before a resume come first); a line cut short (a run
    killed while appending it, or one being written) is skipped."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def drop_partial_record(run_dir: Path) -> None:
    """Cut a last line that a killed run left half-written from ``metrics.jsonl``, so the records this run appends
    start on a line of their own."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return
    with path.open("rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)
