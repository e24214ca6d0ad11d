"""Registration checks (options schemas) and name clashes between distributions (qualified names)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, Literal

import pytest

from ft_core.api.components import TrainingStage
from ft_core.api.errors import ComponentNotFoundError, PluginError
from ft_core.api.hookspecs import hookimpl
from ft_core.bootstrap import load_plugins
from ft_core.engine.config.typecheck import build
from ft_core.engine.plugins import build_plugins, is_first_party, schema_problems


def _source_module(monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> types.ModuleType:
    """A plugin module written as a third-party author would (``from __future__ import annotations`` included)."""
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)  # typing.get_type_hints looks the module up here
    exec(compile(textwrap.dedent(source), f"<{name}>", "exec"), module.__dict__)
    return module


def _stages(name: str, *stage_names: str) -> types.ModuleType:
    module = types.ModuleType(name)

    class Stage(TrainingStage):
        description = f"the {name} stage"

    def ft_register_stages(register):
        for stage_name in stage_names:
            register(stage_name, Stage())

    module.ft_register_stages = hookimpl(ft_register_stages)
    return module


TYPO = """
from __future__ import annotations
from dataclasses import dataclass
from ft_core.api import OptimizerFactory, hookimpl

@dataclass
class AcmeOptions:
    lr_scale: float = 1.0
    momentum: flaot = 0.9

class AcmeOptimizer(OptimizerFactory):
    options_schema = AcmeOptions

@hookimpl
def ft_register_optimizers(register):
    register("acme-sgd", AcmeOptimizer())
"""


# --------------------------------------------------------------------------- options schemas at registration
def test_a_typod_annotation_fails_its_plugin_naming_plugin_component_schema_and_field(monkeypatch, capsys):
    module = _source_module(monkeypatch, "acme_optim", TYPO)
    plugins = load_plugins(strict=False, entry_points=False, extra=[(module, "acme-optim")])
    record = next(r for r in plugins.records if r.distribution == "acme-optim")
    assert record.status == "failed"
    assert "optimizer 'acme-sgd'" in record.error
    assert "acme_optim.AcmeOptions" in record.error
    assert "field 'momentum': annotation 'flaot' does not resolve (NameError" in record.error
    assert "lr_scale" not in record.error, "only the broken field is named"
    err = capsys.readouterr().err
    assert "plugin 'acme_optim' (acme-optim test) failed to load: optimizer 'acme-sgd'" in err
    assert "acme-sgd" not in plugins.names("optimizer")
    assert "adamw" not in plugins.names("optimizer")  # entry_points=False: nothing else loaded
    assert "run" in plugins.names("cli_command"), "the built-ins keep working"


def test_strict_mode_makes_a_broken_options_schema_an_error(monkeypatch):
    module = _source_module(monkeypatch, "acme_optim", TYPO)
    with pytest.raises(
        PluginError, match=r"'acme_optim' \(acme-optim test\).*'acme-sgd'.*'momentum'.*'flaot'"
    ):
        load_plugins(strict=True, entry_points=False, extra=[(module, "acme-optim")])


@dataclasses.dataclass
class _NoDefault:
    rank: int
    alpha: float = 16.0


@dataclasses.dataclass
class _Inner:
    depth: int


@dataclasses.dataclass
class _Outer:
    inner: _Inner = dataclasses.field(default_factory=lambda: _Inner(1))


class _NotADataclass:
    rank: int = 8


@dataclasses.dataclass
class _Unsupported:
    where: set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class _AllSupported:
    mode: Literal["a", "b"] = "a"
    scales: tuple[float, ...] = (1.0,)
    weights: dict[str, float] = dataclasses.field(default_factory=dict)
    tags: list[str] | None = None
    anything: Any = None


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (_NoDefault, "field 'rank' has no default"),
        (_Outer, "field 'inner': nested options _Inner: field 'depth' has no default"),
        (_NotADataclass, "is not a dataclass"),
        (_Unsupported, "field 'where': set[str] is not an option type ft-core can check"),
    ],
)
def test_options_schema_rules(schema, expected):
    problems = schema_problems(schema)
    assert any(expected in p for p in problems), problems
    stage = type("Picky", (TrainingStage,), {"options_schema": schema})

    def ft_register_stages(register):
        register("picky", stage())

    module = types.ModuleType("picky_plugin")
    module.ft_register_stages = hookimpl(ft_register_stages)
    with pytest.raises(PluginError, match=rf"picky-dist test.*training stage 'picky'.*{schema.__qualname__}"):
        load_plugins(strict=True, entry_points=False, extra=[(module, "picky-dist")])
    with pytest.raises(ComponentNotFoundError, match=r"Plugins that failed to load.*picky-dist"):
        load_plugins(strict=False, entry_points=False, extra=[(module, "picky-dist")]).get("stage", "picky")


def test_supported_option_types_pass_and_build():
    assert schema_problems(_AllSupported) == []
    problems: list[str] = []
    options = build(
        _AllSupported, {"mode": "b", "scales": [1, 2.5], "weights": {"x": 2}, "tags": ["t"]}, "s", problems
    )
    assert problems == []
    assert options == _AllSupported("b", (1.0, 2.5), {"x": 2.0}, ["t"], None)


def test_a_config_section_schema_is_checked_too():
    from ft_core.api.descriptors import ConfigSection

    def ft_register_config_sections(register):
        register("acme", ConfigSection(schema=_NoDefault))

    module = types.ModuleType("acme_section")
    module.ft_register_config_sections = hookimpl(ft_register_config_sections)
    with pytest.raises(PluginError, match=r"config section 'acme'.*_NoDefault.*field 'rank' has no default"):
        load_plugins(strict=True, entry_points=False, extra=[(module, "acme-dist")])


def test_a_plugin_that_swallows_the_refusal_still_fails_and_keeps_nothing():
    def ft_register_stages(register):
        register("fine", TrainingStage())
        with contextlib.suppress(PluginError):
            register("picky", type("P", (TrainingStage,), {"options_schema": _NoDefault})())

    module = types.ModuleType("swallower")
    module.ft_register_stages = hookimpl(ft_register_stages)
    plugins = load_plugins(strict=False, entry_points=False, extra=[(module, "swallow-dist")])
    record = next(r for r in plugins.records if r.distribution == "swallow-dist")
    assert record.status == "failed" and "field 'rank' has no default" in record.error
    assert "fine" not in plugins.names("stage")


def test_valid_plugins_load_next_to_a_broken_one(monkeypatch):
    broken = _source_module(monkeypatch, "acme_optim", TYPO)
    plugins = load_plugins(
        strict=False,
        entry_points=False,
        extra=[(broken, "acme-optim"), (_stages("good", "good"), "good-dist")],
    )
    assert plugins.registration("stage", "good").distribution == "good-dist"


def test_every_schema_of_this_repo_passes_the_registration_checks():
    from ft_core.api.config import CORE_SECTIONS

    plugins = load_plugins(strict=True)  # would raise on any broken schema
    assert not [r for r in plugins.records if r.status == "failed"]
    assert plugins.registration("adapter", "lora").distribution == "ft-core-lora"
    assert {name: schema_problems(schema) for name, schema in CORE_SECTIONS.items()} == {
        name: [] for name in CORE_SECTIONS
    }, "core's own sections follow the rules plugins do"


# --------------------------------------------------------------------------- the config checker never crashes
@dataclasses.dataclass
class _GoodInner:
    depth: int = 1


@dataclasses.dataclass
class _GoodOuter:
    inner: _GoodInner = dataclasses.field(default_factory=_GoodInner)


@dataclasses.dataclass
class _Options:
    rate: float = 0.1
    steps: int = 1
    name: str = "x"
    mode: Literal["fast", "slow"] = "fast"
    flag: bool | Literal["auto"] = "auto"
    layers: list[int] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    nested: _GoodOuter = dataclasses.field(default_factory=_GoodOuter)


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    "data",
    [
        {"rate": "fast", "steps": 1.5, "name": True, "mode": "fastt", "flag": 3},
        {"layers": [1, "two", {"x": 1}], "extra": [1]},
        {"layers": _deep(5000), "rate": _deep(5000), "name": _deep(5000)},
        {"rate": 10**5000, "name": 10**5000, "steps": "١٢"},
        {"ünïcode-ключ": "值", "mode": "慢", "name": "\udc80", 1: "x", None: 2, ("t",): 3},
        {"nested": {"inner": {"depth": "deep", "width": 3}}},
        {"nested": "flat"},
        "not a mapping",
        [1, 2],
    ],
)
def test_build_reports_problems_for_any_input_instead_of_raising(data):
    assert schema_problems(_Options) == []
    problems: list[str] = []
    build(_Options, data, "section", problems)
    assert problems and all(p.startswith("section") for p in problems)
    assert all(len(p) < 2000 for p in problems), "values are shortened in messages"


def test_problems_inside_containers_and_nested_options_carry_their_path():
    problems: list[str] = []
    build(_Options, {"layers": [1, "two"], "nested": {"inner": {"depth": "deep"}}}, "s", problems)
    assert "s.layers[1]: expected an integer, got 'two'" in problems
    assert "s.nested.inner.depth: expected an integer, got 'deep'" in problems


def test_build_reports_a_schema_it_cannot_check_instead_of_raising(monkeypatch):
    module = _source_module(monkeypatch, "acme_optim", TYPO)
    for schema in (module.AcmeOptions, _NoDefault, _NotADataclass, _Unsupported, object()):
        problems: list[str] = []
        assert build(schema, {}, "optimizer", problems) is None  # type: ignore[arg-type]
        assert len(problems) == 1 and problems[0].startswith("optimizer: the options schema"), problems


def test_a_post_init_bug_is_a_problem_not_a_traceback():
    @dataclasses.dataclass
    class Buggy:
        size: int = 1

        def __post_init__(self):
            raise KeyError("oops")

    problems: list[str] = []
    assert build(Buggy, {}, "s", problems) is None
    assert problems == ["s: Buggy rejected these options (KeyError: 'oops')"]


# --------------------------------------------------------------------------- name clashes
def test_first_party_distributions():
    assert is_first_party("ft-core") and is_first_party("ft-core-sft") and is_first_party("FT_Core_Sft")
    assert not is_first_party("ft-template-zephyr") and not is_first_party("acme-stages")
    assert not is_first_party("ft-corex")


@pytest.mark.parametrize("third_party_first", [False, True])
def test_a_third_party_sft_keeps_the_first_party_sft_and_is_selectable_qualified(third_party_first, capsys):
    import ft_core_sft

    extra = [(ft_core_sft, "ft-core-sft"), (_stages("acme_stages", "sft"), "acme-stages")]
    if third_party_first:
        extra.reverse()
    plugins = build_plugins(
        strict=True, entry_points=False, extra=extra
    )  # a warning, not an error, in strict mode
    assert plugins.registration("stage", "sft").distribution == "ft-core-sft"
    assert plugins.get("stage", "sft") is plugins.get("stage", "ft-core-sft:sft")
    assert plugins.registration("stage", "acme-stages:sft").distribution == "acme-stages"
    assert plugins.registration("stage", "Acme_Stages:sft").distribution == "acme-stages", "pip's name rules"
    assert plugins.names("stage") == ["sft", "acme-stages:sft"]
    err = capsys.readouterr().err
    assert err.count("warning") == 1
    assert "training stage 'sft' is registered by more than one distribution" in err
    assert "ft-core-sft test" in err and "acme-stages test" in err
    assert "'sft' keeps selecting the first-party ft-core-sft's" in err
    assert "'acme-stages:sft'" in err and 'stage.name: "acme-stages:sft"' in err


def test_a_config_selects_the_third_party_stage_by_its_distribution(tmp_path):
    from ft_core.engine.config.validate import validate

    plugins = load_plugins(strict=True, extra=[(_stages("acme_stages", "sft"), "acme-stages")])
    for name, distribution in (("sft", "ft-core-sft"), ("acme-stages:sft", "acme-stages")):
        raw = {
            "model": {"name_or_path": "smollm2-135m-instruct"},
            "data": {"dataset": ["identity"]},
            "training": {"output_dir": str(tmp_path / "run")},
            "stage": {"name": name},
        }
        stage = validate(raw, plugins).one("stage")
        assert stage is not None and stage.distribution == distribution, name


def test_two_third_party_registrations_make_the_plain_name_ambiguous(capsys):
    extra = [(_stages("one", "fancy"), "one-dist"), (_stages("two", "fancy"), "two-dist")]
    with pytest.raises(PluginError, match=r"'fancy'.*by one-dist test and by two-dist test.*ambiguous"):
        build_plugins(strict=True, entry_points=False, extra=extra)
    plugins = build_plugins(strict=False, entry_points=False, extra=extra)
    assert "ambiguous" in capsys.readouterr().err
    with pytest.raises(PluginError) as error:
        plugins.get("stage", "fancy")
    assert "'one-dist:fancy', 'two-dist:fancy'" in str(error.value)
    assert plugins.names("stage") == ["one-dist:fancy", "two-dist:fancy"]
    assert plugins.registration("stage", "two-dist:fancy").distribution == "two-dist"
    with pytest.raises(ComponentNotFoundError) as error:
        plugins.get("stage", "fancyy")
    assert "one-dist:fancy (one-dist)" in str(error.value) and "two-dist:fancy (two-dist)" in str(error.value)


def test_a_qualified_name_of_a_distribution_that_does_not_register_it():
    plugins = build_plugins(entry_points=False, extra=[(_stages("one", "fancy"), "one-dist")])
    assert plugins.registration("stage", "one-dist:fancy").distribution == "one-dist", "always reachable"
    with pytest.raises(ComponentNotFoundError) as error:
        plugins.get("stage", "other-dist:fancy")
    message = str(error.value)
    assert (
        "No distribution 'other-dist' registers 'fancy'; it is registered by one-dist (one-dist:fancy)"
        in message
    )
    assert "Did you mean 'one-dist:fancy'?" in message


def test_one_distribution_registering_a_name_twice_fails_the_later_plugin():
    extra = [(_stages("first", "fancy"), "same-dist"), (_stages("second", "fancy"), "same-dist")]
    plugins = build_plugins(strict=False, entry_points=False, extra=extra)
    second = next(r for r in plugins.records if r.name == "second")
    assert second.status == "failed" and "already registered by plugin 'first' of the same distribution" in (
        second.error or ""
    )
    assert plugins.registration("stage", "fancy").plugin == "first"
    with pytest.raises(PluginError, match="registers training stage 'twice' twice"):
        build_plugins(strict=True, entry_points=False, extra=[(_stages("dup", "twice", "twice"), "d")])


def test_the_plugins_command_shows_qualified_names(capsys):
    from ft_core.commands.plugins_cmd import PluginsCommand

    extra = [
        (_stages("acme_stages", "sft"), "acme-stages"),
        (_stages("one", "fancy"), "one-dist"),
        (_stages("two", "fancy"), "two-dist"),
    ]
    import ft_core_sft

    plugins = build_plugins(strict=False, entry_points=False, extra=[(ft_core_sft, "ft-core-sft"), *extra])
    capsys.readouterr()
    assert PluginsCommand().run(argparse.Namespace(plugins=plugins, json=True)) == 1, "ambiguous: CI notices"
    data = json.loads(capsys.readouterr().out)
    assert data["components"]["stage"] == {
        "sft": "ft-core-sft",
        "acme-stages:sft": "acme-stages",
        "one-dist:fancy": "one-dist",
        "two-dist:fancy": "two-dist",
    }
    clashes = {c["name"]: c for c in data["clashes"]}
    assert clashes["sft"]["selected_by_plain_name"] == "ft-core-sft:sft"
    assert clashes["fancy"]["selected_by_plain_name"] is None
    assert [r["qualified_name"] for r in clashes["fancy"]["registrations"]] == [
        "one-dist:fancy",
        "two-dist:fancy",
    ]
    PluginsCommand().run(argparse.Namespace(plugins=plugins, json=False))
    out = capsys.readouterr().out
    assert "stage: acme-stages:sft" in out and "stage: sft" in out
    assert "name clash: training stage 'sft'" in out and "ambiguous name: training stage 'fancy'" in out
    assert "training stages: sft, acme-stages:sft, one-dist:fancy, two-dist:fancy" in out
    only_first_party_clash = build_plugins(
        strict=False, entry_points=False, extra=[(ft_core_sft, "ft-core-sft"), extra[0]]
    )
    assert PluginsCommand().run(argparse.Namespace(plugins=only_first_party_clash, json=True)) == 0


# --------------------------------------------------------------------------- end to end
BROKEN_STAGE = """
from __future__ import annotations
from dataclasses import dataclass
from ft_core.api.hookspecs import hookimpl
from ft_core.api import TrainingStage

@dataclass
class AcmeStageOptions:
    beta: flaot = 0.1

class AcmeStage(TrainingStage):
    options_schema = AcmeStageOptions

@hookimpl
def ft_register_stages(register):
    register("acme-sft", AcmeStage())
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on ``sys.path`` to install fake distributions into (entry-point discovery)."""
    root = tmp_path / "site"
    monkeypatch.syspath_prepend(str(root))
    yield root
    sys.modules.pop("fake_ft_acme_stages", None)


def _fake_distribution(root: Path, dist: str, entry_name: str, module: str, source: str) -> None:
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[ft_core]\n{entry_name} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


def test_validate_with_a_stage_of_a_broken_plugin_is_a_clean_error(site, tmp_path, monkeypatch, capsys):
    from ft_core.cli import main

    _fake_distribution(site, "fake-acme-stages", "acme", "fake_ft_acme_stages", BROKEN_STAGE)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"model:\n  name_or_path: /nowhere\ndata:\n  dataset: identity\nstage:\n  name: acme-sft\n"
        f"training:\n  output_dir: {tmp_path / 'run'}\n"
    )
    monkeypatch.setenv("FT_CORE_STRICT", "0")
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "plugin 'acme' (fake-acme-stages 1.2.3) failed to load: training stage 'acme-sft'" in err
    assert "stage.name: unknown training stage 'acme-sft'" in err
    assert "field 'beta': annotation 'flaot' does not resolve" in err
    monkeypatch.setenv("FT_CORE_STRICT", "1")
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "ft-core: error: plugin 'acme' (fake-acme-stages 1.2.3) failed to load" in err
