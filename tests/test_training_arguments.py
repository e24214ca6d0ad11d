"""The training section takes every TrainingArguments field that makes sense for a run; ft-core's own are refused
with the reason; the tables stay in step with the installed transformers."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ft_core.api.config import TrainingSection
from ft_core.api.errors import ConfigError
from ft_core.bootstrap import load_plugins
from ft_core.engine.config.loader import load_config
from ft_core.engine.config.training_arguments import OWNED, PASSTHROUGH, SECTION_KEYS
from ft_core.engine.config.validate import validate
from ft_core.engine.run.runner import load_and_validate, run_training


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(strict=True)


def _validate(path, plugins, overrides=()):
    raw, sources = load_config(path, list(overrides))
    return validate(raw, plugins, sources, str(path))


def test_tables_cover_every_field_of_the_installed_transformers() -> None:
    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    placed = set(SECTION_KEYS) | set(PASSTHROUGH) | set(OWNED)
    assert fields - placed == set(), (
        "TrainingArguments fields with no place: add them to PASSTHROUGH or OWNED"
    )
    # every passthrough / owned name is a real field (section keys may be ft-core's own: resume, precision, ...)
    assert (set(PASSTHROUGH) | set(OWNED)) - fields == set()
    assert not set(PASSTHROUGH) & set(OWNED) and not set(SECTION_KEYS) & set(PASSTHROUGH)


def test_passthrough_fields_are_typed_and_reach_the_trainer_arguments(make_config, plugins, tmp_path) -> None:
    from transformers import TrainingArguments

    from ft_core.engine.training.arguments import training_arguments_kwargs

    path = make_config(
        data={"val_size": 0.25},
        training={
            "save_strategy": "epoch",
            "eval_strategy": "epoch",
            "load_best_model_at_end": True,
            "lr_scheduler_kwargs": {"num_cycles": 0.25},
            "label_smoothing_factor": "0.1",
        },
    )
    config = _validate(path, plugins)
    assert config.training.arguments["label_smoothing_factor"] == 0.1
    kwargs = training_arguments_kwargs(TrainingArguments, config.training, tmp_path, has_eval=True)
    args = TrainingArguments(**kwargs)
    assert args.save_strategy == "epoch" and args.eval_strategy == "epoch" and args.load_best_model_at_end
    assert args.lr_scheduler_kwargs == {"num_cycles": 0.25}


def test_owned_wrong_typed_and_misspelt_fields_are_reported_together(make_config, plugins) -> None:
    path = make_config(
        training={
            "optim": "adamw_8bit",
            "save_strategy": "weekly",
            "eval_stratgy": "steps",
            "report_to": "wandb",
        }
    )
    with pytest.raises(ConfigError) as caught:
        _validate(path, plugins)
    text = str(caught.value)
    assert (
        "training.optim: a TrainingArguments field ft-core sets itself: the optimizer section owns it" in text
    )
    assert "training.report_to:" in text and "loggers section" in text
    assert "training.save_strategy: expected one of 'no' | 'steps' | 'epoch' | 'best', got 'weekly'" in text
    assert "training.eval_stratgy: unknown key" in text and "eval_strategy" in text


def test_best_model_needs_evaluation_data_and_matching_strategies(make_config, plugins) -> None:
    with pytest.raises(ConfigError, match="load_best_model_at_end: needs evaluation data"):
        _validate(make_config(training={"load_best_model_at_end": True}), plugins)
    path = make_config(
        data={"val_size": 0.25}, training={"load_best_model_at_end": True, "save_strategy": "steps"}
    )
    with pytest.raises(ConfigError, match=r"save_strategy \(steps\) must match eval_strategy \(epoch\)"):
        _validate(path, plugins)


def test_a_run_honours_save_strategy_no(make_config) -> None:
    plugins = load_plugins()
    path = make_config(training={"save_strategy": "no", "save_steps": 1, "logging_first_step": True})
    run = run_training(load_and_validate(str(path), [], plugins), plugins)
    assert not list(run.glob("checkpoint-*")), "save_strategy: no still wrote checkpoints"
    assert json.loads((run / "manifest.json").read_text())["status"] == "completed"
    assert (run / "model" / "adapter_config.json").is_file()


def test_section_field_is_not_a_key() -> None:
    assert "arguments" not in SECTION_KEYS
    assert TrainingSection().arguments == {}


@pytest.mark.parametrize(("given", "read"), [("fa2", "flash_attention_2"), ("fa3", "flash_attention_3"),
                                             ("disabled", "eager"), ("sdpa", "sdpa")])  # fmt: skip
def test_llamafactory_flash_attn_values_are_read_as_transformers_names(given: str, read: str) -> None:
    from ft_core.api.config import ModelSection

    assert ModelSection(attn_implementation=given).attn_implementation == read


def test_an_attention_transformers_cannot_load_fails_validation(make_config, plugins) -> None:
    path = make_config(model={"attn_implementation": "flash_attn2"})
    with pytest.raises(
        ConfigError, match=r"unknown attention 'flash_attn2'\. Did you mean 'flash_attention_2'"
    ):
        _validate(path, plugins)
    assert (
        _validate(make_config(model={"attn_implementation": "disabled"}), plugins).model.attn_implementation
        == "eager"
    )


def test_scheduler_kwargs_are_checked_against_the_schedule(make_config, plugins) -> None:
    import inspect

    from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION

    from ft_core.engine.config.training_arguments import SCHEDULER_KWARGS

    fixed = {"optimizer", "num_warmup_steps", "num_training_steps", "last_epoch"}
    for name, takes in SCHEDULER_KWARGS.items():
        parameters = inspect.signature(TYPE_TO_SCHEDULER_FUNCTION[name]).parameters
        expected = None if "kwargs" in parameters else tuple(p for p in parameters if p not in fixed)
        assert takes == expected, name
    path = make_config(training={"lr_scheduler_type": "linear", "lr_scheduler_kwargs": {"num_cycles": 0.5}})
    with pytest.raises(ConfigError, match="num_cycles not taken by lr_scheduler_type linear"):
        _validate(path, plugins)
