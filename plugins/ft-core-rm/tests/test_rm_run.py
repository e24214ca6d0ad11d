"""``ft-core run`` with the rm stage on a tiny random-init model: the run completes with accuracy and margin
metrics, the reward model ranks unseen pairs above chance, and the saved artefact reloads with the same scores
(through ft-core and through transformers / PEFT)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

import ft_core_rm
from ft_core.api import Conversation, Message

CHOSEN = "Sure! {a} plus {b} is {total}."
REJECTED = "No. Ask someone else about {a} and {b}."


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


def write_run(
    tmp_path: Path, model_dir: str, rows: list[dict[str, str]], adapter: str, **training: Any
) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "pairs.json").write_text(json.dumps(rows), encoding="utf-8")
    columns = {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}
    (data / "dataset_info.json").write_text(
        json.dumps({"pairs": {"file_name": "pairs.json", "ranking": True, "columns": columns}})
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
        "stage": {"name": "rm"},
        "data": {
            "dataset": ["pairs"],
            "dataset_dir": str(data),
            "cutoff_len": 64,
            "cache_dir": str(tmp_path / "cache"),
            "preprocessing_workers": 1,
        },
        "adapter": {"method": adapter} | ({"rank": 8, "alpha": 16} if adapter == "lora" else {}),
        "training": {"output_dir": str(tmp_path / "run"), **settings},
    }
    path = tmp_path / "rm.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def run(config: Path) -> Path:
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.runner import load_and_validate, run_training

    plugins = load_plugins(extra=[(ft_core_rm, "ft-core-rm")])
    return run_training(load_and_validate(str(config), [], plugins), plugins)


def logged(run_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line).get("metrics", json.loads(line))
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


def flat(pairs_of_scores: list[tuple[float, float]]) -> list[float]:
    return [score for pair in pairs_of_scores for score in pair]


def scores(model: Any, encoder: Any, rows: list[dict[str, str]]) -> list[tuple[float, float]]:
    """``(score of chosen, score of rejected)`` per pair, each sequence rendered as in training."""
    import torch

    out = []
    for r in rows:
        conversation = Conversation([Message("user", r["instruction"]), Message("assistant", r["chosen"])])
        prompt, chosen = encoder.encode_completion(conversation)
        _, rejected = encoder.encode_completion(conversation, Message("assistant", r["rejected"]))
        pair = []
        for answer in (chosen, rejected):
            with torch.no_grad():
                pair.append(float(model(input_ids=torch.tensor([prompt + answer])).logits[0, 0]))
        out.append((pair[0], pair[1]))
    return out


def test_rm_with_lora_logs_accuracy_and_margin_and_saves_a_seq_cls_adapter(tiny_model_dir, tmp_path):
    config = write_run(tmp_path, tiny_model_dir, pairs(12, seed=1), "lora", eval_steps=3)
    data = json.loads(config.read_text())
    data["data"]["val_size"] = 4
    config.write_text(json.dumps(data))
    run_dir = run(config)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    # the memory estimate's rows: the longest answer, not the cutoff
    assert 0 < manifest["data"]["longest_row"] <= 64
    adapter_config = json.loads(next(run_dir.rglob("adapter_config.json")).read_text())
    assert adapter_config["task_type"] == "SEQ_CLS"
    steps = [m for m in logged(run_dir) if "loss" in m]
    assert len(steps) == 3
    assert all("accuracy" in m and "margin" in m for m in steps), steps
    assert steps[0]["accuracy"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert any("eval_accuracy" in m and "eval_margin" in m for m in logged(run_dir))


def test_rm_ranks_unseen_pairs_above_chance_and_reloads_with_equal_scores(
    tiny_model_dir, tmp_path, encoder, record_property
):
    """Trained on helpful-over-refusing pairs, the reward model scores the helpful answer higher on questions it
    never saw; the artefact loaded by ft-core and by transformers + PEFT gives the same scores."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from ft_core.bootstrap import load_trained_model

    train, held_out = pairs(24, seed=3), pairs(16, seed=4)
    config = write_run(tmp_path, tiny_model_dir, train, "lora", max_steps=12, learning_rate=1e-2)
    run_dir = run(config)
    model, _ = load_trained_model(str(run_dir))
    trained = scores(model.eval(), encoder(), held_out)
    accuracy = sum(c > r for c, r in trained) / len(trained)
    margin = sum(c - r for c, r in trained) / len(trained)
    print(f"rm held-out accuracy {accuracy:.2f}, mean margin {margin:.2f}")
    record_property("held_out_accuracy", accuracy)
    record_property("held_out_margin", margin)
    assert accuracy >= 0.9, trained
    assert margin > 0.5, trained

    artefact = next(run_dir.rglob("adapter_config.json")).parent
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    base.config.pad_token_id = model.config.pad_token_id
    plain = PeftModel.from_pretrained(base, str(artefact)).eval()
    assert flat(scores(plain, encoder(), held_out[:4])) == pytest.approx(flat(trained[:4]), abs=1e-4)


def test_rm_with_full_tuning_saves_a_model_transformers_loads(tiny_model_dir, tmp_path, encoder):
    from transformers import AutoModelForSequenceClassification

    from ft_core.bootstrap import load_trained_model

    run_dir = run(write_run(tmp_path, tiny_model_dir, pairs(8, seed=2), "full", max_steps=2))
    weights = [p for p in run_dir.rglob("model.safetensors") if "checkpoint-" not in str(p)]
    assert weights, f"no model saved in {run_dir}"
    plain = AutoModelForSequenceClassification.from_pretrained(str(weights[0].parent)).eval()
    assert plain.config.num_labels == 1
    model, _ = load_trained_model(str(run_dir))
    held_out = pairs(3, seed=9)
    reloaded = flat(scores(model.eval(), encoder(), held_out))
    assert flat(scores(plain, encoder(), held_out)) == pytest.approx(reloaded, abs=1e-4)
