"""The path from ``ft-core run`` to ``trainer.train()`` reads top to bottom: the orchestration (the runner's
``run_training`` and the stage's ``build_trainer``) calls into each engine module at most twice."""

from __future__ import annotations

import collections
import sys
from typing import Any

import transformers

from ft_core.bootstrap import load_plugins
from ft_core.engine.run.runner import load_and_validate, run_training

#: The frames that tell the run's story: the runner's and the stage's.
ORCHESTRATION = {"run_training", "build_trainer"}


def _entries_until_training(config_path: str, monkeypatch: Any) -> collections.Counter[str]:
    """Engine modules called from the orchestration's own frames, counted until ``trainer.train()`` starts."""
    entries: collections.Counter[str] = collections.Counter()
    train = transformers.Trainer.train

    def profile(frame: Any, event: str, arg: Any) -> None:
        caller = frame.f_back
        if event != "call" or caller is None or caller.f_code.co_name not in ORCHESTRATION:
            return
        callee = str(frame.f_globals.get("__name__", ""))
        if callee.startswith("ft_core.engine") and callee != caller.f_globals.get("__name__"):
            entries[callee] += 1

    def train_without_profile(self: Any, *args: Any, **kwargs: Any) -> Any:
        sys.setprofile(None)
        return train(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "train", train_without_profile)
    plugins = load_plugins()
    config = load_and_validate(config_path, ["training.max_steps=1"], plugins)
    sys.setprofile(profile)
    try:
        run_training(config, plugins)
    finally:
        sys.setprofile(None)
    return entries


def test_the_run_enters_each_engine_module_at_most_twice(make_config, monkeypatch):
    entries = _entries_until_training(str(make_config()), monkeypatch)
    assert entries["ft_core.engine.run.plan"] >= 1 and entries["ft_core.engine.run.trainer_setup"] >= 1
    assert {module: count for module, count in entries.items() if count > 2} == {}
