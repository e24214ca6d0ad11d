"""A run's life: true manifest statuses, events, cancellation with a kept checkpoint, resume totals, data
preparation (parallel, cached, `ft-core prepare`)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import yaml

from ft_core.api import RunCancelled, RunEvent, TrainingLogger
from ft_core.api.errors import FtCoreError, TemplateMismatchError
from ft_core.api.hookspecs import hookimpl
from ft_core.bootstrap import load_plugins
from ft_core.cli import main
from ft_core.engine.run.runner import load_and_validate, run_training


def _train(path: Path, overrides=(), plugins=None) -> Path:
    plugins = plugins or load_plugins()
    return run_training(load_and_validate(str(path), list(overrides), plugins), plugins)


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def _event_recorder() -> tuple[types.ModuleType, list[RunEvent]]:
    events: list[RunEvent] = []
    module = types.ModuleType("event_recorder")

    @hookimpl
    def ft_run_event(event):
        events.append(event)

    module.ft_run_event = ft_run_event
    module.ft_activate_by_default = hookimpl(lambda config: "records every run's events")
    return module, events


def test_a_run_that_fails_before_training_ends_failed_with_its_error(make_config, tmp_path):
    bad = tmp_path / "data"
    bad.mkdir()
    (bad / "dataset_info.json").write_text(json.dumps({"broken": {"file_name": "rows.json"}}))
    (bad / "rows.json").write_text(json.dumps([{"instruction": "hi", "output": ""}]))
    path = make_config(data={"dataset": ["broken"], "dataset_dir": str(bad)})
    with pytest.raises(FtCoreError, match="row 1: output: empty response"):
        _train(path)
    manifest = _manifest(tmp_path / "run")
    assert manifest["status"] == "failed"
    assert "empty response" in manifest["error"]


def test_events_follow_the_run_in_order(make_config):
    recorder, events = _event_recorder()
    run = _train(make_config(), plugins=load_plugins(strict=True, extra=[(recorder, "recorder")]))
    kinds = [e.kind for e in events]
    phases = [e.phase for e in events if e.kind == "phase"]
    assert phases == ["config", "data", "model", "train", "save"]
    assert kinds[-1] == "finished" and "step" in kinds
    steps = [e for e in events if e.kind == "step" and "loss" in e.metrics]
    assert [e.step for e in steps] == [1, 2] and all(e.max_steps == 2 for e in steps)
    assert all(e.run_dir == str(run) for e in events)
    assert steps[-1].metrics["tokens_per_sec"] > 0 and "eta_s" in steps[-1].metrics
    assert not list(run.glob("checkpoint-*")), "no checkpoint at the last step unless save_steps asks for one"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2]


def _cancel_at(step: int) -> types.ModuleType:
    """A logger whose callback asks the run to cancel (as `ft-core cancel` does) when ``step`` begins."""
    from transformers import TrainerCallback

    class Canceller(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == step - 1:
                assert main(["cancel", args.output_dir]) == 0

    class CancelLogger(TrainingLogger):
        def callback(self, options, run_dir):
            return Canceller()

    module = types.ModuleType("cancel_plugin")

    @hookimpl
    def ft_register_loggers(register):
        register("canceller", CancelLogger())

    module.ft_register_loggers = ft_register_loggers
    return module


def test_cancel_keeps_a_checkpoint_and_the_run_resumes_to_the_end(make_config, tmp_path):
    recorder, events = _event_recorder()
    plugins = load_plugins(strict=True, extra=[(_cancel_at(2), "cancel-test"), (recorder, "recorder")])
    path = make_config(training={"max_steps": 4, "save_steps": 100}, loggers=["canceller"])
    with pytest.raises(RunCancelled, match="cancelled at step 2"):
        _train(path, plugins=plugins)
    run = tmp_path / "run"
    manifest = _manifest(run)
    assert manifest["status"] == "cancelled" and "cancelled at step 2" in manifest["error"]
    assert (run / "checkpoint-2" / "trainer_state.json").is_file()
    assert (run / "checkpoint-2" / "ft_core_progress.json").is_file()
    assert events[-1].kind == "cancelled"
    assert not (run / "model").exists()

    resumed = _train(path, ["loggers=[]"])
    manifest = _manifest(resumed)
    assert manifest["status"] == "completed" and manifest["resumed_from"].endswith("checkpoint-2")
    metrics = manifest["metrics"]
    assert metrics["train_runtime"] > metrics["session_train_runtime"]  # both sessions count
    logged = [
        r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r
    ]
    assert len(logged) == 4
    assert metrics["train_loss"] == pytest.approx(sum(logged) / 4, rel=1e-4)


def test_the_run_folder_config_resumes_even_when_started_with_overwrite(make_config, tmp_path):
    path = make_config(training={"max_steps": 2, "overwrite_output_dir": True})
    run = _train(path)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert "overwrite_output_dir" not in saved["training"]
    with pytest.raises(FtCoreError, match="already holds a finished run"):
        _train(run / "config.yaml")  # not silently restarted from step 0


def test_cancel_refuses_a_folder_that_is_not_running(make_config, capsys):
    run = _train(make_config())
    assert main(["cancel", str(run)]) == 2
    assert "not running (status 'completed')" in capsys.readouterr().err


def test_parallel_preprocessing_gives_the_rows_of_one_process(tmp_path, tiny_tokenizer):
    from ft_core.api import Conversation, Message
    from ft_core.engine.data.prepare import preprocess
    from ft_core.testing import make_encoder
    from ft_core_sft.stage import SftStage

    samples = [
        Conversation([Message("user", f"question {i} " * (i % 7 + 1)), Message("assistant", f"answer {i}")])
        for i in range(1200)
    ]
    encoder = make_encoder(tiny_tokenizer, cutoff_len=48)
    single = preprocess(SftStage(), None, encoder, samples, workers=1)
    parallel = preprocess(SftStage(), None, encoder, samples, workers=2)
    assert single.num_rows == 1200  # cut turn by turn, every row keeps the start of its answer
    assert max(len(ids) for ids in single.column("input_ids").to_pylist()) == 48
    assert parallel.num_rows == single.num_rows
    assert parallel.to_pylist() == single.to_pylist()


def test_prepare_command_caches_what_the_run_reuses(make_config, capsys, tmp_path):
    path = make_config(data={"preprocessing_workers": 1})
    assert main(["prepare", str(path)]) == 0
    out = capsys.readouterr().out
    assert "train: 60 rows" in out and "tokens" in out and "samples/s" in out
    assert not (tmp_path / "run").exists(), "prepare loads no model and writes no run folder"
    assert main(["prepare", str(path)]) == 0
    assert "(cache)" in capsys.readouterr().out


def test_a_stop_word_the_tokenizer_splits_stops_the_run(make_config, tmp_path):
    from ft_core.api import ChatTemplate
    from ft_core.testing.tiny import CHATML_JINJA

    module = types.ModuleType("gemma_like")

    @hookimpl
    def ft_register_chat_templates(register):
        register("chatml-eot", ChatTemplate(jinja=CHATML_JINJA, stop_words=("<end_of_turn>",)))

    module.ft_register_chat_templates = ft_register_chat_templates
    plugins = load_plugins(strict=True, extra=[(module, "gemma-like")])
    with pytest.raises(TemplateMismatchError, match=r"'<end_of_turn>'.*splits it into \d+ tokens"):
        _train(make_config(template={"name": "chatml-eot"}), plugins=plugins)
    assert _manifest(tmp_path / "run")["status"] == "failed"


@pytest.mark.parametrize(
    ("use_cpu", "cuda", "expected"), [(True, True, False), (None, False, False), (None, True, True)]
)
def test_a_run_uses_the_gpu_when_there_is_one_and_cpu_is_not_asked_for(
    make_config, tmp_path, monkeypatch, use_cpu, cuda, expected
):
    import torch

    from ft_core.engine.training.arguments import uses_cpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    plugins = load_plugins()
    config = load_and_validate(str(make_config(training={"use_cpu": use_cpu})), [], plugins)
    assert (not uses_cpu(config.training)) is expected  # what the plan's device decision follows


def test_the_test_kit_runs_a_config_in_process_with_the_plugin_under_test(make_config):
    from ft_core.testing import run_config

    recorder, events = _event_recorder()
    run = run_config(make_config(), recorder, overrides=["training.max_steps=1"])
    assert _manifest(run)["status"] == "completed"
    assert [e.step for e in events if e.kind == "step" and "loss" in e.metrics] == [1]


def test_a_signal_before_training_stops_at_once_as_cancelled(make_config, tmp_path):
    import os
    import signal

    module = types.ModuleType("interrupt_while_loading")

    @hookimpl
    def ft_adjust_model_config(model_config, run, role):
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. `kill` while the model loads

    module.ft_adjust_model_config = ft_adjust_model_config
    module.ft_activate_by_default = hookimpl(lambda config: "interrupts every run")
    with pytest.raises(RunCancelled, match="before training started"):
        _train(make_config(), plugins=load_plugins(strict=True, extra=[(module, "interrupter")]))
    assert _manifest(tmp_path / "run")["status"] == "cancelled"
    assert not list((tmp_path / "run").glob("checkpoint-*"))


def test_the_data_cache_follows_the_preprocessing_code(tmp_path):
    from ft_core.engine.data.prepare import code_digest

    package = tmp_path / "my_stage_pkg"
    package.mkdir()
    (package / "stage.py").write_text("class Stage:\n    pass\n")
    import importlib.util
    import sys

    def load() -> type:
        spec = importlib.util.spec_from_file_location("my_stage_pkg.stage", package / "stage.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module.Stage

    before = code_digest(load())
    assert code_digest(load()) == before
    (package / "stage.py").write_text("class Stage:\n    drop_half = True\n")
    assert code_digest(load()) != before, "an edited stage must not reuse rows cached by the old code"


def test_a_cutoff_that_leaves_no_row_is_a_clear_error_and_caches_nothing(make_config, capsys, tmp_path):
    # Cut turn by turn (LLaMA-Factory's rule), a long prompt and a long answer share 8 tokens in proportion: the
    # answer's share int(8 * answer / (prompt + answer)) is 0 here, so no row keeps a trained token
    rows = [
        {"instruction": "a very long question " * 30, "output": f"a fairly long answer {i}"} for i in range(3)
    ]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "d.json"}}))
    path = make_config(data={"cutoff_len": 8, "dataset": ["d"], "dataset_dir": str(tmp_path)})
    assert main(["prepare", str(path)]) == 2
    assert "none of the 3 samples gave a row" in capsys.readouterr().err
    cache = tmp_path / "cache"
    assert not cache.exists() or not [p for p in cache.iterdir() if not p.name.startswith(".")]


def test_a_kto_labelled_dataset_is_refused_by_sft(make_config, capsys):
    assert main(["validate", str(make_config(data={"dataset": ["kto_en_demo"]}))]) == 2
    assert "has a kto_tag column" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["no weights", "bad config", "unknown model_type"])
def test_a_broken_model_folder_is_a_clear_error_not_a_traceback(
    make_config, tiny_model_dir, tmp_path, capsys, damage
):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    if damage == "no weights":
        for weights in folder.glob("*.safetensors"):
            weights.unlink()
    elif damage == "bad config":
        (folder / "config.json").write_text("{not json")
    else:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "model_type": "llamax"}))
    assert main(["run", str(make_config(model={"name_or_path": str(folder)}))]) == 2
    err = capsys.readouterr().err
    assert (
        f"cannot load the model weights from '{folder}'" in err
        or f"cannot load the model from '{folder}'" in err
    )
    assert "Traceback" not in err
    assert _manifest(tmp_path / "run")["status"] == "failed"


def test_resuming_into_a_finished_run_or_from_a_non_checkpoint_is_refused(make_config, tmp_path, capsys):
    run = _train(make_config(training={"save_steps": 1}))
    assert main(["run", str(run / "config.yaml"), f"training.resume={run / 'checkpoint-1'}"]) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert _manifest(run)["status"] == "completed", "a refused run leaves the finished one untouched"
    assert main(["validate", str(run / "config.yaml"), f"training.resume={tmp_path}"]) == 2
    assert "is not a checkpoint folder" in capsys.readouterr().err
    assert main(["run", str(run / "config.yaml"), "training.output_dir=/proc/nope/run"]) == 2
    assert "training.output_dir: cannot create /proc/nope/run" in capsys.readouterr().err


def test_cancel_says_so_when_the_running_process_is_gone(make_config, tmp_path, capsys):
    run = _train(make_config())
    manifest = _manifest(run)
    manifest["status"] = "running"  # as a run killed with -9 leaves it
    manifest["process"]["pid"] = 2**22 + 12345  # no such process
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(["cancel", str(run)]) == 2
    assert "is gone (killed?)" in capsys.readouterr().err
    assert not (run / "CANCEL").exists()
