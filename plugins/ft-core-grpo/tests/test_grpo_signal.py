"""GRPO's training signal is real: on a ~20-token word-level model answering near uniformly, rewarded by the share
of ``yes`` among the answer's words (about 1/20 at first), the mean reward of the generations rises within a few
steps."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

import ft_core_grpo
from ft_core.testing import run_config, save_tiny_word_model_dir


@pytest.fixture
def reward_module(tmp_path, monkeypatch):
    """A module ``grpo_signal_rewards`` on ``sys.path``: ``yes`` scores the share of the words that are ``yes``."""
    folder = tmp_path / "rewards"
    folder.mkdir()
    (folder / "grpo_signal_rewards.py").write_text(
        textwrap.dedent(
            """
            def yes(prompts, completions, answer, **kwargs):
                return [text.split().count("yes") / max(len(text.split()), 1) for text in completions]
            """
        )
    )
    monkeypatch.syspath_prepend(str(folder))
    yield "grpo_signal_rewards"
    sys.modules.pop("grpo_signal_rewards", None)


def test_grpo_raises_the_mean_reward_of_its_generations(tmp_path, reward_module, record_property):
    model_dir = save_tiny_word_model_dir(str(tmp_path / "model"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "prompts.json").write_text(json.dumps([{"instruction": "say something", "output": "yes"}] * 16))
    (data / "dataset_info.json").write_text(json.dumps({"prompts": {"file_name": "prompts.json"}}))
    config = {
        "model": {"name_or_path": model_dir},
        "stage": {
            "name": "grpo",
            "reward_functions": [f"{reward_module}:yes"],
            "num_generations": 4,
            "max_completion_length": 8,
        },
        "data": {
            "dataset": ["prompts"],
            "dataset_dir": str(data),
            "cutoff_len": 32,
            "cache_dir": str(tmp_path / "cache"),
            "preprocessing_workers": 1,
        },
        "adapter": {"method": "full"},
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 12,
            "per_device_train_batch_size": 16,  # answers: 4 prompts x 4 generations
            "learning_rate": 1e-2,
            "lr_scheduler_type": "constant",
            "logging_steps": 1,
            "save_steps": 1000,
            "use_cpu": True,
            "plot_loss": False,
            "seed": 0,
        },
    }
    path = tmp_path / "grpo.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    run = run_config(path, ft_core_grpo, distribution="ft-core-grpo")
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rewards = [m["reward"] for m in (line.get("metrics", line) for line in lines) if "reward" in m]
    assert len(rewards) == 12
    first, last = sum(rewards[:2]) / 2, sum(rewards[-3:]) / 3
    print(f"grpo mean reward: first 2 steps {first:.3f}, last 3 steps {last:.3f} ({rewards})")
    record_property("mean_reward_first_last", (first, last))
    assert last > first + 0.25 and last > 3 * first, rewards
