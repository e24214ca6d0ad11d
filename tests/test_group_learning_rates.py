"""An optimizer with parameter groups of different learning rates logs every group's rate, and what a plugin sees
of the optimizer: ``ft_before_train`` runs before the Trainer creates it, a callback's ``on_train_begin`` gets it."""

from __future__ import annotations

import json
import types
from typing import Any

import pytest

from ft_core.api import OptimizerFactory, hookimpl
from ft_core.bootstrap import load_plugins
from ft_core.engine.run.runner import load_and_validate, run_training

BASE_LR = 1e-3
#: The second group (``lora_B``) trains this many times faster.
SCALE = 4.0


class TwoGroups(OptimizerFactory[Any]):
    description = "SGD with lora_B at SCALE times the learning rate (test only)"

    def param_groups(self, options, model, default_groups, args):
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        return [
            {"params": [p for n, p in trainable if "lora_B" not in n], "weight_decay": 0.0},
            {
                "params": [p for n, p in trainable if "lora_B" in n],
                "weight_decay": 0.0,
                "lr": BASE_LR * SCALE,
            },
        ]

    def create(self, options, param_groups, args):
        import torch

        return torch.optim.SGD(param_groups, lr=args.learning_rate)


def _plugin(seen: dict[str, Any]) -> types.ModuleType:
    @hookimpl
    def ft_register_optimizers(register):
        register("twogroups", TwoGroups())

    @hookimpl
    def ft_before_train(trainer, run):
        seen["before_train"] = trainer.optimizer

    @hookimpl
    def ft_trainer_callbacks(run):
        from transformers import TrainerCallback

        class Begin(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                optimizer = kwargs.get("optimizer")
                seen["on_train_begin"] = [g["lr"] for g in optimizer.param_groups] if optimizer else None

        return [Begin()]

    module = types.ModuleType("group_lr_test")
    for name, function in dict(locals()).items():
        if name != "seen":
            setattr(module, name, function)
    return module


@pytest.fixture(scope="module")
def grouped_run(tmp_path_factory):
    import yaml

    from ft_core.testing.tiny import save_tiny_model_dir

    tmp = tmp_path_factory.mktemp("group-lr")
    config = {
        "model": {"name_or_path": save_tiny_model_dir(str(tmp / "model"))},
        "data": {"dataset": ["identity"], "cutoff_len": 64, "cache_dir": str(tmp / "cache")},
        "adapter": {"method": "lora", "rank": 4, "alpha": 8},
        "optimizer": {"name": "twogroups"},
        "training": {
            "output_dir": str(tmp / "run"),
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "learning_rate": BASE_LR,
            "lr_scheduler_type": "constant",
            "logging_steps": 1,
            "save_steps": 100,
            "use_cpu": True,
            "plot_loss": False,
        },
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    seen: dict[str, Any] = {}
    plugins = load_plugins(strict=True, extra=[(_plugin(seen), "group-lr-test")])
    run_dir = run_training(load_and_validate(str(path), [], plugins), plugins)
    return types.SimpleNamespace(run_dir=run_dir, seen=seen)


def test_every_group_learning_rate_is_logged(grouped_run):
    records = [json.loads(line) for line in (grouped_run.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for record in steps:
        assert record["learning_rate"] == pytest.approx(BASE_LR)
        assert record["learning_rate_group1"] == pytest.approx(BASE_LR * SCALE)
        assert "learning_rate_group2" not in record


def test_the_optimizer_exists_at_on_train_begin_not_at_before_train(grouped_run):
    assert grouped_run.seen["before_train"] is None
    assert grouped_run.seen["on_train_begin"] == pytest.approx([BASE_LR, BASE_LR * SCALE])
