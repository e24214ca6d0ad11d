"""Run events: what a run reports while it goes, for the console, ``metrics.jsonl``, loggers and web boards."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

EventKind = Literal["phase", "step", "eval", "checkpoint", "finished", "failed", "cancelled"]
EVENT_KINDS: tuple[str, ...] = ("phase", "step", "eval", "checkpoint", "finished", "failed", "cancelled")
#: Phases of a run, in order (``phase`` events).
PHASES: tuple[str, ...] = ("config", "data", "model", "train", "save")


@dataclass(frozen=True)
class RunEvent:
    """One event of a run.

    ``kind``: ``phase`` (a new phase begins: ``phase`` names it), ``step`` (an optimizer step was logged:
    ``metrics`` holds ``loss``, ``learning_rate``, ``grad_norm``, ``tokens_per_sec``, ``eta_s`` ...), ``eval``
    (evaluation metrics), ``checkpoint`` (``message`` is the folder), and the terminal ``finished``, ``failed``
    (``message`` is the error) or ``cancelled`` (the last checkpoint is kept).
    Only the main process emits events.
    """

    kind: EventKind
    run_dir: str
    phase: str | None = None
    step: int | None = None
    max_steps: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    time: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data."""
        return asdict(self)
