"""The run plan: what `ft-core validate` and `ft-core plan` read before any weights load, the active plugins and
their hooks, and what a run records in its manifest."""

from __future__ import annotations

import json
import types
from dataclasses import FrozenInstanceError, dataclass

import pytest

from ft_core.api import ConfigError, ConfigSection, hookimpl
from ft_core.bootstrap import load_plugins
from ft_core.cli import main
from ft_core.engine.run.plan import build_plan
from ft_core.engine.run.runner import load_and_validate, run_training


def _broken_dataset(tmp_path) -> str:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "dataset_info.json").write_text(json.dumps({"broken": {"file_name": "rows.json"}}))
    rows = [{"instruction": "hi", "output": "hello"}, {"instruction": "hi", "output": ""}, {"output": "x"}]
    (folder / "rows.json").write_text(json.dumps(rows))
    return str(folder)


def test_validate_reports_bad_rows_and_a_mismatched_template_together(make_config, tmp_path, capsys):
    path = make_config(
        template="llama3", data={"dataset": ["broken"], "dataset_dir": _broken_dataset(tmp_path)}
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "(rule inputs.template)" in err and "does not render like" in err
    assert "(rule inputs.rows)" in err and "row 2: output: empty response" in err and "row 3" in err
    assert "Traceback" not in err


def test_validate_refuses_tool_rows_for_a_template_without_a_tool_format(make_config, capsys):
    path = make_config(data={"dataset": ["toolcall_demo"]})  # the tiny tokenizer's ChatML has no tool format
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        "(rule inputs.tool_rows)" in err and "has no tool format" in err and "toolcall_demo.json row 1" in err
    )


def test_every_problem_names_its_rule(make_config):
    with pytest.raises(ConfigError) as error:
        load_and_validate(
            str(make_config(data={"cutoff_len": 4}, plugins={"disable": ["no-such"]})), [], load_plugins()
        )
    problems = error.value.problems
    assert any("data.cutoff_len: must be at least 8" in p and "(rule data.ranges)" in p for p in problems)
    assert any("'no-such' is no installed plugin" in p and "(rule plugins.lists)" in p for p in problems)


def test_disabling_the_plugin_of_a_selected_component_is_an_error(make_config):
    path = make_config(plugins={"disable": ["ft-core-lora"]})
    with pytest.raises(
        ConfigError, match=r"adapter selects 'lora' of ft-core-lora, which the config disables"
    ):
        load_and_validate(str(path), [], load_plugins())


def test_the_plan_is_frozen_and_records_its_decisions_with_reasons(make_config):
    plugins = load_plugins()
    plan, prepared = build_plan(load_and_validate(str(make_config()), [], plugins), plugins)
    assert prepared is not None and plan.data is not None and plan.data.train_rows == prepared.train.rows
    assert len(plan.row_lengths) == prepared.train.rows and plan.data.longest_row == max(plan.row_lengths)
    with pytest.raises(FrozenInstanceError):
        plan.model_path = "elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError):
        plan.decisions["device"] = None  # type: ignore[index]
    assert plan.decision("device").value == "cpu x 1"
    assert plan.decision("gradient_checkpointing").reason == "auto on the CPU"
    assert plan.decision("packing").value == "off"
    active = {p.distribution: p.reason for p in plan.active_plugins}
    assert active["ft-core"] == "ft-core built-in"
    assert (
        active["ft-core-lora"] == "selected adapter: lora" and active["ft-core-sft"] == "selected stage: sft"
    )
    assert "ft-core-neftune" not in active  # installed, but nothing selects it


def test_ft_core_plan_prints_the_plan_without_loading_weights(make_config, capsys, monkeypatch):
    import transformers

    def no_weights(*args, **kwargs):
        raise AssertionError("plan loaded weights")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    assert main(["plan", str(make_config())]) == 0
    out = capsys.readouterr().out
    assert "active plugins:" in out and "ft-core-lora" in out and "selected adapter: lora" in out
    assert "gradient_checkpointing: " in out and "data: " in out and "training rows" in out
    assert main(["plan", str(make_config()), "--json", "--no-data"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {"model", "model_family", "decisions", "active_plugins", "template"} <= set(plan)
    assert "data" not in plan


def _always_on_recorder(calls: list[str]) -> types.ModuleType:
    module = types.ModuleType("always_on_recorder")

    @hookimpl
    def ft_activate_by_default(config):
        return "records every run"

    @hookimpl
    def ft_model_ready(model, run, role):
        calls.append(role)
        run.record("recorder.role", role, "seen in ft_model_ready")

    module.ft_activate_by_default = ft_activate_by_default
    module.ft_model_ready = ft_model_ready
    return module


@dataclass
class _UnsetOptions:
    level: int = 1


def _hook_recorder(name: str, calls: list[str], with_section: bool) -> types.ModuleType:
    """A plugin recording the roles ``ft_model_ready`` sees; ``with_section``: it also registers a config section
    (which the test configs never set), so the config could select it."""
    module = types.ModuleType(name)

    @hookimpl
    def ft_model_ready(model, run, role):
        calls.append(role)

    module.ft_model_ready = ft_model_ready
    if with_section:

        @hookimpl
        def ft_register_config_sections(register):
            register(name, ConfigSection(schema=_UnsetOptions))

        module.ft_register_config_sections = ft_register_config_sections
    return module


def _unselected_plugin(calls: list[str]) -> types.ModuleType:
    return _hook_recorder("unselected", calls, with_section=True)


def test_only_active_plugins_hooks_act_and_the_manifest_lists_them(make_config):
    on, off = [], []
    plugins = load_plugins(
        strict=True, extra=[(_always_on_recorder(on), "always-on"), (_unselected_plugin(off), "unselected")]
    )
    run_dir = run_training(load_and_validate(str(make_config()), [], plugins), plugins)
    assert on == ["policy"] and off == []
    manifest = json.loads((run_dir / "manifest.json").read_text())
    active = {p["distribution"]: p["reason"] for p in manifest["active_plugins"]}
    assert active["always-on"] == "on by default: records every run"
    assert "unselected" not in active
    recorded = manifest["decisions"]["recorder.role"]
    assert (recorded["value"], recorded["reason"]) == ("policy", "seen in ft_model_ready")
    assert recorded["by"].endswith("test_run_plan")  # code outside any plugin's package: its module
    assert manifest["decisions"]["device"]["value"] == "cpu x 1"


def test_a_hooks_only_plugin_acts_only_when_plugins_enable_names_it(make_config, caplog):
    calls: list[str] = []
    plugins = load_plugins(strict=True, extra=[(_hook_recorder("hooks_only", calls, False), "hooks-only")])
    run_training(load_and_validate(str(make_config()), [], plugins), plugins)
    assert calls == []
    assert "plugin hooks_only (hooks-only) has lifecycle hooks only" in caplog.text
    assert "`plugins: {enable: [hooks_only]}` would" in caplog.text
    run_dir = run_training(
        load_and_validate(
            str(make_config(plugins={"enable": ["hooks-only"]})),
            ["training.overwrite_output_dir=true"],
            plugins,
        ),
        plugins,
    )
    assert calls == ["policy"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    active = {p["distribution"]: p["reason"] for p in manifest["active_plugins"]}
    assert active["hooks-only"] == "enabled in plugins.enable"


def test_a_plugin_both_enabled_and_disabled_is_a_config_error(make_config):
    plugins = load_plugins(strict=True, extra=[(_hook_recorder("hooks_only", [], False), "hooks-only")])
    config = make_config(plugins={"enable": ["hooks-only"], "disable": ["hooks-only"]})
    with pytest.raises(ConfigError, match=r"both enabled and disabled.*\(rule plugins.lists\)"):
        load_and_validate(str(config), [], plugins)


def test_plugins_disable_switches_an_always_on_plugin_off(make_config):
    on: list[str] = []
    plugins = load_plugins(strict=True, extra=[(_always_on_recorder(on), "always-on")])
    config = load_and_validate(str(make_config(plugins={"disable": ["always-on"]})), [], plugins)
    run_dir = run_training(config, plugins)
    assert on == []
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "always-on" not in {p["distribution"] for p in manifest["active_plugins"]}


@pytest.mark.parametrize(("setting", "saved"), [("auto", {"F32"}), (False, {"BF16"})])
def test_upcast_trainable_decides_the_dtype_trainable_weights_update_in(make_config, setting, saved):
    # false is LLaMA-Factory's pure_bf16: bf16 weights train in bf16; auto casts the trainable ones to fp32
    from safetensors import safe_open

    plugins = load_plugins()
    path = make_config(
        adapter={"method": "full"}, training={"precision": "bf16", "upcast_trainable": setting}
    )
    config = load_and_validate(str(path), [], plugins)
    plan, _ = build_plan(config, plugins)
    decision = plan.decision("upcast_trainable")
    assert decision.value is (setting == "auto")
    expected = (
        "auto: trainable half-precision weights update in fp32"
        if setting == "auto"
        else "training.upcast_trainable"
    )
    assert decision.reason == expected
    run_dir = run_training(config, plugins)
    with safe_open(str(run_dir / "model" / "model.safetensors"), "pt") as weights:
        names = weights.keys()  # safe_open is not iterable
        assert {weights.get_slice(name).get_dtype() for name in names} == saved


def test_upcast_trainable_false_is_refused_with_fp16(make_config):
    path = make_config(training={"precision": "fp16", "upcast_trainable": False, "use_cpu": None})
    with pytest.raises(ConfigError, match="upcast_trainable: false with precision: fp16"):
        load_and_validate(str(path), [], load_plugins())
