"""ft-core plugin: the ``wandb`` logger (Weights & Biases).

Each run becomes a W&B run holding the step and evaluation metrics (``train/loss``, ``train/learning_rate``,
``eval/loss``, ...), the resolved config (``run.config.raw``: the run folder's ``config.yaml``) and the
(name, distribution, version) of every component and active plugin, under the config keys ``ft_core_config``,
``ft_core_components`` and ``ft_core_plugins``. ``WANDB_MODE=offline`` (or ``mode: offline``) writes the run under
``<dir>/wandb/offline-run-*`` for ``wandb sync`` later.

Import-light: wandb, torch and transformers are imported when the run starts, not at registration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from ft_core.api import Register, RunContext, RunEvent, TrainingLogger, hookimpl

__all__ = ["WandbLogger", "WandbOptions"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WandbOptions:
    """Options of the ``wandb`` logger."""

    #: W&B project (default: ``$WANDB_PROJECT``, else ``ft-core``).
    project: str | None = None
    #: W&B entity (team or user; default: yours).
    entity: str | None = None
    #: Name of the W&B run (default: the run folder's name).
    run_name: str | None = None
    #: Tags of the W&B run.
    tags: list[str] = field(default_factory=list)
    #: Where W&B keeps its files (``<dir>/wandb/...``; default: the run folder).
    dir: str | None = None
    #: ``online``, ``offline`` (files only, ``wandb sync`` later) or ``disabled``; default: ``$WANDB_MODE``, else
    #: online.
    mode: Literal["online", "offline", "disabled"] | None = None


#: run folder -> its live session (the callback), so the lifecycle hooks reach it.
_SESSIONS: dict[str, Any] = {}


def describe(run: RunContext) -> dict[str, Any]:
    """The resolved config and the components and active plugins of ``run``, with their versions."""
    components = [
        {"section": s.section, "name": s.name, "distribution": s.distribution, "version": s.version}
        for selections in run.config.selections.values()
        for s in selections
    ]
    plugins = [p.manifest() for p in run.plan.active_plugins]
    return {
        "ft_core_config": dict(run.config.raw),
        "ft_core_components": components,
        "ft_core_plugins": plugins,
    }


def _metric_name(key: str) -> str:
    return f"eval/{key[5:]}" if key.startswith("eval_") else key if "/" in key else f"train/{key}"


def _numbers(logs: dict[str, Any]) -> dict[str, float]:
    return {
        _metric_name(k): float(v)
        for k, v in logs.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _callback(options: WandbOptions, run_dir: str) -> Any:
    from transformers import TrainerCallback

    class WandbSession(TrainerCallback):  # type: ignore[misc]
        """Starts the W&B run when training begins and logs every ``on_log`` at the trainer's global step."""

        def __init__(self) -> None:
            self.run: Any = None
            self.details: dict[str, Any] = {}

        def describe(self, details: dict[str, Any]) -> None:
            self.details = details
            if self.run is not None:
                self.run.config.update(details, allow_val_change=True)

        def start(self) -> None:
            import os

            import wandb

            folder = Path(options.dir) if options.dir else Path(run_dir)
            folder.mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(
                project=options.project or os.environ.get("WANDB_PROJECT") or "ft-core",
                entity=options.entity,
                name=options.run_name or Path(run_dir).name,
                tags=list(options.tags) or None,
                dir=str(folder),
                mode=options.mode,
                config=self.details,
                reinit="create_new",
            )
            logger.info("wandb: run %s (%s)", self.run.name, self.run.settings.mode)

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero and self.run is None:
                self.start()

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if self.run is not None and logs:
                metrics = _numbers(logs)
                if metrics:
                    self.run.log(metrics, step=int(state.global_step))

        def close(self, status: str, metrics: dict[str, Any]) -> None:
            if self.run is None:
                return
            for key, value in _numbers(metrics).items():
                self.run.summary[key] = value
            self.run.summary["ft_core_status"] = status
            self.run.finish(exit_code=0 if status == "finished" else 1)
            self.run = None

    session = WandbSession()
    _SESSIONS[run_dir] = session
    return session


class WandbLogger(TrainingLogger[WandbOptions]):
    """Logs metrics, the resolved config and component versions to Weights & Biases."""

    options_schema: ClassVar[type] = WandbOptions
    description: ClassVar[str] = "Weights & Biases (online, or WANDB_MODE=offline)"

    def callback(self, options: WandbOptions, run_dir: str) -> Any:
        return _callback(options, run_dir)


@hookimpl
def ft_register_loggers(register: Register[TrainingLogger[Any]]) -> None:
    register("wandb", WandbLogger())


@hookimpl
def ft_before_train(run: RunContext) -> None:
    session = _SESSIONS.get(str(run.run_dir))
    if session is not None:
        session.describe(describe(run))


@hookimpl
def ft_run_event(event: RunEvent) -> None:
    if event.kind in ("finished", "failed", "cancelled"):
        session = _SESSIONS.pop(event.run_dir, None)
        if session is not None:
            session.close(event.kind, event.metrics)
