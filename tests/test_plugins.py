"""Plugin discovery, failure isolation, strict mode, duplicates and name selection."""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import pytest

from ft_core.components import ChatTemplate, OptimizerFactory
from ft_core.errors import ComponentNotFoundError, PluginError
from ft_core.hookspecs import hookimpl
from ft_core.plugins import build_plugins


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
from ft_core.hookspecs import hookimpl
from ft_core.components import ChatTemplate

@hookimpl
def ft_register_chat_templates(register):
    register("good-template", ChatTemplate(jinja="{{ messages[0]['content'] }}"))
"""


def test_entry_point_plugin_is_discovered_with_its_distribution(site):
    _fake_distribution(site, "fake-good", "good", "fake_ft_good", GOOD)
    plugins = build_plugins(strict=False)
    registration = plugins.registration("chat_template", "good-template")
    assert registration.distribution == "fake-good"
    assert registration.version == "1.2.3"
    record = next(r for r in plugins.records if r.name == "good")
    assert record.status == "loaded"
    assert record.registered == {"chat_template": ["good-template"]}


def test_broken_plugin_is_reported_and_the_rest_still_work(site, capsys):
    _fake_distribution(site, "fake-good", "good", "fake_ft_good", GOOD)
    _fake_distribution(site, "fake-broken", "broken", "fake_ft_broken", "import no_such_library_xyz\n")
    plugins = build_plugins(strict=False)
    broken = next(r for r in plugins.records if r.name == "broken")
    assert broken.status == "failed"
    assert "no_such_library_xyz" in broken.error
    assert broken.version == "1.2.3"
    assert "good-template" in plugins.names("chat_template")
    assert "fake-broken" in capsys.readouterr().err


def test_strict_mode_turns_a_broken_plugin_into_an_error(site, monkeypatch):
    _fake_distribution(site, "fake-broken", "broken", "fake_ft_broken", "raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match=r"broken.*fake-broken 1\.2\.3.*boom"):
        build_plugins(strict=True)
    monkeypatch.setenv("FT_CORE_STRICT", "1")
    with pytest.raises(PluginError):
        build_plugins()


def test_a_hook_that_raises_disables_only_that_plugin():
    def explode(register):
        register("half", ChatTemplate(jinja="x"))
        raise ValueError("registration bug")

    plugins = build_plugins(
        strict=False,
        entry_points=False,
        extra=[(_module("bad", ft_register_chat_templates=explode), "bad-dist")],
    )
    record = next(r for r in plugins.records if r.name == "bad")
    assert record.status == "failed" and "registration bug" in record.error
    assert "half" not in plugins.names("chat_template"), (
        "a failed plugin must not leave partial registrations"
    )


def test_duplicate_names_across_distributions_name_both_and_neither_wins(capsys):
    def one(register):
        register("chatml", ChatTemplate(jinja="a"))

    def two(register):
        register("chatml", ChatTemplate(jinja="b"))

    extra = [
        (_module("p1", ft_register_chat_templates=one), "first-dist"),
        (_module("p2", ft_register_chat_templates=two), "second-dist"),
    ]
    expected = r"chat template 'chatml' is registered twice: by first-dist test and by second-dist test"
    with pytest.raises(PluginError, match=expected):
        build_plugins(strict=True, entry_points=False, extra=extra)
    plugins = build_plugins(strict=False, entry_points=False, extra=extra)
    assert "registered twice" in capsys.readouterr().err
    assert "chatml" not in plugins.names("chat_template"), "never last-one-wins (nor first-one-wins)"
    with pytest.raises(PluginError, match=expected):
        plugins.get("chat_template", "chatml")


def test_wrong_component_type_is_rejected():
    def wrong(register):
        register("adamw", object())

    with pytest.raises(PluginError, match="OptimizerFactory"):
        build_plugins(
            strict=True, entry_points=False, extra=[(_module("w", ft_register_optimizers=wrong), "w")]
        )


def test_unknown_name_lists_available_did_you_mean_and_install_hint():
    class Opt(OptimizerFactory):
        pass

    def register_opt(register):
        register("adamw", Opt())

    plugins = build_plugins(
        entry_points=False, extra=[(_module("o", ft_register_optimizers=register_opt), "opt-dist")]
    )
    with pytest.raises(ComponentNotFoundError) as error:
        plugins.get("optimizer", "adamv")
    message = str(error.value)
    assert "Did you mean 'adamw'?" in message
    assert "adamw (opt-dist)" in message
    with pytest.raises(ComponentNotFoundError, match="pip install ft-core-lora"):
        plugins.get("adapter", "lora")


def test_block_and_allow_lists(site, monkeypatch):
    _fake_distribution(site, "fake-good", "good", "fake_ft_good", GOOD)
    monkeypatch.setenv("FT_CORE_PLUGINS_BLOCK", "fake-good")
    plugins = build_plugins(strict=True)
    assert "good-template" not in plugins.names("chat_template")
    assert next(r for r in plugins.records if r.name == "good").status == "blocked"
    monkeypatch.delenv("FT_CORE_PLUGINS_BLOCK")
    monkeypatch.setenv("FT_CORE_PLUGINS_ALLOW", "good")
    plugins = build_plugins(strict=True)
    assert plugins.names("chat_template") == ["good-template"]
    assert "run" in plugins.names("cli_command"), "core built-ins always load"


def test_trace_prints_hook_calls(capsys):
    def register_one(register):
        register("traced", ChatTemplate(jinja="x"))

    build_plugins(
        trace=True,
        entry_points=False,
        extra=[(_module("t", ft_register_chat_templates=register_one), "t-dist")],
    )
    err = capsys.readouterr().err
    assert "t-dist:t -> ft_register_chat_templates()" in err
    assert "register chat_template 'traced'" in err
