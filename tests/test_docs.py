"""The docs stay in step with the code: every hook, config key and component option is documented, and every
local link in README.md and docs/*.md resolves. Fast, no network, nothing heavy imported."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from ft_core import hookspecs
from ft_core.config.schema import COMPONENT_SECTIONS, CORE_SECTIONS
from ft_core.plugins import build_plugins

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
COMPONENT_KINDS = ("stage", "adapter", "optimizer", "logger", "quantizer", "model_patch")


def _hook_names() -> list[str]:
    return sorted(
        name
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("ft_register_") and hasattr(function, "ft_core_spec")
    )


def _documented(text: str, key: str) -> bool:
    """``key`` appears as a code span or table cell (``key`` in backticks), not just as a substring."""
    return re.search(rf"`{re.escape(key)}`", text) is not None


def test_every_hook_spec_is_found() -> None:
    assert len(_hook_names()) >= 11


@pytest.mark.parametrize("hook", _hook_names())
def test_hook_reference_has_every_hook_with_its_signature(hook: str) -> None:
    text = (DOCS / "hook-reference.md").read_text(encoding="utf-8")
    assert f"def {hook}(register: Register) -> None" in text, (
        f"docs/hook-reference.md lacks the signature of {hook}"
    )
    signature = inspect.signature(getattr(hookspecs, hook))
    assert list(signature.parameters) == ["register"], f"{hook} changed its parameters: update the docs"


@pytest.mark.parametrize("section", sorted(CORE_SECTIONS))
def test_config_reference_has_every_core_key(section: str) -> None:
    text = (DOCS / "config-reference.md").read_text(encoding="utf-8")
    assert f"## `{section}`" in text, f"docs/config-reference.md has no section for {section}"
    missing = [f.name for f in dataclasses.fields(CORE_SECTIONS[section]) if not _documented(text, f.name)]
    assert not missing, f"docs/config-reference.md does not document {section}.{missing}"


def test_config_reference_has_every_component_section_and_selector() -> None:
    text = (DOCS / "config-reference.md").read_text(encoding="utf-8")
    for section, spec in COMPONENT_SECTIONS.items():
        assert f"### `{section}`" in text, f"docs/config-reference.md has no section for {section}"
        assert _documented(text, spec.selector)


def _first_party_components() -> list[tuple[str, str, object]]:
    plugins = build_plugins(strict=True)
    found = []
    for kind in COMPONENT_KINDS:
        for name, registration in sorted(plugins.registries[kind].items()):
            found.append((kind, name, registration.component))
    return found


def test_first_party_components_are_installed() -> None:
    names = {(kind, name) for kind, name, _ in _first_party_components()}
    expected = {
        ("stage", "sft"),
        ("stage", "pt"),
        ("adapter", "lora"),
        ("adapter", "freeze"),
        ("adapter", "full"),
    }
    assert expected | {("optimizer", "adamw"), ("logger", "tensorboard")} <= names


@pytest.mark.parametrize(
    ("kind", "name", "component"),
    _first_party_components(),
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_config_reference_has_every_component_option(kind: str, name: str, component: object) -> None:
    text = (DOCS / "config-reference.md").read_text(encoding="utf-8")
    assert _documented(text, name), f"docs/config-reference.md does not mention {kind} {name!r}"
    schema = component.options_schema  # type: ignore[attr-defined]
    missing = [f.name for f in dataclasses.fields(schema) if not _documented(text, f.name)]
    assert not missing, f"docs/config-reference.md does not document the options {missing} of {kind} {name!r}"


_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _anchors(path: Path) -> set[str]:
    """GitHub-style anchors of the headings of ``path``."""
    anchors = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        anchors.add(slug)
    return anchors


def _local_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [t for t in _LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


@pytest.mark.parametrize("markdown", _markdown_files(), ids=lambda p: p.name)
def test_local_links_resolve(markdown: Path) -> None:
    assert markdown.is_file(), f"{markdown} is missing"
    broken = []
    for target in _local_links(markdown):
        file_part, _, anchor = target.partition("#")
        resolved = (markdown.parent / file_part).resolve() if file_part else markdown
        if not resolved.exists():
            broken.append(f"{target} (no such file: {resolved})")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no heading #{anchor} in {resolved.name})")
    assert not broken, f"{markdown.name}: broken links: {broken}"


def test_the_link_checker_sees_links() -> None:
    links = _local_links(ROOT / "README.md")
    assert "docs/user-guide.md" in links and "docs/hook-reference.md" in links
