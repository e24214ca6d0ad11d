"""``ft-core run`` with the dpo stage on a tiny random-init model: the run completes, the adapter is saved, and
training raises the chosen-over-rejected margin on held-out pairs."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from ft_core.api import Conversation, Message
from ft_core.testing.padding_free import assert_trains_the_same, compare_packed_with_padded

CHOSEN = "Sure! {a} plus {b} is {total}."
REJECTED = "No. Ask someone else about {a} and {b}."


def preference_pairs(count: int, seed: int) -> list[dict[str, str]]:
    """Alpaca ranking rows whose chosen and rejected answers differ systematically (helpful vs. refusal)."""
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
    tmp_path: Path,
    model_dir: str,
    rows: list[dict[str, str]],
    adapter: str,
    data_options: dict[str, Any] | None = None,
    **training: Any,
) -> Path:
    """A dataset folder with ``rows`` as the ``prefs`` ranking dataset and a run config; returns the config."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "prefs.json").write_text(json.dumps(rows), encoding="utf-8")
    info = {"prefs": {"file_name": "prefs.json", "ranking": True, "columns": {"prompt": "instruction"}}}
    info["prefs"]["columns"].update(chosen="chosen", rejected="rejected")
    (data / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    settings = {
        "max_steps": 3,
        "per_device_train_batch_size": 2,
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
        "stage": {"name": "dpo", "beta": 0.1},
        "data": {
            "dataset": ["prefs"],
            "dataset_dir": str(data),
            "cutoff_len": 64,
            "cache_dir": str(tmp_path / "cache"),
            "preprocessing_workers": 1,
            **(data_options or {}),
        },
        "adapter": {"method": adapter} | ({"rank": 8, "alpha": 16} if adapter == "lora" else {}),
        "training": {"output_dir": str(tmp_path / "run"), **settings},
    }
    path = tmp_path / "dpo.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def run(config: Path) -> Path:
    from ft_core.cli import main

    assert main(["run", str(config)]) == 0
    return Path(json.loads(config.read_text())["training"]["output_dir"])


def logged_metrics(run_dir: Path) -> list[dict[str, Any]]:
    records = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        records.append(record.get("metrics", record))
    return records


def test_dpo_with_lora_runs_evaluates_and_saves_the_adapter(tiny_model_dir, tmp_path):
    rows = preference_pairs(10, seed=1)
    run_dir = run(write_run(tmp_path, tiny_model_dir, rows, "lora", {"val_size": 2}, eval_steps=2))
    adapters = list(run_dir.rglob("adapter_config.json"))
    assert adapters, f"no adapter saved in {run_dir}"
    artefact = adapters[0].parent
    assert (artefact / "adapter_model.safetensors").is_file()
    assert not (artefact / "ref").exists()  # the reference is the adapter-disabled model, not a saved copy
    metrics = logged_metrics(run_dir)
    assert any("rewards/margins" in m for m in metrics), metrics
    assert any("eval_rewards/margins" in m for m in metrics), metrics  # evaluation runs the DPO loss too
    # the memory estimate's rows: each pair's prompt and longest answer, not the cutoff
    data = json.loads((run_dir / "manifest.json").read_text())["data"]
    assert 0 < data["longest_row"] <= 64, data


def test_dpo_with_full_tuning_uses_a_frozen_reference(tiny_model_dir, tmp_path):
    run_dir = run(write_run(tmp_path, tiny_model_dir, preference_pairs(8, seed=2), "full", max_steps=2))
    assert list(run_dir.rglob("model.safetensors")), f"no model saved in {run_dir}"
    first = next(m for m in logged_metrics(run_dir) if "loss" in m)
    assert first["loss"] == pytest.approx(0.6931, abs=1e-3)  # the policy starts equal to the reference


def sequence_logp(model: Any, prompt: list[int], answer: list[int]) -> float:
    import torch

    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    logps = torch.log_softmax(logits, dim=-1).gather(1, ids[0, 1:, None])[:, 0]
    return float(logps[len(prompt) - 1 :].sum())


def test_training_raises_the_chosen_over_rejected_margin_on_held_out_pairs(
    tiny_model_dir, tmp_path, encoder, record_property
):
    """DPO's implicit reward margin [log pi(c) - log ref(c)] - [log pi(r) - log ref(r)]: zero before training
    (the policy is the reference), clearly positive after it on pairs it never saw."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    train, held_out = preference_pairs(32, seed=3), preference_pairs(12, seed=4)
    config = write_run(
        tmp_path,
        tiny_model_dir,
        train,
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

    encode = encoder().encode_completion
    margins = []
    for row in held_out:
        conversation = Conversation(
            [Message("user", row["instruction"]), Message("assistant", row["chosen"])],
            extra={"rejected": Message("assistant", row["rejected"])},
        )
        prompt, chosen = encode(conversation)
        _, rejected = encode(conversation, conversation.extra["rejected"])
        trained = sequence_logp(policy, prompt, chosen) - sequence_logp(policy, prompt, rejected)
        with policy.disable_adapter():
            reference = sequence_logp(policy, prompt, chosen) - sequence_logp(policy, prompt, rejected)
        margins.append(trained - reference)
    record_property("held_out_margin_mean", sum(margins) / len(margins))
    assert sum(margins) / len(margins) > 2.0, margins
    assert sum(m > 0 for m in margins) == len(margins), margins


@pytest.mark.parametrize("adapter", ["lora", "full"])  # full: a frozen reference model, packed too
def test_packed_dpo_trains_the_same_as_padded(tiny_model_dir, tmp_path, monkeypatch, adapter):
    """``data.packing: true``: TRL's padded chosen / rejected batches run padding-free (the engine flattens each
    forward pass and restores the padded outputs): the same losses and rewards, step by step, as the padded run."""
    rows = preference_pairs(16, seed=5)

    def run_with(packing: bool) -> Path:
        folder = tmp_path / f"packing-{packing}"
        folder.mkdir()
        config = write_run(
            folder,
            tiny_model_dir,
            rows,
            adapter,
            {"packing": packing},
            max_steps=4,
            per_device_train_batch_size=4,
        )
        return run(config)

    comparison = compare_packed_with_padded(run_with, monkeypatch)
    assert comparison.packing["attention"] == "sdpa" and len(comparison.packed) == 4
    assert comparison.flattened >= 8  # each step's policy and reference passes ran packed
    assert_trains_the_same(comparison, ("loss", "rewards/chosen", "rewards/rejected", "logps/chosen"))
