"""Meta-tests of the hook specifications (in the manner of datasette's): every hook in ``ft_core.api.hookspecs`` is
documented with its exact signature, registration hooks and component kinds match one to one, and every hook is
implemented by some test, so none is left unexercised."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from ft_core.api import hookspecs
from ft_core.api.kinds import KINDS, KINDS_BY_KEY, SECTION_KINDS

ROOT = Path(__file__).resolve().parents[1]
HOOK_REFERENCE = ROOT / "docs" / "hook-reference.md"
#: Where the test suite lives: the cross-package tests and each distribution's own tests.
TEST_SOURCES = ("tests/**/*.py", "plugins/*/tests/**/*.py", "contrib_templates/*/tests/**/*.py")
_IMPLEMENTED = re.compile(r"^\s*def (ft_[a-z0-9_]+)\(", re.MULTILINE)


def _specs() -> dict[str, object]:
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("ft_") and hasattr(function, f"{hookspecs.PROJECT_NAME}_spec")
    }


def _registration_hooks() -> set[str]:
    return {name for name in _specs() if name.startswith("ft_register_")}


def signature_line(name: str, function: object) -> str:
    """``def name(param: annotation, ...) -> return`` as the spec declares it (annotations as written)."""
    signature = inspect.signature(function)  # type: ignore[arg-type]
    params = [
        f"{p.name}: {p.annotation}" if p.annotation is not p.empty else p.name
        for p in signature.parameters.values()
    ]
    ret = f" -> {signature.return_annotation}" if signature.return_annotation is not signature.empty else ""
    return f"def {name}({', '.join(params)}){ret}"


def test_the_specs_are_found():
    specs = _specs()
    assert len(_registration_hooks()) == len(KINDS) >= 12
    assert {"ft_validate_config", "ft_load_model", "ft_run_event"} <= set(specs)


# (a) documented ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hook", sorted(_specs()))
def test_every_hook_is_documented_with_its_exact_signature(hook: str):
    text = HOOK_REFERENCE.read_text(encoding="utf-8")
    assert f"## `{hook}`" in text, f"docs/hook-reference.md has no section for {hook}"
    line = signature_line(hook, _specs()[hook])
    assert line in text, f"docs/hook-reference.md lacks the exact signature of {hook}: {line}"


def test_the_hook_reference_documents_no_hook_that_does_not_exist():
    documented = set(
        re.findall(r"^## `(ft_[a-z0-9_]+)`", HOOK_REFERENCE.read_text(encoding="utf-8"), re.MULTILINE)
    )
    assert documented == set(_specs()), f"stale: {sorted(documented - set(_specs()))}"


# (b) registration hooks <-> kinds ------------------------------------------------------------------------------
@pytest.mark.parametrize("hook", sorted(_registration_hooks()))
def test_every_registration_hook_is_exactly_one_kind(hook: str):
    matching = [kind for kind in KINDS if kind.hook == hook]
    assert len(matching) == 1, f"{hook} is declared by {len(matching)} kinds in ft_core.api.kinds"
    annotation = str(inspect.signature(_specs()[hook]).parameters["register"].annotation)  # type: ignore[arg-type]
    assert re.match(rf"Register\[{matching[0].base.__name__}\b", annotation), (
        f"{hook} takes {annotation}, but its kind's base class is {matching[0].base.__name__}"
    )


def test_every_kind_has_its_registration_hook():
    hooks = [kind.hook for kind in KINDS]
    assert len(hooks) == len(set(hooks)), "two kinds share a registration hook"
    assert set(hooks) == _registration_hooks()
    assert len(KINDS_BY_KEY) == len(KINDS)


def test_section_kinds_are_the_kinds_selected_by_a_section():
    assert {kind.section for kind in KINDS if kind.section} == set(SECTION_KINDS)
    for section, kind in SECTION_KINDS.items():
        assert kind.section == section
        assert kind.selector in ("name", "method")
        if kind.many:
            assert kind.default is None, f"{section}: a list section has no default component"


# (c) exercised -------------------------------------------------------------------------------------------------
def _implemented_in_tests() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for pattern in TEST_SOURCES:
        for path in sorted(ROOT.glob(pattern)):
            for name in _IMPLEMENTED.findall(path.read_text(encoding="utf-8")):
                found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def test_the_collector_sees_hook_implementations():
    found = _implemented_in_tests()
    assert "tests/test_lifecycle_hooks.py" in found.get("ft_load_model", [])


def test_every_hook_is_exercised_by_a_test():
    found = _implemented_in_tests()
    missing = sorted(set(_specs()) - set(found))
    assert not missing, (
        f"no test implements {missing}: add a plugin implementing it to a test (see tests/test_lifecycle_hooks.py)"
    )


# the spec docstrings themselves --------------------------------------------------------------------------------
@pytest.mark.parametrize("hook", sorted(_specs()))
def test_every_spec_documents_its_parameters_and_version(hook: str):
    function = _specs()[hook]
    doc = inspect.getdoc(function) or ""
    assert re.search(r"^Since \d+\.\d+\.\d+", doc, re.MULTILINE), f"{hook}: no 'Since x.y.z' line"
    for parameter in inspect.signature(function).parameters:  # type: ignore[arg-type]
        assert f":param {parameter}:" in doc, f"{hook}: parameter {parameter!r} is not described"
