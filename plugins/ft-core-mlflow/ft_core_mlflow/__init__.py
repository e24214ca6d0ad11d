"""ft-core plugin: the ``mlflow`` logger (MLflow tracking).

Each run becomes an MLflow run holding the step and evaluation metrics (``train/loss``, ``eval/loss``, ... at the
trainer's global step), the resolved config (``run.config.raw``) flattened into params (``training.learning_rate``,
...), and the (name, distribution, version) of every component and active plugin as tags
(``ft_core.component.adapter = lora (ft-core-lora 0.2.0)``). The default store is ``sqlite:///<run folder>/mlflow.db``
(MLflow's file store is deprecated); ``tracking_uri`` or ``$MLFLOW_TRACKING_URI`` picks another (a server, a shared
database). The MLflow run ends FINISHED, FAILED or KILLED (cancelled) with the run.

Import-light: mlflow, torch and transformers are imported when the run starts, not at registration.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ft_core.api import Register, RunContext, RunEvent, TrainingLogger, hookimpl

__all__ = ["MlflowLogger", "MlflowOptions", "flatten"]

logger = logging.getLogger(__name__)

#: MLflow's longest param value (longer values are cut, ending in "...").
MAX_PARAM = 6000


@dataclass(frozen=True)
class MlflowOptions:
    """Options of the ``mlflow`` logger."""

    #: Tracking URI (default: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<output_dir>/mlflow.db``).
    tracking_uri: str | None = None
    #: Experiment (created when missing; default: ``$MLFLOW_EXPERIMENT_NAME``, else ``ft-core``).
    experiment: str | None = None
    #: Name of the MLflow run (default: the run folder's name).
    run_name: str | None = None
    #: Extra tags of the MLflow run.
    tags: dict[str, str] = field(default_factory=dict)


_SESSIONS: dict[str, Any] = {}
_STATUS = {"finished": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested mappings as dotted keys with string values (lists as their JSON-ish text)."""
    if isinstance(data, dict):
        flat: dict[str, str] = {}
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    text = str(data)
    return {prefix[:-1]: text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 3] + "..."}


def _metric_name(key: str) -> str:
    return f"eval/{key[5:]}" if key.startswith("eval_") else key if "/" in key else f"train/{key}"


def _numbers(logs: dict[str, Any]) -> dict[str, float]:
    return {
        _metric_name(k): float(v)
        for k, v in logs.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _callback(options: MlflowOptions, run_dir: str) -> Any:
    from transformers import TrainerCallback

    class MlflowSession(TrainerCallback):  # type: ignore[misc]
        """Creates the MLflow run when training begins and logs every ``on_log`` at the trainer's global step."""

        def __init__(self) -> None:
            self.client: Any = None
            self.run_id: str | None = None
            self.pending: tuple[dict[str, str], dict[str, str]] | None = None

        def describe(self, params: dict[str, str], tags: dict[str, str]) -> None:
            if self.run_id is None:
                self.pending = (params, tags)
                return
            from mlflow.entities import Param, RunTag

            items = [Param(k, v) for k, v in params.items()]
            for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
                self.client.log_batch(self.run_id, params=items[start : start + 100])
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

        def start(self) -> None:
            from mlflow.tracking import MlflowClient

            uri = options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
            if not uri:
                Path(run_dir).mkdir(parents=True, exist_ok=True)
                uri = f"sqlite:///{Path(run_dir).resolve() / 'mlflow.db'}"
            self.client = MlflowClient(tracking_uri=uri)
            name = options.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "ft-core"
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            run = self.client.create_run(
                experiment_id,
                run_name=options.run_name or Path(run_dir).name,
                tags={"ft_core.run_dir": str(Path(run_dir).resolve()), **options.tags},
            )
            self.run_id = run.info.run_id
            logger.info("mlflow: run %s in experiment %s (%s)", self.run_id, name, uri)
            if self.pending is not None:
                self.describe(*self.pending)
                self.pending = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero and self.run_id is None:
                self.start()

        def log(self, metrics: dict[str, float], step: int) -> None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            items = [Metric(k, v, now, step) for k, v in metrics.items()]
            if items:
                self.client.log_batch(self.run_id, metrics=items)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if self.run_id is not None and logs:
                self.log(_numbers(logs), int(state.global_step))

        def close(self, status: str, metrics: dict[str, Any], step: int | None) -> None:
            if self.run_id is None:
                return
            final = {f"final/{k.split('/', 1)[-1]}": v for k, v in _numbers(metrics).items()}
            self.log(final, step or 0)
            self.client.set_terminated(self.run_id, status=_STATUS.get(status, "FINISHED"))
            self.run_id = None

    session = MlflowSession()
    _SESSIONS[run_dir] = session
    return session


class MlflowLogger(TrainingLogger[MlflowOptions]):
    """Logs metrics, the resolved config and component versions to MLflow."""

    options_schema: ClassVar[type] = MlflowOptions
    description: ClassVar[str] = "MLflow tracking (sqlite:/// store by default)"

    def callback(self, options: MlflowOptions, run_dir: str) -> Any:
        return _callback(options, run_dir)


@hookimpl
def ft_register_loggers(register: Register[TrainingLogger[Any]]) -> None:
    register("mlflow", MlflowLogger())


@hookimpl
def ft_before_train(run: RunContext) -> None:
    session = _SESSIONS.get(str(run.run_dir))
    if session is None:
        return
    tags = {
        f"ft_core.component.{s.section}" + (f".{i}" if len(selections) > 1 else ""): (
            f"{s.name} ({s.distribution} {s.version})"
        )
        for selections in run.config.selections.values()
        for i, s in enumerate(selections)
    }
    tags.update(
        {f"ft_core.plugin.{p.name}": f"{p.distribution} {p.version}" for p in run.plan.active_plugins}
    )
    session.describe(flatten(run.config.raw), tags)


@hookimpl
def ft_run_event(event: RunEvent) -> None:
    if event.kind in ("finished", "failed", "cancelled"):
        session = _SESSIONS.pop(event.run_dir, None)
        if session is not None:
            session.close(event.kind, event.metrics, event.step)
