"""Data-loader wait time: ``data_wait_s`` / ``data_wait_fraction`` in every step record and the run summary."""

from __future__ import annotations

import json
import time

from ft_core.bootstrap import load_plugins
from ft_core.engine.run.context import EngineRun
from ft_core.engine.run.runner import load_and_validate, run_training

SLEEP = 0.05


def _rows(n: int) -> list[dict[str, list[int]]]:
    return [{"input_ids": [5, 6, 7, 8], "labels": [5, 6, 7, 8], "attention_mask": [1, 1, 1, 1]}] * n


def _trainer(make_config, tmp_path, **training):
    from transformers import DataCollatorForSeq2Seq

    plugins = load_plugins()
    config = load_and_validate(str(make_config(training={"max_steps": 3, **training})), [], plugins)
    run = EngineRun.from_config(config, plugins, tmp_path / "run")
    collate = DataCollatorForSeq2Seq(run_tokenizer(config))

    def slow_collator(features):
        time.sleep(SLEEP)  # a data loader that cannot keep up
        return collate(features)

    model = run.load_model()
    return run.build_trainer(
        model=model, args=run.training_arguments(), train_dataset=_rows(16), data_collator=slow_collator
    )


def run_tokenizer(config):
    from ft_core.engine.models.loader import load_tokenizer

    return load_tokenizer(config.model)


def test_the_wait_for_each_batch_is_measured_per_step_and_in_total(make_config, tmp_path):
    trainer = _trainer(make_config, tmp_path, gradient_accumulation_steps=2)
    result = trainer.train()
    steps = [r for r in trainer.state.log_history if "loss" in r]
    assert len(steps) == 3
    for record in steps:
        assert record["data_wait_s"] >= 2 * SLEEP  # two micro-batches per optimizer step
        assert 0 < record["data_wait_fraction"] <= 1
    assert result.metrics["data_wait_s"] >= 6 * SLEEP
    assert 0 < result.metrics["data_wait_fraction"] <= 1


def test_the_run_writes_it_to_metrics_summary_and_manifest(make_config):
    plugins = load_plugins()
    run_dir = run_training(load_and_validate(str(make_config()), [], plugins), plugins)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert steps and all(r["data_wait_s"] >= 0 and 0 <= r["data_wait_fraction"] <= 1 for r in steps)
    summary = json.loads((run_dir / "train_results.json").read_text())
    assert summary["data_wait_s"] >= 0 and 0 <= summary["data_wait_fraction"] <= 1
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["metrics"]["data_wait_s"] == summary["data_wait_s"]
