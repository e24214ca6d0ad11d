"""``ft-core run`` with the ppo stage on tiny random-init models: a LoRA run logs PPO's metrics and saves the adapter
with the value head, a cancelled run resumes from its checkpoint (KL coefficient and value head restored), an rm
run made in the test rewards a run, and PPO raises the mean reward of its generations."""

from __future__ import annotations

import json
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

import ft_core_ppo
import ft_core_rm
from ft_core.api import RunCancelled, TrainingLogger, hookimpl
from ft_core.testing import save_tiny_word_model_dir

PPO_METRICS = (
    "objective/scores",
    "objective/kl",
    "objective/kl_coef",
    "objective/entropy",
    "policy/loss",
    "policy/clipfrac",
    "value/loss",
    "value/clipfrac",
)


def write_run(
    tmp_path: Path,
    model_dir: str,
    rows: list[dict[str, str]],
    stage: dict[str, Any],
    adapter: str = "lora",
    name: str = "ppo",
    ranking: bool = False,
    **training: Any,
) -> Path:
    data = tmp_path / f"data-{name}"
    data.mkdir(exist_ok=True)
    (data / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    entry: dict[str, Any] = {"file_name": "rows.json"}
    if ranking:
        entry |= {
            "ranking": True,
            "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"},
        }
    (data / "dataset_info.json").write_text(json.dumps({"rows": entry}))
    settings = {
        "max_steps": 2,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "constant",
        "logging_steps": 1,
        "save_steps": 1000,
        "use_cpu": True,
        "plot_loss": False,
        "seed": 0,
        **training,
    }
    config = {
        "model": {"name_or_path": model_dir},
        "stage": stage,
        "data": {
            "dataset": ["rows"],
            "dataset_dir": str(data),
            "cutoff_len": 64,
            "cache_dir": str(tmp_path / "cache"),
            "preprocessing_workers": 1,
        },
        "adapter": {"method": adapter} | ({"rank": 8, "alpha": 16} if adapter == "lora" else {}),
        "training": {"output_dir": str(tmp_path / f"run-{name}"), **settings},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def run(config: Path, *extra: types.ModuleType, overrides: tuple[str, ...] = ()) -> Path:
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.runner import load_and_validate, run_training

    modules = [(ft_core_ppo, "ft-core-ppo"), (ft_core_rm, "ft-core-rm"), *((m, m.__name__) for m in extra)]
    plugins = load_plugins(extra=modules)
    return run_training(load_and_validate(str(config), list(overrides), plugins), plugins)


def logged(run_dir: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [m for m in (line.get("metrics", line) for line in lines) if "loss" in m]


def prompts(count: int) -> list[dict[str, str]]:
    """Prompt-only alpaca rows (no output column)."""
    return [{"instruction": f"Say something about {n}."} for n in range(count)]


@pytest.fixture
def reward_module(tmp_path, monkeypatch):
    """A module ``ppo_test_rewards`` on ``sys.path``: ``yes`` scores the share of the words that are ``yes``."""
    folder = tmp_path / "rewards"
    folder.mkdir()
    (folder / "ppo_test_rewards.py").write_text(
        textwrap.dedent(
            """
            def yes(prompts, completions, answer, **kwargs):
                return [text.split().count("yes") / max(len(text.split()), 1) for text in completions]
            """
        )
    )
    monkeypatch.syspath_prepend(str(folder))
    yield "ppo_test_rewards"
    sys.modules.pop("ppo_test_rewards", None)


def _cancel_at(step: int) -> types.ModuleType:
    """A logger whose callback asks the run to cancel (as ``ft-core cancel`` does) when ``step`` begins."""
    from transformers import TrainerCallback

    from ft_core.cli import main

    class Canceller(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == step - 1:
                assert main(["cancel", args.output_dir]) == 0

    class CancelLogger(TrainingLogger):
        def callback(self, options, run_dir):
            return Canceller()

    module = types.ModuleType("ppo_cancel_plugin")

    @hookimpl
    def ft_register_loggers(register):
        register("canceller", CancelLogger())

    module.ft_register_loggers = ft_register_loggers  # type: ignore[attr-defined]
    return module


def test_ppo_with_lora_logs_its_metrics_saves_the_value_head_and_resumes(tiny_model_dir, tmp_path):
    stage = {"name": "ppo", "reward_model": "length", "length_target": 10, "max_new_tokens": 6, "horizon": 10}
    config = write_run(tmp_path, tiny_model_dir, prompts(8), stage, max_steps=3)
    data = json.loads(config.read_text())
    data["loggers"] = ["canceller"]
    config.write_text(json.dumps(data))
    with pytest.raises(RunCancelled, match="cancelled at step 2"):
        run(config, _cancel_at(2))
    run_dir = tmp_path / "run-ppo"
    checkpoint = run_dir / "checkpoint-2"
    assert (checkpoint / "heads.safetensors").is_file()
    kl_coef = json.loads((checkpoint / "ppo_state.json").read_text())["kl_coef"]
    assert kl_coef != pytest.approx(0.2, abs=1e-4)  # horizon 10: the adaptive controller moved it
    run(config, overrides=("loggers=[]",))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["resumed_from"].endswith("checkpoint-2")
    assert "adapter disabled" in json.dumps(manifest["decisions"])
    artefact = run_dir / "model"
    assert (artefact / "adapter_model.safetensors").is_file() and (artefact / "heads.safetensors").is_file()
    steps = logged(run_dir)
    assert len(steps) == 3
    for name in PPO_METRICS:
        assert all(name in step for step in steps), (name, steps)
    assert steps[0]["objective/kl"] == pytest.approx(0.0, abs=1e-5)  # policy == reference before any update
    assert steps[2]["objective/kl_coef"] == pytest.approx(kl_coef, rel=1e-5)  # restored from the checkpoint
    results = json.loads((run_dir / "train_results.json").read_text())
    # tokens/s counts each rollout's prompts and answers (the batch itself holds prompts only)
    assert results["num_input_tokens_seen"] > 0 and results["effective_tokens_per_sec"] > 0


def test_ppo_rewarded_by_an_rm_run_with_full_tuning(tiny_model_dir, tmp_path):
    pairs = [
        {"instruction": f"What is {n} plus 1?", "chosen": f"It is {n + 1}.", "rejected": "No."}
        for n in range(8)
    ]
    rm_dir = run(write_run(tmp_path, tiny_model_dir, pairs, {"name": "rm"}, name="rm", ranking=True))
    assert json.loads((rm_dir / "manifest.json").read_text())["status"] == "completed"
    stage = {"name": "ppo", "reward_model": str(rm_dir), "max_new_tokens": 6}
    run_dir = run(write_run(tmp_path, tiny_model_dir, prompts(8), stage, adapter="full"))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    decisions = json.dumps(manifest["decisions"])
    assert (
        f"reward model of the rm run {rm_dir}" in decisions and "frozen copy of the base model" in decisions
    )
    steps = logged(run_dir)
    assert len(steps) == 2 and all(step["objective/scores"] != 0.0 for step in steps)


def test_ppo_raises_the_mean_reward_of_its_generations(tmp_path, reward_module, record_property):
    """A ~20-token word-level model answering near uniformly; the reward is the share of ``yes`` among the
    answer's words (about 1/20 at first)."""
    model_dir = save_tiny_word_model_dir(str(tmp_path / "model"))
    stage = {
        "name": "ppo",
        "reward_model": f"{reward_module}:yes",
        "max_new_tokens": 8,
        "init_kl_coef": 0.01,
        "ppo_epochs": 2,
        "num_mini_batches": 2,
    }
    rows = [{"instruction": "say something"}] * 16
    config = write_run(
        tmp_path,
        model_dir,
        rows,
        stage,
        adapter="full",
        max_steps=10,
        per_device_train_batch_size=16,
        learning_rate=1e-2,
    )
    scores = [step["objective/scores"] for step in logged(run(config))]
    first, last = sum(scores[:2]) / 2, sum(scores[-3:]) / 3
    print(f"ppo mean reward: first 2 steps {first:.3f}, last 3 steps {last:.3f} ({scores})")
    record_property("mean_reward_first_last", (first, last))
    assert last > first + 0.3, scores
