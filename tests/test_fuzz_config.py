"""Property tests of ``ft-core validate`` on generated configs: every key of core's sections, of every installed
component's options schema and of every plugin's config section, set to wrong types, extreme numbers, unicode,
deep nesting and OmegaConf interpolations (broken ones too); unknown keys and sections; command-line overrides;
YAML syntax errors and undecodable bytes. The contract: exit 0, or exit 2 with a message naming the file or key;
never a traceback, never a file written. ``FT_CORE_FUZZ=long`` runs thousands (CONTRIBUTING.md, "Tests")."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ft_core.api.config import CORE_SECTIONS
from ft_core.api.kinds import SECTION_KINDS
from ft_core.bootstrap import load_plugins
from ft_core.cli import main
from ft_core.engine.config.training_arguments import PASSTHROUGH
from ft_core.testing import save_tiny_model_dir
from ft_core.testing.fuzz import (
    INTERPOLATIONS,
    files_under,
    fuzz_settings,
    hostile_text,
    hostile_values,
    run_cli,
    working_directory,
)


@dataclasses.dataclass(frozen=True)
class Target:
    """One key a config can set: ``section.key``, in the component ``name`` for a component section."""

    section: str
    key: str
    selector: str | None = None
    name: str | None = None
    many: bool = False


def _fields(schema: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(schema) if f.init]


def targets() -> list[Target]:
    """Every key of core's sections, of every registered component's options and of every plugin section."""
    plugins = load_plugins()
    found = [Target(section, key) for section, schema in CORE_SECTIONS.items() for key in _fields(schema)]
    found += [Target("training", key) for key in PASSTHROUGH]
    for section, kind in SECTION_KINDS.items():
        for name in plugins.names(kind.key):
            schema = plugins.get(kind.key, name).options_schema
            found += [Target(section, key, kind.selector, name, kind.many) for key in _fields(schema)]
            found.append(Target(section, kind.selector, kind.selector, name, kind.many))
    for name in plugins.names("config_section"):
        found += [Target(name, key) for key in _fields(plugins.get("config_section", name).schema)]
    return found


TARGETS = targets()
SECTIONS = sorted({t.section for t in TARGETS})


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the tiny model (read-only to validate) and one scratch folder per example."""
    root = tmp_path_factory.mktemp("fuzz-config")
    save_tiny_model_dir(str(root / "model"))
    return root


@pytest.fixture(scope="module", autouse=True)
def _offline(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A generated model name that looks like a Hub id is looked up in an empty cache, never downloaded."""
    patch = pytest.MonkeyPatch()
    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("hub-cache")))
    yield
    patch.undo()


def base_config(model: str) -> dict[str, Any]:
    """A valid config (what ``make_config`` writes): LoRA SFT of the tiny model on the identity demo set."""
    return {
        "model": {"name_or_path": model},
        "data": {"dataset": ["identity"], "cutoff_len": 64, "cache_dir": "cache"},
        "adapter": {"method": "lora", "rank": 4, "alpha": 8},
        "training": {"output_dir": "run", "max_steps": 2, "per_device_train_batch_size": 2, "use_cpu": True},
    }


def apply(config: dict[str, Any], target: Target, value: Any) -> None:
    """Set ``target`` to ``value`` in ``config`` (selecting the target's component)."""
    if target.selector is None:
        section = config.get(target.section)
        if not isinstance(section, dict):
            section = config[target.section] = {}
        section[target.key] = value
        return
    entry: dict[str, Any] = {target.selector: target.name}
    existing = config.get(target.section)
    if isinstance(existing, dict) and existing.get(target.selector) == target.name:
        entry = existing
    entry[target.key] = value
    config[target.section] = [entry] if target.many else entry


@st.composite
def mutated_configs(draw: st.DrawFn) -> tuple[dict[str, Any], list[str], list[str]]:
    """``(config without the model, overrides, keys it touched)``: one to three mutations of the base config."""
    config = base_config("MODEL")
    overrides: list[str] = []
    touched: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["key", "key", "key", "interpolation", "unknown", "section", "override"]))
        target = draw(st.sampled_from(TARGETS))
        touched += [target.section, target.key]
        if how == "key":
            apply(config, target, draw(hostile_values()))
        elif how == "interpolation":
            apply(config, target, draw(st.sampled_from(INTERPOLATIONS)))
        elif how == "unknown":
            key = draw(st.one_of(hostile_text(20), st.integers(-2, 2), st.booleans()))
            where = draw(st.sampled_from(["top", "section"]))
            if where == "top":
                config[key] = draw(hostile_values())
            else:
                apply(config, dataclasses.replace(target, key=key), draw(hostile_values()))  # type: ignore[arg-type]
            touched.append(str(key))
        elif how == "section":
            config[target.section] = draw(hostile_values())
        else:
            key = draw(st.sampled_from([f"{target.section}.{target.key}", target.section, target.key, "x.y"]))
            text = draw(st.one_of(hostile_text(20), st.sampled_from(INTERPOLATIONS)))
            overrides.append(f"{key}={text}" if draw(st.booleans()) else text)
    return config, overrides, touched


def validate_in_scratch(root: Path, write: Any, overrides: Sequence[str] = ()) -> tuple[Any, Path]:
    """Write a config with ``write(folder) -> path``, run ``ft-core validate`` in a scratch folder, and check
    that it wrote nothing there."""
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        path = write(Path(scratch))
        before = files_under(scratch)
        with working_directory(scratch):
            result = run_cli(
                main, ["validate", str(path), "--", *overrides] if overrides else ["validate", str(path)]
            )
        assert files_under(scratch) == before, "validate wrote files"
    return result, path


def _dump(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, allow_unicode=True, sort_keys=False)


def test_the_base_config_is_valid(fuzz_root: Path) -> None:
    model = str(fuzz_root / "model")
    result, _ = validate_in_scratch(
        fuzz_root, lambda d: (d / "c.yaml", (d / "c.yaml").write_text(_dump(base_config(model))))[0]
    )
    assert result.status == 0, result.stderr


def test_every_schema_is_enumerated() -> None:
    """Core's sections, component sections (every registered component) and the plugin sections are fuzzed."""
    assert set(CORE_SECTIONS) | set(SECTION_KINDS) | {"deepspeed", "fsdp"} <= set(SECTIONS)
    assert {t.name for t in TARGETS if t.section == "stage"} >= {"sft", "dpo", "kto", "grpo", "pt"}


@fuzz_settings(120)
@given(mutated_configs())
def test_mutated_configs_validate_or_name_the_problem(fuzz_root: Path, case: Any) -> None:
    config, overrides, touched = case
    model = str(fuzz_root / "model")
    text = _dump(config).replace("MODEL", model)

    def write(folder: Path) -> Path:
        path = folder / "config.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    result, path = validate_in_scratch(fuzz_root, write, overrides)
    result.check(str(path), "command line", *touched)


#: Text that breaks YAML, or its reading: tabs, unclosed brackets, undefined aliases, tags, directives, bytes.
YAML_BREAKERS = (
    "\t",
    "[",
    "{",
    "}",
    ": :",
    "- - -\n",
    "*undefined",
    "&a [*a]",
    "!!python/object/apply:os.system ['true']",
    "!!binary ===",
    "%YAML 9.9\n---\n",
    "? [a, b]\n: 1\n",
    '"unterminated',
    "'",
    "\x00",
    "\x1b",
    "---\n---\n",
    "...\n",
    "key: value\nkey: again\n",
    "@",
    "`",
    "|\n  x\n y",
    "<<: *nope",
    "<<: 1",
    "[" * 300,
    "[" * 3000 + "]" * 3000,
    "{a: " * 500 + "}" * 500,
)


@fuzz_settings(80)
@given(st.data())
def test_broken_yaml_is_refused_with_the_file_and_line(fuzz_root: Path, data: st.DataObject) -> None:
    model = str(fuzz_root / "model")
    text = _dump(base_config(model)).encode()
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        piece = data.draw(
            st.one_of(
                st.sampled_from(YAML_BREAKERS).map(str.encode),
                st.binary(max_size=6),
                st.text(max_size=6).map(str.encode),
            )
        )
        cut = data.draw(st.sampled_from([0, 0, 0, 1, 5]))
        text = text[:at] + piece + text[at + cut :]

    def write(folder: Path) -> Path:
        path = folder / "broken.yaml"
        path.write_bytes(text)
        return path

    result, path = validate_in_scratch(fuzz_root, write)
    result.check(str(path))


@fuzz_settings(30)
@given(include=st.one_of(hostile_text(20), hostile_values()))
def test_includes_of_any_shape_are_checked(fuzz_root: Path, include: Any) -> None:
    """``include:`` naming files that are missing, folders, itself, or not a path at all."""

    def write(folder: Path) -> Path:
        (folder / "base.yaml").write_text(_dump({"data": {"cutoff_len": 32}}))
        config = {"include": include, **base_config(str(fuzz_root / "model"))}
        path = folder / "config.yaml"
        path.write_text(_dump(config), encoding="utf-8")
        return path

    result, path = validate_in_scratch(fuzz_root, write)
    result.check(str(path), "include")


#: Strings no file system takes as a path, or that point somewhere odd.
BAD_PATHS = (
    "\x00",
    "a\x00b",
    "x" * 300,
    "x/" * 3000,
    "~nobody-here/x",
    "/dev/null",
    "/proc/self",
    ".",
    "",
    " ",
)


@fuzz_settings(40)
@given(target=st.sampled_from(TARGETS), value=st.sampled_from(BAD_PATHS))
def test_unusable_paths_in_any_string_key_are_reported(fuzz_root: Path, target: Target, value: str) -> None:
    config = base_config(str(fuzz_root / "model"))
    apply(config, target, value)

    def write(folder: Path) -> Path:
        path = folder / "config.yaml"
        path.write_text(_dump(config), encoding="utf-8")
        return path

    result, path = validate_in_scratch(fuzz_root, write)
    result.check(str(path), target.key)
