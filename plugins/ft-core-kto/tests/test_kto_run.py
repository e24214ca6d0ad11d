"""``ft-core run`` with the kto stage on a tiny random-init model: the run completes with KTO's metrics, the
adapter is saved, a cancelled run resumes from its checkpoint, and training raises the chosen-over-rejected margin
on held-out pairs."""

from __future__ import annotations

import json
import random
import types
from pathlib import Path
from typing import Any

import pytest

import ft_core_kto
from ft_core.api import Conversation, Message, RunCancelled, TrainingLogger, hookimpl
from ft_core.testing.padding_free import assert_trains_the_same, compare_packed_with_padded

CHOSEN = "Sure! {a} plus {b} is {total}."
REJECTED = "No. Ask someone else about {a} and {b}."
KTO_METRICS = (
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
    "kl",
)


def pairs(count: int, seed: int) -> list[dict[str, str]]:
    """Questions with a helpful (chosen) and a refusing (rejected) answer."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        rows.append(
            {
                "instruction": f"What is {a} plus {b}?",
                "chosen": CHOSEN.format(a=a, b=b, total=a + b),
                "rejected": REJECTED.format(a=a, b=b),
            }
        )
    return rows


def unpaired(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """KTO rows: each pair's chosen answer tagged desirable and its rejected one undesirable, alternating."""
    out = []
    for r in rows:
        out.append({"instruction": r["instruction"], "output": r["chosen"], "label": True})
        out.append({"instruction": r["instruction"], "output": r["rejected"], "label": False})
    return out


def write_run(
    tmp_path: Path, model_dir: str, rows: list[dict[str, Any]], adapter: str, **training: Any
) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "feedback.json").write_text(json.dumps(rows), encoding="utf-8")
    columns = {"prompt": "instruction", "response": "output", "kto_tag": "label"}
    (data / "dataset_info.json").write_text(
        json.dumps({"feedback": {"file_name": "feedback.json", "columns": columns}})
    )
    settings = {
        "max_steps": 3,
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
        "stage": {"name": "kto", "beta": 0.1},
        "data": {
            "dataset": ["feedback"],
            "dataset_dir": str(data),
            "cutoff_len": 64,
            "cache_dir": str(tmp_path / "cache"),
            "preprocessing_workers": 1,
        },
        "adapter": {"method": adapter} | ({"rank": 8, "alpha": 16} if adapter == "lora" else {}),
        "training": {"output_dir": str(tmp_path / "run"), **settings},
    }
    path = tmp_path / "kto.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def run(config: Path, *extra: types.ModuleType, overrides: tuple[str, ...] = ()) -> Path:
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.runner import load_and_validate, run_training

    plugins = load_plugins(extra=[(ft_core_kto, "ft-core-kto"), *((m, m.__name__) for m in extra)])
    return run_training(load_and_validate(str(config), list(overrides), plugins), plugins)


def logged(run_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line).get("metrics", json.loads(line))
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


def test_kto_with_lora_runs_logs_its_metrics_and_saves_the_adapter(tiny_model_dir, tmp_path):
    config = write_run(tmp_path, tiny_model_dir, unpaired(pairs(8, seed=1)), "lora", eval_steps=3)
    data = json.loads(config.read_text())
    data["data"]["val_size"] = 4
    config.write_text(json.dumps(data))
    run_dir = run(config)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    artefact = next(run_dir.rglob("adapter_config.json")).parent
    assert (artefact / "adapter_model.safetensors").is_file()
    assert not (artefact / "ref").exists()  # the reference is the adapter-disabled model, not a saved copy
    steps = [m for m in logged(run_dir) if "loss" in m]
    assert len(steps) == 3
    for name in KTO_METRICS:  # a batch of one kind of row has no rewards of the other kind, nor a margin
        assert any(name in m for m in steps), (name, steps)
    assert all("kl" in m and "loss" in m for m in steps)
    assert steps[0]["loss"] == pytest.approx(0.5, abs=1e-3)  # policy == reference: 1 - sigmoid(0)
    assert any(
        "eval_kl" in m and "eval_loss" in m for m in logged(run_dir)
    )  # evaluation runs the KTO loss too
    decisions = json.dumps(manifest)
    assert "kto.reference" in decisions and "adapter disabled" in decisions


def test_kto_with_full_tuning_uses_a_frozen_reference(tiny_model_dir, tmp_path):
    run_dir = run(write_run(tmp_path, tiny_model_dir, unpaired(pairs(6, seed=2)), "full", max_steps=2))
    assert list(run_dir.rglob("model.safetensors")), f"no model saved in {run_dir}"
    steps = [m for m in logged(run_dir) if "loss" in m]
    assert steps[0]["loss"] == pytest.approx(0.5, abs=1e-3)
    assert steps[1]["loss"] != pytest.approx(0.5, abs=1e-4)  # the policy moved away from the frozen reference


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

    module = types.ModuleType("kto_cancel_plugin")

    @hookimpl
    def ft_register_loggers(register):
        register("canceller", CancelLogger())

    module.ft_register_loggers = ft_register_loggers  # type: ignore[attr-defined]
    return module


def test_a_cancelled_kto_run_resumes_from_its_checkpoint(tiny_model_dir, tmp_path):
    config = write_run(tmp_path, tiny_model_dir, unpaired(pairs(8, seed=5)), "lora", max_steps=4)
    data = json.loads(config.read_text())
    data["loggers"] = ["canceller"]
    config.write_text(json.dumps(data))
    with pytest.raises(RunCancelled, match="cancelled at step 2"):
        run(config, _cancel_at(2))
    run_dir = tmp_path / "run"
    assert (run_dir / "checkpoint-2" / "trainer_state.json").is_file()
    run(config, overrides=("loggers=[]",))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["resumed_from"].endswith("checkpoint-2")
    steps = [m for m in logged(run_dir) if "loss" in m]
    assert len(steps) == 4 and all("rewards/margins" in m for m in steps)


def sequence_logp(model: Any, prompt: list[int], answer: list[int]) -> float:
    import torch

    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    logps = torch.log_softmax(logits, dim=-1).gather(1, ids[0, 1:, None])[:, 0]
    return float(logps[len(prompt) - 1 :].sum())


def held_out_margins(policy: Any, held_out: list[dict[str, str]], encode: Any) -> list[float]:
    """Per held-out pair: [log pi(c) - log pi(r)] - [log ref(c) - log ref(r)] (ref = adapter disabled)."""
    margins = []
    for r in held_out:
        conversation = Conversation([Message("user", r["instruction"]), Message("assistant", r["chosen"])])
        prompt, chosen = encode(conversation)
        _, rejected = encode(conversation, Message("assistant", r["rejected"]))
        trained = sequence_logp(policy, prompt, chosen) - sequence_logp(policy, prompt, rejected)
        with policy.disable_adapter():
            reference = sequence_logp(policy, prompt, chosen) - sequence_logp(policy, prompt, rejected)
        margins.append(trained - reference)
    return margins


def test_training_raises_the_chosen_over_rejected_margin_on_held_out_pairs(
    tiny_model_dir, tmp_path, encoder, record_property
):
    """Trained on answers tagged desirable / undesirable, the policy prefers the desirable kind of answer on
    questions it never saw: log pi(chosen) - log pi(rejected) grows against the untrained model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    train, held_out = pairs(24, seed=3), pairs(12, seed=4)
    config = write_run(
        tmp_path,
        tiny_model_dir,
        unpaired(train),
        "lora",
        max_steps=12,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
    )
    run_dir = run(config)
    artefact = next(run_dir.rglob("adapter_config.json")).parent
    policy = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(artefact)
    ).eval()
    margins = held_out_margins(policy, held_out, encoder().encode_completion)
    mean = sum(margins) / len(margins)
    print(f"kto held-out margin gain: mean {mean:.2f}, min {min(margins):.2f}")
    record_property("held_out_margin_mean", mean)
    assert mean > 2.0, margins
    assert all(m > 0 for m in margins), margins


def test_packed_kto_trains_the_same_as_padded(tiny_model_dir, tmp_path, monkeypatch):
    """``data.packing: true``: TRL's padded batches (rows, KL pairs, policy and reference passes) run padding-free
    (the engine flattens each forward pass and restores the padded outputs): the same losses and rewards, step by
    step, as the padded run."""
    rows = unpaired(pairs(8, seed=11))

    def run_with(packing: bool) -> Path:
        folder = tmp_path / f"packing-{packing}"
        folder.mkdir()
        config = write_run(folder, tiny_model_dir, rows, "lora", max_steps=3)
        return run(config, overrides=(f"data.packing={str(packing).lower()}",))

    comparison = compare_packed_with_padded(run_with, monkeypatch)
    assert len(comparison.packed) == 3
    assert (
        comparison.flattened >= 12
    )  # each step's policy and reference passes over the rows and the KL pairs
    assert_trains_the_same(comparison, ("loss", "kl", "logps/chosen", "logps/rejected"))
