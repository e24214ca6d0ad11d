"""``ft-core run`` with the grpo stage on a tiny random-init model: a run completes and logs the mean reward of its
generations (built-in and callable reward functions)."""

from __future__ import annotations

import json
import random
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import ft_core_grpo


def prompts(count: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        rows.append({"instruction": f"What is {a} plus {b}?", "output": str(a + b)})
    return rows


def write_run(
    tmp_path: Path, model_dir: str, rows: list[dict[str, str]], stage: dict[str, Any], **training: Any
) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "prompts.json").write_text(json.dumps(rows), encoding="utf-8")
    columns = {"prompt": "instruction", "response": "output"}
    (data / "dataset_info.json").write_text(
        json.dumps({"prompts": {"file_name": "prompts.json", "columns": columns}})
    )
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
        "stage": {"name": "grpo", "num_generations": 4, "max_completion_length": 8, **stage},
        "data": {
            "dataset": ["prompts"],
            "dataset_dir": str(data),
            "cutoff_len": 64,
            "cache_dir": str(tmp_path / "cache"),
            "preprocessing_workers": 1,
        },
        "adapter": {"method": "lora", "rank": 8, "alpha": 16},
        "training": {"output_dir": str(tmp_path / "run"), **settings},
    }
    path = tmp_path / "grpo.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def run(config: Path) -> Path:
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.runner import load_and_validate, run_training

    plugins = load_plugins(extra=[(ft_core_grpo, "ft-core-grpo")])
    return run_training(load_and_validate(str(config), [], plugins), plugins)


def logged(run_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line).get("metrics", json.loads(line))
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


@pytest.fixture
def reward_module(tmp_path, monkeypatch):
    """A module ``grpo_test_rewards`` on ``sys.path`` with reward functions a config can name."""
    folder = tmp_path / "rewards"
    folder.mkdir()
    (folder / "grpo_test_rewards.py").write_text(
        textwrap.dedent(
            """
            SEEN = []

            def answer_is_passed(prompts, completions, answer, **kwargs):
                SEEN.append((list(prompts), list(completions), list(answer)))
                return [1.0 for _ in completions]
            """
        )
    )
    monkeypatch.syspath_prepend(str(folder))
    yield "grpo_test_rewards"
    sys.modules.pop("grpo_test_rewards", None)


def test_grpo_runs_logs_the_mean_reward_and_passes_the_answer_to_callables(
    tiny_model_dir, tmp_path, reward_module
):
    stage = {
        "reward_functions": ["exact_match", "length", f"{reward_module}:answer_is_passed"],
        "length_target": 5,
    }
    run_dir = run(write_run(tmp_path, tiny_model_dir, prompts(8, seed=1), stage))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert list(run_dir.rglob("adapter_model.safetensors"))
    steps = [m for m in logged(run_dir) if "loss" in m]
    assert len(steps) == 2
    for step in steps:
        assert "reward" in step and "reward_std" in step
        assert step["rewards/answer_is_passed/mean"] == 1.0
        assert 0.0 <= step["rewards/length/mean"] <= 1.0
        assert "rewards/exact_match/mean" in step
    seen = sys.modules[reward_module].SEEN
    prompts_seen, completions, answers = seen[0]
    assert len(completions) == len(answers) == len(prompts_seen) == 4  # per-device batch, in answers
    assert len(set(prompts_seen)) == 1  # a group: one prompt's 4 generations
    assert answers[0] in {str(n) for n in range(2, 19)}
    assert "What is" in prompts_seen[0] and prompts_seen[0].rstrip().endswith("assistant")
