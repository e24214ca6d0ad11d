"""The engine's :class:`~ft_core.api.context.RunContext`: a thin run over its frozen plan.

The services a stage calls come from the modules that provide them: ``load_model`` from
:mod:`~ft_core.engine.run.model_steps`, ``training_arguments`` and ``build_trainer`` from
:mod:`~ft_core.engine.run.trainer_setup`.
"""

from __future__ import annotations

import inspect
import logging
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ft_core.api.config import RunConfig
from ft_core.api.context import Encoder, ProcessInfo, RunContext
from ft_core.api.events import RunEvent
from ft_core.api.plan import Decision, RunPlan
from ft_core.engine.config.activation import ActiveHooks
from ft_core.engine.plugins import CORE_DISTRIBUTION, Plugins
from ft_core.engine.run import distributed, trainer_setup
from ft_core.engine.run.plan import make_encoder
from ft_core.engine.training.callbacks import CancelRequest

logger = logging.getLogger("ft_core.engine.run")


class EngineRun(RunContext):
    """One run: its plan, the plugins that act in it, its folder and what the run records while it goes."""

    def __init__(self, plan: RunPlan, plugins: Plugins, run_dir: Path, prior_runtime: float = 0.0) -> None:
        self.plan = plan
        self.config = plan.config
        self.tokenizer = plan.tokenizer
        self.template = plan.template
        self.family = plan.family
        self.plugins = plugins
        #: pluggy's hook relay over the run's active plugins only.
        self.hooks: Any = ActiveHooks(plugins, plan.active_plugins)
        self.run_dir = run_dir
        self.process: ProcessInfo = distributed.process_info()
        self.uses_gpu = not plan.decisions["device"].value.startswith("cpu")
        self.cancel = CancelRequest(run_dir)
        #: Training time of the sessions before a resume (from the checkpoint), added to this session's.
        self.prior_runtime = prior_runtime
        #: The custom head modules of the trained model (``ModelRole.head_modules``), by name.
        self.heads: dict[str, Any] = {}
        #: Facts the model loading decided (attention, RoPE scaling), for the run manifest.
        self.facts: dict[str, Any] = {}
        #: Decisions taken during the run (``record``), beside the plan's.
        self.recorded: dict[str, Decision] = {}
        self.state: dict[str, Any] = {}
        self._said: set[str] = set()

    @classmethod
    def from_config(cls, config: RunConfig, plugins: Plugins, run_dir: Path) -> EngineRun:
        """A run over ``config``'s plan without prepared data (tools and tests that load models directly)."""
        from ft_core.engine.run.plan import build_plan

        return cls(build_plan(config, plugins, prepare=False)[0], plugins, run_dir)

    def say(self, message: str, key: str | None = None) -> None:
        """A progress line (main process only); with ``key``, only the first line for that key."""
        if key is not None:
            if key in self._said:
                return
            self._said.add(key)
        if self.process.is_main_process:
            logger.info(message)

    def record(self, key: str, value: Any, reason: str = "") -> None:
        self.recorded[key] = Decision(value, reason, self._caller_distribution())

    def _caller_distribution(self) -> str:
        """The distribution whose code called :meth:`record`: a loaded plugin's, ``ft-core`` for the engine, else
        the calling module's name."""
        frame = inspect.currentframe()
        caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
        module = str(caller.f_globals.get("__name__", "")) if caller is not None else ""
        package = module.split(".", 1)[0]
        for record in self.plugins.records:
            if record.module.split(":", 1)[0].split(".", 1)[0] == package:
                return record.distribution
        return CORE_DISTRIBUTION if package == "ft_core" else module

    def decisions(self) -> dict[str, Decision]:
        """The plan's decisions with those recorded during the run."""
        return {**self.plan.decisions, **self.recorded}

    def manifest_facts(self) -> dict[str, Any]:
        """What the run manifest records of this run: the plan, the run's decisions and the loading facts."""
        return {
            **self.plan.manifest(),
            "decisions": {key: decision.manifest() for key, decision in self.decisions().items()},
            **self.facts,
        }

    # ------------------------------------------------------------------ models
    def load_model(self, role: str = "policy", *, trainable: bool | None = None) -> Any:
        """The model of the stage's role ``role``, built step by step (:mod:`~ft_core.engine.run.model_steps`);
        ``trainable`` defaults to the role's own."""
        from ft_core.engine.run import model_steps

        return model_steps.load_model(self, role, trainable=trainable)

    def checkpointing_plan(self, model_config: Any = None, dtype: Any = None) -> Any:
        """The run's activation-checkpointing plan (decided in the plan, before any weights loaded)."""
        return self.plan.checkpointing

    training_arguments = trainer_setup.training_arguments
    build_trainer = trainer_setup.build_trainer

    # ------------------------------------------------------------------ data and events
    def encoder(self) -> Encoder:
        return make_encoder(
            self.config, self.plugins, self.tokenizer, self.template, self.family, self.plan.model_path
        )

    def emit(self, event: RunEvent) -> None:
        if self.process.is_main_process:
            self.hooks.ft_run_event(event=event)

    def main_process_first(self) -> AbstractContextManager[None]:
        return distributed.main_process_first()
