"""Every hook of ``ft_core.api.hookspecs`` implemented by a plugin module defined here and checked to be called with
the right arguments, in the documented order, with its documented effect.

The registration hooks register one component of every kind; the lifecycle hooks run through a 2-step LoRA SFT run
on the tiny model (``make_config`` in conftest.py). pluggy's hookimpl options (``specname``, ``tryfirst``,
``trylast``, ``wrapper``) and the did-you-mean for a misspelled hook name are checked too.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from typing import Any

import pytest

from ft_core.api import (
    AdapterMethod,
    ChatTemplate,
    CliCommand,
    ConfigError,
    ConfigSection,
    DatasetFormat,
    InferenceEngine,
    ModelFamily,
    ModelPatch,
    OptimizerFactory,
    PluginError,
    Quantizer,
    RunConfig,
    RunContext,
    RunEvent,
    TrainingLogger,
    TrainingStage,
    hookimpl,
)
from ft_core.api.kinds import KINDS
from ft_core.bootstrap import load_plugins
from ft_core.engine.run.runner import load_and_validate, run_training

#: ``ft_adjust_model_config`` sets this; the loaded model must carry it.
ADJUSTED_EPS = 0.00123
#: ``ft_adjust_parameter_groups`` gives every group this learning rate.
GROUP_LR = 0.0123


@dataclass(frozen=True)
class HookTestOptions:
    """The ``hooktest`` config section the recording plugin declares."""

    #: ``ft_adjust_training_arguments`` sets ``logging_steps`` to this.
    logging_steps: int = 2
    #: ``ft_validate_config`` reports a problem when this is true.
    refuse: bool = False


def _module(name: str, functions: dict[str, Any]) -> types.ModuleType:
    module = types.ModuleType(name)
    for attribute, function in functions.items():
        setattr(module, attribute, function)
    return module


# ------------------------------------------------------------------------------------------ registration hooks
def _registering_plugin() -> types.ModuleType:
    """One component of every kind, each through its own registration hook."""

    @hookimpl
    def ft_register_model_families(register):
        register("hooktest", ModelFamily(model_types=("hooktest",)))

    @hookimpl
    def ft_register_chat_templates(register):
        register("hooktest", ChatTemplate(jinja="{{ messages[0]['content'] }}"))

    @hookimpl
    def ft_register_quantizers(register):
        register("hooktest", Quantizer())

    @hookimpl
    def ft_register_adapters(register):
        register("hooktest", AdapterMethod())

    @hookimpl
    def ft_register_optimizers(register):
        register("hooktest", OptimizerFactory())

    @hookimpl
    def ft_register_stages(register):
        register("hooktest", TrainingStage())

    @hookimpl
    def ft_register_loggers(register):
        register("hooktest", TrainingLogger())

    @hookimpl
    def ft_register_dataset_formats(register):
        register("hooktest", DatasetFormat())

    @hookimpl
    def ft_register_model_patches(register):
        register("hooktest", ModelPatch())

    @hookimpl
    def ft_register_inference_engines(register):
        register("hooktest", InferenceEngine())

    @hookimpl
    def ft_register_cli_commands(register):
        class HookTestCommand(CliCommand):
            help = "a command registered by the hooks test"

            def run(self, args):
                return 0

        register("hooktest", HookTestCommand())

    @hookimpl
    def ft_register_config_sections(register):
        register("hooktest", ConfigSection(schema=HookTestOptions))

    return _module("hooks_test_registering", dict(locals()))


def test_every_registration_hook_registers_its_kind():
    plugins = load_plugins(strict=True, entry_points=False, extra=[(_registering_plugin(), "hooks-test")])
    record = next(r for r in plugins.records if r.distribution == "hooks-test")
    assert record.status == "loaded"
    assert set(record.hooks) == {kind.hook for kind in KINDS}
    assert set(record.registered) == {kind.key for kind in KINDS}, "a kind is not exercised by this test"
    for kind in KINDS:
        registration = plugins.registration(kind.key, "hooktest")
        assert registration.distribution == "hooks-test", kind.key
        assert isinstance(registration.component, kind.base), kind.key


def test_a_registered_cli_command_is_a_sub_command():
    from ft_core.cli import build_parser

    plugins = load_plugins(strict=True, entry_points=False, extra=[(_registering_plugin(), "hooks-test")])
    args = build_parser(plugins).parse_args(["hooktest"])
    assert args._command is plugins.get("cli_command", "hooktest")
    assert args._command.run(args) == 0


# ------------------------------------------------------------------------------------------- lifecycle hooks
def _recording_plugin(calls: list[tuple[str, dict[str, Any]]]) -> types.ModuleType:
    """Implements every lifecycle hook; appends ``(hook, facts)`` to ``calls`` and has a visible effect."""

    @hookimpl
    def ft_register_config_sections(register):
        register("hooktest", ConfigSection(schema=HookTestOptions, description="lifecycle hooks test"))

    @hookimpl
    def ft_validate_config(config):
        options = config.section("hooktest")
        calls.append(("ft_validate_config", {"config": config, "options": options}))
        return ["hooktest.refuse: the hooks test refuses this config"] if options.refuse else None

    @hookimpl
    def ft_adjust_model_config(model_config, run, role):
        calls.append(("ft_adjust_model_config", {"run": run, "role": role, "eps": model_config.rms_norm_eps}))
        model_config.rms_norm_eps = ADJUSTED_EPS

    @hookimpl
    def ft_load_model(run, role, model_config, load_kwargs):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            run.config.model.name_or_path, config=model_config, **load_kwargs
        )
        model.loaded_by_hooks_test = True
        calls.append(
            (
                "ft_load_model",
                {
                    "run": run,
                    "role": role,
                    "eps": model_config.rms_norm_eps,
                    "kwargs": dict(load_kwargs),
                    "model": model,
                },
            )
        )
        return model

    @hookimpl
    def ft_patch_model(model, run, role):
        calls.append(
            (
                "ft_patch_model",
                {"run": run, "role": role, "model": model, "has_adapter": hasattr(model, "peft_config")},
            )
        )
        model.patched_by_hooks_test = True

    @hookimpl
    def ft_model_ready(model, run, role):
        calls.append(
            (
                "ft_model_ready",
                {
                    "run": run,
                    "role": role,
                    "model": model,
                    "has_adapter": hasattr(model, "peft_config"),
                    "patched": getattr(model, "patched_by_hooks_test", False),
                    "loaded": getattr(model, "loaded_by_hooks_test", False),
                    "eps": model.config.rms_norm_eps,
                    "training": model.training,
                },
            )
        )

    @hookimpl
    def ft_adjust_training_arguments(arguments, run):
        calls.append(
            (
                "ft_adjust_training_arguments",
                {
                    "run": run,
                    "logging_steps": arguments["logging_steps"],
                    "output_dir": arguments["output_dir"],
                },
            )
        )
        arguments["logging_steps"] = run.config.section("hooktest").logging_steps

    @hookimpl
    def ft_adjust_parameter_groups(groups, model, run):
        calls.append(
            ("ft_adjust_parameter_groups", {"run": run, "model": model, "groups": [dict(g) for g in groups]})
        )
        for group in groups:
            group["lr"] = GROUP_LR

    @hookimpl
    def ft_trainer_callbacks(run):
        from transformers import TrainerCallback

        class CountSteps(TrainerCallback):
            steps = 0

            def on_step_end(self, args, state, control, **kwargs):
                CountSteps.steps += 1

        callback = CountSteps()
        calls.append(("ft_trainer_callbacks", {"run": run, "callback": callback}))
        return [callback]

    @hookimpl
    def ft_before_train(trainer, run):
        calls.append(
            (
                "ft_before_train",
                {
                    "run": run,
                    "trainer": trainer,
                    "step": trainer.state.global_step,
                    "logging_steps": trainer.args.logging_steps,
                    "callbacks": list(trainer.callback_handler.callbacks),
                },
            )
        )

    @hookimpl
    def ft_after_train(trainer, run, metrics):
        calls.append(
            (
                "ft_after_train",
                {
                    "run": run,
                    "trainer": trainer,
                    "step": trainer.state.global_step,
                    "metrics": dict(metrics),
                    "initial_lrs": [g["initial_lr"] for g in trainer.optimizer.param_groups],
                    "artefact": (run.run_dir / "model" / "adapter_config.json").is_file(),
                },
            )
        )
        metrics["hooks_test_metric"] = 42.0

    @hookimpl
    def ft_run_event(event):
        calls.append(("ft_run_event", {"event": event}))

    return _module("hooks_test_recording", dict(locals()))


def _options_plugin(order: list[Any]) -> types.ModuleType:
    """pluggy's hookimpl options: two implementations of one hook under other names (``specname``), ordered with
    ``tryfirst`` / ``trylast``, and a new-style ``wrapper`` around the firstresult hook ``ft_load_model``."""

    @hookimpl(specname="ft_adjust_training_arguments", tryfirst=True)
    def arguments_first(arguments, run):
        order.append(("tryfirst", arguments["logging_steps"]))
        arguments["logging_steps"] = 7  # the recording plugin runs after this one and sets its own value

    @hookimpl(specname="ft_adjust_training_arguments", trylast=True)
    def arguments_last(arguments, run):
        order.append(("trylast", arguments["logging_steps"]))

    @hookimpl(wrapper=True)
    def ft_load_model(run, role, model_config, load_kwargs):
        order.append(("wrapper before", role))
        model = yield
        order.append(("wrapper after", getattr(model, "loaded_by_hooks_test", False)))
        return model

    @hookimpl
    def ft_activate_by_default(config):
        return "the hookimpl options test acts in every run"

    return _module("hooks_test_options", dict(locals()))


@pytest.fixture(scope="module")
def hooked_run(tmp_path_factory, tiny_model_dir_for_module):
    """One 2-step LoRA SFT run with the recording and the options plugins; returns what they saw."""
    import yaml

    tmp = tmp_path_factory.mktemp("hooked-run")
    config = {
        "model": {"name_or_path": tiny_model_dir_for_module},
        "data": {"dataset": ["identity"], "cutoff_len": 64, "cache_dir": str(tmp / "cache")},
        "adapter": {"method": "lora", "rank": 4, "alpha": 8},
        "training": {
            "output_dir": str(tmp / "run"),
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "learning_rate": 1e-3,
            "logging_steps": 1,
            "save_steps": 100,
            "use_cpu": True,
            "plot_loss": False,
        },
        "hooktest": {"logging_steps": 2},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    calls: list[tuple[str, dict[str, Any]]] = []
    order: list[Any] = []
    plugins = load_plugins(
        strict=True,
        extra=[(_recording_plugin(calls), "hooks-recorder"), (_options_plugin(order), "hooks-options")],
    )
    run_config = load_and_validate(str(path), [], plugins)
    run_dir = run_training(run_config, plugins)
    return types.SimpleNamespace(calls=calls, order=order, run_dir=run_dir, config=run_config)


@pytest.fixture(scope="module")
def tiny_model_dir_for_module(tmp_path_factory):
    from ft_core.testing.tiny import save_tiny_model_dir

    return save_tiny_model_dir(str(tmp_path_factory.mktemp("tiny-model")))


def _only(calls, hook: str) -> dict[str, Any]:
    found = [facts for name, facts in calls if name == hook]
    assert len(found) == 1, f"{hook} was called {len(found)} times"
    return found[0]


def _events(calls) -> list[RunEvent]:
    return [facts["event"] for name, facts in calls if name == "ft_run_event"]


def test_hooks_run_in_the_documented_order(hooked_run):
    sequence = []
    for name, facts in hooked_run.calls:
        if name == "ft_run_event":
            event = facts["event"]
            if event.kind == "phase":
                sequence.append(f"phase {event.phase}")
            elif event.kind == "finished":
                sequence.append("finished")
        else:
            sequence.append(name)
    assert sequence == [
        "ft_validate_config",
        "phase config",
        "phase data",
        "phase model",
        "ft_adjust_model_config",
        "ft_load_model",
        "ft_patch_model",
        "ft_model_ready",
        "ft_adjust_training_arguments",
        "ft_trainer_callbacks",
        "ft_before_train",
        "phase train",
        "ft_adjust_parameter_groups",  # the trainer builds its optimizer when training starts
        "phase save",
        "ft_after_train",
        "finished",
    ]


def test_every_hook_gets_the_run_and_the_policy_role(hooked_run):
    runs = [facts["run"] for _, facts in hooked_run.calls if "run" in facts]
    assert len(runs) == 9
    assert all(run is runs[0] for run in runs), "every hook of one run gets the same RunContext"
    run = runs[0]
    assert isinstance(run, RunContext)
    assert run.config is hooked_run.config
    assert run.run_dir == hooked_run.run_dir
    assert run.process.is_main_process and run.process.world_size == 1
    assert run.tokenizer is not None and run.template is not None and run.template.name == "auto"
    roles = [facts["role"] for _, facts in hooked_run.calls if "role" in facts]
    assert roles == ["policy"] * 4


def test_validate_config_gets_the_typed_config_with_plugin_sections(hooked_run):
    facts = _only(hooked_run.calls, "ft_validate_config")
    assert isinstance(facts["config"], RunConfig)
    assert facts["config"].stage.name == "sft" and facts["config"].adapter.name == "lora"
    assert facts["options"] == HookTestOptions(logging_steps=2)


def test_validate_config_problems_of_every_plugin_are_reported_together(make_config):
    @hookimpl
    def ft_validate_config(config):
        return ["training.seed: the second plugin refuses this seed too"]

    @hookimpl
    def ft_activate_by_default(config):
        return "validates every run"

    second = _module(
        "hooks_test_second_validator",
        {"ft_validate_config": ft_validate_config, "ft_activate_by_default": ft_activate_by_default},
    )
    plugins = load_plugins(
        strict=True, extra=[(_recording_plugin([]), "hooks-recorder"), (second, "hooks-second")]
    )
    with pytest.raises(ConfigError) as error:
        load_and_validate(str(make_config(hooktest={"refuse": True})), [], plugins)
    problems = error.value.problems
    assert any(p.startswith("hooktest.refuse: the hooks test refuses this config") for p in problems)
    assert any(p.startswith("training.seed: the second plugin refuses this seed too") for p in problems)
    assert "hooktest.refuse: the hooks test refuses this config" in str(error.value)


def test_the_config_section_is_validated_against_its_schema(make_config):
    plugins = load_plugins(strict=True, extra=[(_recording_plugin([]), "hooks-recorder")])
    with pytest.raises(
        ConfigError, match=r"hooktest\.loging_steps: unknown key\. Did you mean 'logging_steps'\?"
    ):
        load_and_validate(str(make_config(hooktest={"loging_steps": 3})), [], plugins)
    config = load_and_validate(str(make_config()), [], plugins)
    assert config.section("hooktest") == HookTestOptions()  # the schema's defaults when the config omits it


def test_model_hooks_change_and_replace_the_model(hooked_run):
    calls = hooked_run.calls
    adjust = _only(calls, "ft_adjust_model_config")
    load = _only(calls, "ft_load_model")
    patch = _only(calls, "ft_patch_model")
    ready = _only(calls, "ft_model_ready")
    assert adjust["eps"] != ADJUSTED_EPS
    assert load["eps"] == ADJUSTED_EPS, "ft_load_model gets the config as ft_adjust_model_config left it"
    assert {"dtype", "trust_remote_code"} <= set(load["kwargs"])
    assert patch["model"] is load["model"], "the model ft_load_model returned is the one used"
    assert not patch["has_adapter"], "ft_patch_model runs before the adapter"
    assert ready["has_adapter"] and ready["loaded"] and ready["patched"] and ready["training"]
    assert ready["eps"] == ADJUSTED_EPS
    trainer = _only(calls, "ft_before_train")["trainer"]
    assert trainer.model is ready["model"], "the trainer trains the model ft_model_ready saw"


def test_training_arguments_hook_changes_what_the_trainer_uses(hooked_run):
    arguments = _only(hooked_run.calls, "ft_adjust_training_arguments")
    assert arguments["logging_steps"] == 7  # as the tryfirst implementation of the options plugin left it
    assert arguments["output_dir"] == str(hooked_run.run_dir)
    assert _only(hooked_run.calls, "ft_before_train")["logging_steps"] == 2
    logged = [e.step for e in _events(hooked_run.calls) if e.kind == "step" and "loss" in e.metrics]
    assert logged == [2], "logging_steps: 2 logs only the second of two steps"
    records = [json.loads(line) for line in (hooked_run.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2]


def test_parameter_groups_hook_sets_the_learning_rate_the_optimizer_uses(hooked_run):
    facts = _only(hooked_run.calls, "ft_adjust_parameter_groups")
    model = _only(hooked_run.calls, "ft_model_ready")["model"]
    assert facts["model"] is model
    groups = facts["groups"]
    assert groups and all("params" in g and "weight_decay" in g for g in groups)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g["params"]} == trainable
    after = _only(hooked_run.calls, "ft_after_train")
    assert after["initial_lrs"] == [GROUP_LR] * len(groups)
    step = next(e for e in _events(hooked_run.calls) if e.kind == "step" and "loss" in e.metrics)
    # cosine schedule over 2 steps without warm-up: half the group's rate after the first step
    assert step.metrics["learning_rate"] == pytest.approx(GROUP_LR / 2)


def test_trainer_callbacks_hook_adds_a_callback_that_sees_every_step(hooked_run):
    callback = _only(hooked_run.calls, "ft_trainer_callbacks")["callback"]
    assert callback in _only(hooked_run.calls, "ft_before_train")["callbacks"]
    assert type(callback).steps == 2


def test_before_and_after_train_see_the_trainer_and_extend_the_metrics(hooked_run):
    before = _only(hooked_run.calls, "ft_before_train")
    after = _only(hooked_run.calls, "ft_after_train")
    assert before["trainer"] is after["trainer"]
    assert before["step"] == 0 and after["step"] == 2
    assert after["artefact"], "ft_after_train runs once the artefact is saved"
    assert "train_loss" in after["metrics"]
    results = json.loads((hooked_run.run_dir / "train_results.json").read_text())
    assert results["hooks_test_metric"] == 42.0
    manifest = json.loads((hooked_run.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["metrics"]["hooks_test_metric"] == 42.0


def test_run_events_report_phases_steps_and_the_end(hooked_run):
    events = _events(hooked_run.calls)
    assert all(isinstance(e, RunEvent) and e.run_dir == str(hooked_run.run_dir) for e in events)
    assert [e.phase for e in events if e.kind == "phase"] == ["config", "data", "model", "train", "save"]
    steps = [e for e in events if e.kind == "step" and "loss" in e.metrics]
    assert [(e.step, e.max_steps) for e in steps] == [(2, 2)]
    assert {"loss", "learning_rate", "grad_norm"} <= set(steps[0].metrics)
    assert events[-1].kind == "finished"
    assert events[-1].metrics["hooks_test_metric"] == 42.0
    assert not [e for e in events if e.kind in ("failed", "cancelled")]


def test_specname_tryfirst_trylast_and_wrapper_hookimpls_work(hooked_run):
    assert hooked_run.order == [
        ("wrapper before", "policy"),
        ("wrapper after", True),  # the wrapper sees the model the recording plugin's ft_load_model returned
        ("tryfirst", 1),  # logging_steps as the config gives it
        ("trylast", 2),  # after the recording plugin set it from its config section
    ]


def test_a_misspelled_hook_name_fails_its_plugin_with_a_did_you_mean(capsys):
    @hookimpl
    def ft_adjust_training_argument(arguments, run):  # the hook is ft_adjust_training_arguments
        arguments["logging_steps"] = 3

    @hookimpl
    def ft_register_chat_templates(register):
        register("typo-template", ChatTemplate(jinja="{{ messages[0]['content'] }}"))

    def typo_module():
        return _module(
            "hooks_test_typo",
            {
                "ft_adjust_training_argument": ft_adjust_training_argument,
                "ft_register_chat_templates": ft_register_chat_templates,
            },
        )

    with pytest.raises(
        PluginError, match=r"'ft_adjust_training_argument'\. Did you mean 'ft_adjust_training_arguments'\?"
    ):
        load_plugins(strict=True, entry_points=False, extra=[(typo_module(), "typo-dist")])
    plugins = load_plugins(strict=False, entry_points=False, extra=[(typo_module(), "typo-dist")])
    record = next(r for r in plugins.records if r.distribution == "typo-dist")
    assert record.status == "failed"
    assert "Did you mean 'ft_adjust_training_arguments'?" in (record.error or "")
    assert "typo-template" not in plugins.names("chat_template"), "nothing of a failed plugin is kept"
    assert "failed to load" in capsys.readouterr().err
