"""Plugin discovery, failure isolation, strict mode, duplicates and name selection (registration checks and name
clashes in detail: test_plugin_registration.py)."""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import pytest

from ft_core.api.components import OptimizerFactory
from ft_core.api.descriptors import ChatTemplate
from ft_core.api.errors import ComponentNotFoundError, PluginError
from ft_core.api.hookspecs import hookimpl
from ft_core.bootstrap import load_plugins


def _module(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def _fake_distribution(root: Path, dist: str, entry_name: str, module: str, source: str) -> None:
    """Install a distribution on ``root`` (dist-info + module), as pip would, for entry-point discovery."""
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[ft_core]\n{entry_name} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("fake_ft_")]:
        del sys.modules[name]


GOOD = """
from ft_core.api.hookspecs import hookimpl
from ft_core.api import ChatTemplate

@hookimpl
def ft_register_chat_templates(register):
    register("good-template", ChatTemplate(jinja="{{ messages[0]['content'] }}"))
"""


def test_entry_point_plugin_is_discovered_with_its_distribution(site):
    _fake_distribution(site, "fake-good", "good", "fake_ft_good", GOOD)
    plugins = load_plugins(strict=False)
    registration = plugins.registration("chat_template", "good-template")
    assert registration.distribution == "fake-good"
    assert registration.version == "1.2.3"
    record = next(r for r in plugins.records if r.name == "good")
    assert record.status == "loaded"
    assert record.registered == {"chat_template": ["good-template"]}


def test_broken_plugin_is_reported_and_the_rest_still_work(site, capsys):
    _fake_distribution(site, "fake-good", "good", "fake_ft_good", GOOD)
    _fake_distribution(site, "fake-broken", "broken", "fake_ft_broken", "import no_such_library_xyz\n")
    plugins = load_plugins(strict=False)
    broken = next(r for r in plugins.records if r.name == "broken")
    assert broken.status == "failed"
    assert "no_such_library_xyz" in broken.error
    assert broken.version == "1.2.3"
    assert "good-template" in plugins.names("chat_template")
    assert "fake-broken" in capsys.readouterr().err


def test_strict_mode_turns_a_broken_plugin_into_an_error(site, monkeypatch):
    _fake_distribution(site, "fake-broken", "broken", "fake_ft_broken", "raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match=r"broken.*fake-broken 1\.2\.3.*boom"):
        load_plugins(strict=True)
    monkeypatch.setenv("FT_CORE_STRICT", "1")
    with pytest.raises(PluginError):
        load_plugins()


def test_a_hook_that_raises_disables_only_that_plugin():
    def explode(register):
        register("half", ChatTemplate(jinja="x"))
        raise ValueError("registration bug")

    plugins = load_plugins(
        strict=False,
        entry_points=False,
        extra=[(_module("bad", ft_register_chat_templates=explode), "bad-dist")],
    )
    record = next(r for r in plugins.records if r.name == "bad")
    assert record.status == "failed" and "registration bug" in record.error
    assert "half" not in plugins.names("chat_template"), (
        "a failed plugin must not leave partial registrations"
    )


def test_duplicate_third_party_names_name_both_and_neither_wins(capsys):
    def one(register):
        register("chatml", ChatTemplate(jinja="a"))

    def two(register):
        register("chatml", ChatTemplate(jinja="b"))

    extra = [
        (_module("p1", ft_register_chat_templates=one), "first-dist"),
        (_module("p2", ft_register_chat_templates=two), "second-dist"),
    ]
    expected = (
        r"chat template 'chatml' is registered by more than one distribution: by first-dist test and by "
        r"second-dist test\. The name alone is ambiguous: select one by its qualified name "
        r"\('first-dist:chatml', 'second-dist:chatml'\) in template\.name"
    )
    with pytest.raises(PluginError, match=expected):
        load_plugins(strict=True, entry_points=False, extra=extra)
    plugins = load_plugins(strict=False, entry_points=False, extra=extra)
    assert "registered by more than one distribution" in capsys.readouterr().err
    assert "chatml" not in plugins.names("chat_template"), "never last-one-wins (nor first-one-wins)"
    with pytest.raises(PluginError, match=expected):
        plugins.get("chat_template", "chatml")
    assert plugins.get("chat_template", "second-dist:chatml").jinja == "b", (
        "each stays selectable by distribution"
    )


def test_wrong_component_type_is_rejected():
    def wrong(register):
        register("adamw", object())

    with pytest.raises(PluginError, match="OptimizerFactory"):
        load_plugins(
            strict=True, entry_points=False, extra=[(_module("w", ft_register_optimizers=wrong), "w")]
        )


def test_unknown_name_lists_available_did_you_mean_and_install_hint():
    class Opt(OptimizerFactory):
        pass

    def register_opt(register):
        register("adamw", Opt())

    plugins = load_plugins(
        entry_points=False, extra=[(_module("o", ft_register_optimizers=register_opt), "opt-dist")]
    )
    with pytest.raises(ComponentNotFoundError) as error:
        plugins.get("optimizer", "adamv")
    message = str(error.value)
    assert "Did you mean 'adamw'?" in message
    assert "adamw (opt-dist)" in message
    with pytest.raises(ComponentNotFoundError, match="install it with pip") as error:
        plugins.get("adapter", "lora")
    assert "failed" not in str(error.value) and "Available: none installed" in str(error.value)


def test_block_and_allow_lists(site, monkeypatch):
    _fake_distribution(site, "fake-good", "good", "fake_ft_good", GOOD)
    monkeypatch.setenv("FT_CORE_PLUGINS_BLOCK", "fake-good")
    plugins = load_plugins(strict=True)
    assert "good-template" not in plugins.names("chat_template")
    assert next(r for r in plugins.records if r.name == "good").status == "blocked"
    monkeypatch.delenv("FT_CORE_PLUGINS_BLOCK")
    monkeypatch.setenv("FT_CORE_PLUGINS_ALLOW", "good")
    plugins = load_plugins(strict=True)
    assert plugins.names("chat_template") == ["good-template"]
    assert "run" in plugins.names("cli_command"), "core built-ins always load"


def test_trace_prints_hook_calls(capsys):
    def register_one(register):
        register("traced", ChatTemplate(jinja="x"))

    load_plugins(
        trace=True,
        entry_points=False,
        extra=[(_module("t", ft_register_chat_templates=register_one), "t-dist")],
    )
    err = capsys.readouterr().err
    assert "ft_register_chat_templates [hook]" in err  # pluggy's own hook-call trace
    assert "t-dist registers chat_template 'traced'" in err


# --------------------------------------------------------------------------- pluggy as pluggy (core v2)
def test_a_misspelled_hook_fails_its_plugin_with_a_did_you_mean():
    def register(register):
        register("x", ChatTemplate(jinja="x"))

    module = _module("typo", ft_register_adaptors=register)
    with pytest.raises(PluginError, match=r"'ft_register_adaptors'\. Did you mean 'ft_register_adapters'"):
        load_plugins(strict=True, entry_points=False, extra=[(module, "typo-dist")])
    plugins = load_plugins(strict=False, entry_points=False, extra=[(module, "typo-dist")])
    assert [r.status for r in plugins.records if r.distribution == "typo-dist"] == ["failed"]


def test_hookimpl_options_work_for_registration_hooks():
    module = types.ModuleType("options_plugin")

    @hookimpl(specname="ft_register_chat_templates")
    def templates_under_another_name(register):
        register("renamed", ChatTemplate(jinja="r"))

    @hookimpl(wrapper=True)
    def ft_register_optimizers(register):
        seen = []

        def recording(name, component):
            seen.append(name)
            register(name, component)

        recording("wrapped-sgd", _Sgd())
        return (yield)

    module.templates_under_another_name = templates_under_another_name
    module.ft_register_optimizers = ft_register_optimizers
    plugins = load_plugins(strict=True, entry_points=False, extra=[(module, "options-dist")])
    assert plugins.registration("chat_template", "renamed").distribution == "options-dist"
    assert plugins.registration("optimizer", "wrapped-sgd").distribution == "options-dist"


class _Sgd(OptimizerFactory):
    pass


def test_a_pip_installed_plugin_given_again_as_extra_loads_once():
    import ft_core_lora

    plugins = load_plugins(strict=True, extra=[(ft_core_lora, "ft-core-lora")])
    assert plugins.registration("adapter", "lora").distribution == "ft-core-lora"
    assert sum(r.distribution == "ft-core-lora" for r in plugins.records) == 1


def test_failed_plugins_are_named_only_for_the_kinds_they_provide():
    def broken(register):
        raise RuntimeError("boom")

    module = _module("broken_templates", ft_register_chat_templates=broken)
    plugins = load_plugins(strict=False, entry_points=False, extra=[(module, "broken-dist")])
    with pytest.raises(ComponentNotFoundError) as error:
        plugins.get("chat_template", "mine")
    assert "broken-dist" in str(error.value)
    with pytest.raises(ComponentNotFoundError) as error:
        plugins.get("optimizer", "mine")
    assert "broken-dist" not in str(error.value)


def test_a_blocked_plugin_is_named_instead_of_an_install_hint():
    plugins = load_plugins(strict=True, block=["ft-core-lora"])
    with pytest.raises(ComponentNotFoundError) as error:
        plugins.get("adapter", "lora")
    message = str(error.value)
    assert "Installed but not loaded" in message and "lora (ft-core-lora)" in message
    assert "install it with pip" not in message


def test_trace_shows_the_traceback_of_a_plugin_that_fails_to_import(site, capsys):
    _fake_distribution(site, "fake-broken", "broken", "fake_ft_broken", "import not_a_module_anywhere\n")
    load_plugins(strict=False, trace=True)
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "not_a_module_anywhere" in err


def test_the_plugins_command_lists_in_strict_mode_then_exits_non_zero(site, capsys, monkeypatch):
    from ft_core.cli import main

    _fake_distribution(site, "fake-broken", "broken", "fake_ft_broken", "raise ImportError('nope')\n")
    monkeypatch.setenv("FT_CORE_STRICT", "1")
    assert main(["plugins"]) == 1
    out = capsys.readouterr().out
    assert "fake-broken" in out and "failed" in out and "ft-core-lora" in out


def test_a_misspelled_block_list_entry_is_warned_about(capsys):
    load_plugins(strict=True, block=["ft-core-lorra"])
    assert (
        "FT_CORE_PLUGINS_BLOCK names 'ft-core-lorra', which is no installed plugin or distribution. Did you mean 'ft-core-lora'?"
        in capsys.readouterr().err
    )
