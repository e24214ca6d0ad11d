"""Training end to end on tiny models: LoRA, freeze, full, pt, artefacts, resume equivalence."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ft_core.api.components import TrainingLogger
from ft_core.api.errors import FtCoreError
from ft_core.api.hookspecs import hookimpl
from ft_core.bootstrap import load_plugins
from ft_core.engine.run.runner import load_and_validate, run_training


def _train(path: Path, overrides=(), plugins=None) -> Path:
    plugins = plugins or load_plugins()
    config = load_and_validate(str(path), list(overrides), plugins)
    return run_training(config, plugins)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(next(folder.glob("*.safetensors"))))


def test_lora_sft_writes_every_artefact(make_config):
    run = _train(make_config(loggers=["tensorboard"]))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    names = {(c["section"], c["name"], c["distribution"]) for c in manifest["components"]}
    assert {("adapter", "lora", "ft-core-lora"), ("stage", "sft", "ft-core-sft")} <= names
    assert manifest["template"]["name"] == "auto"
    assert manifest["model_family"]["name"] == "llama"
    assert manifest["model_family"]["distribution"] == "ft-core-llama"
    assert (run / "config.yaml").is_file()
    assert (run / "model" / "adapter_config.json").is_file()
    assert (run / "model" / "tokenizer_config.json").is_file()
    assert (run / "loss.png").stat().st_size > 1000
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    losses = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in losses if "loss" in r] == [1, 2]
    results = json.loads((run / "train_results.json").read_text())
    assert results["effective_tokens_per_sec"] > 0


@pytest.mark.parametrize("adapter", [{"method": "freeze", "trainable_layers": 1}, {"method": "full"}])
def test_freeze_and_full_save_a_whole_model_that_changed(make_config, tiny_model_dir, adapter):
    run = _train(make_config(adapter=adapter, training={"learning_rate": 1e-2}))
    before, after = _weights(Path(tiny_model_dir)), _weights(run / "model")
    changed = {k for k in before if not torch.equal(before[k], after[k].to(before[k].dtype))}
    assert changed, "training changed nothing"
    if adapter["method"] == "freeze":
        assert all(".layers.1." in k for k in changed), f"frozen weights changed: {sorted(changed)[:5]}"


def test_pretraining_stage_on_text(make_config):
    run = _train(make_config(stage="pt", data={"dataset": ["c4_demo"], "cutoff_len": 32}))
    results = json.loads((run / "train_results.json").read_text())
    assert results["train_loss"] > 0
    assert (run / "model" / "adapter_model.safetensors").is_file()


def _crash_plugin(at_step: int) -> types.ModuleType:
    """A logger plugin whose callback kills training at ``at_step``, like a crash or a pre-emption."""

    class Crash(TrainingLogger):
        def callback(self, options, run_dir):
            from transformers import TrainerCallback

            class Kill(TrainerCallback):
                def on_step_begin(self, args, state, control, **kwargs):
                    if state.global_step == at_step:
                        raise KeyboardInterrupt("simulated kill")

            return Kill()

    module = types.ModuleType("crash")
    module.ft_register_loggers = hookimpl(lambda register: register("crash", Crash()))
    return module


def test_resume_after_a_kill_reaches_the_same_result(make_config, tmp_path):
    common = {"max_steps": 6, "save_steps": 2, "learning_rate": 5e-3}
    straight = _train(make_config("a.yaml", training={**common, "output_dir": str(tmp_path / "straight")}))

    plugins = load_plugins(strict=True, extra=[(_crash_plugin(at_step=3), "crash-test")])
    crashing = make_config(
        "b.yaml", training={**common, "output_dir": str(tmp_path / "resumed")}, loggers=["crash"]
    )
    with pytest.raises(KeyboardInterrupt):
        _train(crashing, plugins=plugins)
    manifest = json.loads((tmp_path / "resumed" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert (tmp_path / "resumed" / "checkpoint-2").is_dir()

    resumed = _train(crashing, ["loggers=[]"])
    assert (resumed / "config.1.yaml").is_file(), "the config the checkpoints were trained with is kept"
    assert "crash" in (resumed / "config.1.yaml").read_text()
    assert json.loads((resumed / "manifest.json").read_text())["resumed_from"].endswith("checkpoint-2")
    a, b = _weights(straight / "model"), _weights(resumed / "model")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_a_finished_run_is_never_overwritten_silently(make_config):
    path = make_config()
    _train(path)
    with pytest.raises(FtCoreError, match="already holds a finished run"):
        _train(path)


@pytest.mark.parametrize(
    "adapter", [{"method": "lora", "rank": 4}, {"method": "freeze", "trainable_layers": 1}]
)
def test_chat_loads_a_trained_run_with_its_template_and_system_prompt(make_config, capsys, adapter):
    from ft_core.cli import main

    run = _train(make_config(adapter=adapter, template={"system": "You are Nova."}))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["template"]["system"] == "You are Nova."
    from ft_core.engine.inference.target import resolve_chat_target

    assert resolve_chat_target(str(run), load_plugins()).system == "You are Nova."
    capsys.readouterr()
    assert main(["chat", str(run), "--message", "Who are you?", "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("User: Who are you?\nAssistant: ")


def test_chat_refuses_an_unfinished_run(make_config, tmp_path, capsys):
    from ft_core.cli import main

    run = tmp_path / "unfinished"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"status": "interrupted"}))
    assert main(["chat", str(run), "--message", "hi"]) == 2
    assert "has not finished" in capsys.readouterr().err


def test_loss_plot_exists_even_for_a_run_shorter_than_logging_steps(make_config):
    run = _train(make_config(training={"logging_steps": 50}))
    assert (run / "loss.png").stat().st_size > 1000


def test_effective_tokens_count_every_non_padding_token_once(make_config, tmp_path):
    import datasets

    run = _train(
        make_config(training={"max_steps": -1, "num_train_epochs": 1, "per_device_train_batch_size": 4})
    )
    (cache,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    expected = sum(len(ids) for ids in datasets.load_from_disk(str(cache))["input_ids"])
    results = json.loads((run / "train_results.json").read_text())
    assert results["num_input_tokens_seen"] == expected
    assert results["effective_tokens_per_sec"] == pytest.approx(expected / results["train_runtime"], rel=0.01)


def test_validation_split_is_evaluated_and_plotted(make_config):
    run = _train(make_config(data={"val_size": 0.2}, training={"eval_steps": 1, "max_steps": 2}))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "eval_loss" in r] == [1, 2]
    assert (run / "loss.png").is_file()


@pytest.mark.parametrize(
    "training", [{"gradient_checkpointing": True}, {"precision": "bf16"}], ids=["checkpointing", "bf16"]
)
def test_memory_and_precision_options_train_on_cpu(make_config, training):
    run = _train(make_config(training=training))
    results = json.loads((run / "train_results.json").read_text())
    assert results["train_loss"] > 0


@pytest.mark.parametrize(
    ("model_type", "template", "family"), [("qwen2", "qwen", "qwen"), ("llama", "llama3", "llama")]
)
def test_named_template_matching_the_models_own_trains_and_records_its_family(
    make_config, tmp_path, model_type, template, family
):
    """A model folder whose tokenizer carries the official template: the named template passes the
    start-up equality check, the family plugin is found by model_type, and the run trains."""
    from ft_core.testing.tiny import tiny_model, tiny_tokenizer

    jinja = load_plugins().get("chat_template", template).jinja
    tokenizer = tiny_tokenizer(chat_template=jinja)
    folder = tmp_path / f"tiny-{model_type}"
    tiny_model(tokenizer, model_type=model_type).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    run = _train(make_config(model={"name_or_path": str(folder)}, template=template))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["template"]["name"] == template
    assert manifest["model_family"]["name"] == family
    assert manifest["model_family"]["model_type"] == model_type
