"""The docs stay in step with the code: every hook (exact signature, docstring, firstresult, call order), every
method of the public base classes, every config key, plugin section and component option, every command, chat
flag, manifest status and run event is documented, and every local link in README.md and docs/*.md resolves.
Fast, no network, nothing heavy imported."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from ft_core.api import context, events, hookspecs, inference
from ft_core.api.components import Component
from ft_core.api.config import CORE_SECTIONS
from ft_core.api.kinds import KINDS, SECTION_KINDS
from ft_core.bootstrap import load_plugins

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: Kinds whose components take options from a config section (their options are in the config reference).
OPTION_KINDS = ("stage", "adapter", "optimizer", "logger", "quantizer", "model_patch")
#: Every status a run's manifest.json can hold.
MANIFEST_STATUSES = ("running", "completed", "failed", "cancelled", "interrupted")


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _documented(text: str, key: str) -> bool:
    """``key`` appears as a code span or table cell (``key`` in backticks), not just as a substring."""
    return re.search(rf"`{re.escape(key)}`", text) is not None


def _normalized(text: str) -> str:
    """Markdown or reST as plain words: code markers dropped, whitespace collapsed."""
    text = text.replace("``", "`").replace("`", "").replace("**", "")
    text = re.sub(r":(class|meth|data|func|mod):", "", text).replace("~", "")
    return " ".join(text.split())


# ------------------------------------------------------------------------------------------------ hook reference
def _specs() -> dict[str, object]:
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("ft_") and hasattr(function, "ft_core_spec")
    }


def signature_line(name: str, function: object) -> str:
    """``def name(param: annotation, ...) -> return``, annotations as the source writes them."""
    signature = inspect.signature(function)  # type: ignore[arg-type]
    params = []
    for p in signature.parameters.values():
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if p.annotation is not p.empty:
            text += f": {p.annotation}"
        if p.default is not p.empty:
            text += f" = {p.default!r}"
        params.append(text)
    keyword_only = [i for i, p in enumerate(signature.parameters.values()) if p.kind is p.KEYWORD_ONLY]
    if keyword_only and not any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values()):
        params.insert(keyword_only[0], "*")
    ret = f" -> {signature.return_annotation}" if signature.return_annotation is not signature.empty else ""
    return f"def {name}({', '.join(params)}){ret}"


def _hook_section(text: str, hook: str) -> str:
    """The text of ``## `hook``` up to the next heading of level 1 or 2."""
    match = re.search(rf"^## `{hook}`\n(.*?)(?=^#{{1,2}} )", text + "\n# end", re.MULTILINE | re.DOTALL)
    assert match, f"docs/hook-reference.md has no section ## `{hook}`"
    return match.group(1)


def test_every_hook_spec_is_found() -> None:
    assert len(_specs()) >= 23
    assert sum(name.startswith("ft_register_") for name in _specs()) == len(KINDS)


@pytest.mark.parametrize("hook", sorted(_specs()))
def test_hook_reference_has_every_hook_with_its_signature_and_docstring(hook: str) -> None:
    section = _hook_section(_read("hook-reference.md"), hook)
    function = _specs()[hook]
    line = signature_line(hook, function)
    assert f"```python\n{line}\n```" in section, f"docs/hook-reference.md: {hook} must show `{line}`"
    doc = inspect.getdoc(function) or ""
    summary = doc.split("\n\n")[0]
    assert _normalized(summary) in _normalized(section), f"{hook}: the docstring's summary is not in the docs"
    for parameter in inspect.signature(function).parameters:  # type: ignore[arg-type]
        assert _documented(section, parameter), f"{hook}: parameter {parameter!r} is not described"
    since = re.search(r"^Since .*$", doc, re.MULTILINE)
    assert since and _normalized(since.group(0)) in _normalized(section), f"{hook}: 'Since' line missing"
    firstresult = function.ft_core_spec["firstresult"]  # type: ignore[attr-defined]
    assert ("firstresult" in section) == firstresult, f"{hook}: say whether it is firstresult (and only then)"


def test_hook_reference_gives_the_call_order_of_every_lifecycle_hook() -> None:
    text = _read("hook-reference.md")
    match = re.search(r"^## Call order\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert match, "docs/hook-reference.md has no '## Call order' section"
    lifecycle = [name for name in _specs() if not name.startswith("ft_register_")]
    missing = [name for name in lifecycle if f"`{name}`" not in match.group(1)]
    assert not missing, f"the call order does not place {missing}"


def _public_methods(cls: type) -> list[tuple[str, object]]:
    return [
        (name, value)
        for name, value in vars(cls).items()
        if inspect.isfunction(value) and not name.startswith("_")
    ]


_INTERFACES = [
    Component,
    *[kind.base for kind in KINDS if issubclass(kind.base, Component)],
    context.RunContext,
    context.Encoder,
    inference.ChatModel,
]


@pytest.mark.parametrize("cls", _INTERFACES, ids=lambda c: c.__name__)
def test_hook_reference_has_every_method_of_the_public_base_classes(cls: type) -> None:
    text = _read("hook-reference.md")
    assert f"`{cls.__name__}`" in text, f"docs/hook-reference.md does not describe {cls.__name__}"
    missing = [signature_line(n, f) for n, f in _public_methods(cls) if signature_line(n, f) not in text]
    assert not missing, f"docs/hook-reference.md lacks these {cls.__name__} methods (exactly): {missing}"


@pytest.mark.parametrize(
    "cls", [kind.base for kind in KINDS if dataclasses.is_dataclass(kind.base)], ids=lambda c: c.__name__
)
def test_hook_reference_has_every_field_of_the_data_components(cls: type) -> None:
    text = _read("hook-reference.md")
    assert f"`{cls.__name__}`" in text
    missing = [f.name for f in dataclasses.fields(cls) if not _documented(text, f.name)]
    assert not missing, f"docs/hook-reference.md does not describe {cls.__name__} fields {missing}"


# ------------------------------------------------------------------------------------------------ config reference
@pytest.mark.parametrize("section", sorted(CORE_SECTIONS))
def test_config_reference_has_every_core_key(section: str) -> None:
    text = _read("config-reference.md")
    assert f"## `{section}`" in text, f"docs/config-reference.md has no section for {section}"
    missing = [f.name for f in dataclasses.fields(CORE_SECTIONS[section]) if not _documented(text, f.name)]
    assert not missing, f"docs/config-reference.md does not document {section}.{missing}"


def test_config_reference_has_every_component_section_and_selector() -> None:
    text = _read("config-reference.md")
    for section, kind in SECTION_KINDS.items():
        assert f"### `{section}`" in text, f"docs/config-reference.md has no section for {section}"
        assert _documented(text, kind.selector)
        if kind.default:
            assert _documented(text, kind.default), f"{section}: its default {kind.default!r} is not named"


_PLUGINS = load_plugins(strict=True)


def _installed_components() -> list[tuple[str, str, object]]:
    found = []
    for kind in OPTION_KINDS:
        for name, registration in sorted(_PLUGINS.registries[kind].items()):
            found.append((kind, name, registration.component))
    return found


def _repository_distributions() -> list[str]:
    names = []
    for pyproject in sorted(
        [*ROOT.glob("plugins/*/pyproject.toml"), *ROOT.glob("contrib_templates/*/pyproject.toml")]
    ):
        text = pyproject.read_text(encoding="utf-8")
        name = re.search(r'^name = "([^"]+)"', text, re.MULTILINE)
        if name and "[project.entry-points.ft_core]" in text:
            names.append(name.group(1))
    return names


def test_first_party_components_are_installed() -> None:
    names = {(kind, name) for kind, name, _ in _installed_components()}
    expected = {
        ("stage", "sft"),
        ("stage", "pt"),
        ("adapter", "lora"),
        ("adapter", "freeze"),
        ("adapter", "full"),
        ("optimizer", "adamw"),
        ("logger", "tensorboard"),
    }
    assert expected <= names


@pytest.mark.parametrize("distribution", _repository_distributions())
def test_every_plugin_of_the_repository_is_installed_and_loads(distribution: str) -> None:
    records = [r for r in _PLUGINS.records if r.distribution == distribution]
    assert records, f"{distribution} is not installed: pip install -e its folder (.ci/setup does)"
    assert all(r.status == "loaded" for r in records), [r.error for r in records]


@pytest.mark.parametrize(
    ("kind", "name", "component"),
    _installed_components(),
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_config_reference_has_every_component_option(kind: str, name: str, component: object) -> None:
    text = _read("config-reference.md")
    assert _documented(text, name), f"docs/config-reference.md does not mention {kind} {name!r}"
    schema = component.options_schema  # type: ignore[attr-defined]
    missing = [f.name for f in dataclasses.fields(schema) if not _documented(text, f.name)]
    assert not missing, f"docs/config-reference.md does not document the options {missing} of {kind} {name!r}"


@pytest.mark.parametrize("section", _PLUGINS.names("config_section"))
def test_config_reference_has_every_plugin_section_and_its_keys(section: str) -> None:
    text = _read("config-reference.md")
    assert re.search(rf"^##+ `{re.escape(section)}`", text, re.MULTILINE), (
        f"docs/config-reference.md has no heading for the plugin section {section!r}"
    )
    schema = _PLUGINS.get("config_section", section).schema
    missing = [f.name for f in dataclasses.fields(schema) if not _documented(text, f.name)]
    assert not missing, f"docs/config-reference.md does not document {section}.{missing}"


def test_config_reference_lists_every_top_level_section() -> None:
    text = _read("config-reference.md")
    top = re.search(r"^## Top level\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert top
    sections = [*CORE_SECTIONS, *SECTION_KINDS, "include"]
    missing = [s for s in sections if f"| `{s}` |" not in top.group(1)]
    assert not missing, f"the top-level table lacks {missing}"


# ------------------------------------------------------------------------------------------------ user guide
def test_user_guide_has_every_core_command() -> None:
    text = _read("user-guide.md")
    commands = [
        n
        for n in _PLUGINS.names("cli_command")
        if _PLUGINS.registration("cli_command", n).distribution == "ft-core"
    ]
    assert {"run", "validate", "prepare", "cancel", "chat", "plugins"} <= set(commands)
    missing = [c for c in commands if f"`ft-core {c}" not in text]
    assert not missing, f"docs/user-guide.md does not document ft-core {missing}"


def test_user_guide_has_every_chat_option() -> None:
    parser = argparse.ArgumentParser()
    _PLUGINS.get("cli_command", "chat").add_arguments(parser)
    flags = [
        o for action in parser._actions for o in action.option_strings if o.startswith("--") and o != "--help"
    ]
    assert {"--temperature", "--top-p", "--max-new-tokens", "--stop", "--seed"} <= set(flags)
    text = _read("user-guide.md")
    missing = [flag for flag in flags if f"`{flag}`" not in text]
    assert not missing, f"docs/user-guide.md does not document the chat options {missing}"


def test_user_guide_has_every_manifest_status_and_event_kind() -> None:
    text = _read("user-guide.md")
    missing = [
        s for s in (*MANIFEST_STATUSES, *events.EVENT_KINDS, *events.PHASES) if not _documented(text, s)
    ]
    assert not missing, f"docs/user-guide.md does not mention {missing}"


def test_user_guide_shows_multi_process_launches() -> None:
    text = _read("user-guide.md")
    assert "torchrun --nproc_per_node" in text and "-m ft_core.cli run" in text
    assert "accelerate launch" in text


# ------------------------------------------------------------------------------------------------ links
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "core" / "README.md", *sorted(DOCS.glob("*.md"))]


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


@pytest.mark.parametrize("markdown", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
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


def test_docs_use_only_the_public_api_in_plugin_code() -> None:
    """Plugin examples import ``ft_core.api`` (in tests also ``ft_core.testing`` and the console script's
    ``ft_core.cli.main``), never the engine."""
    internal = re.compile(
        r"^\s*(?:from|import) ft_core\.(?!api\b|testing\b|cli import main\b)[a-z_.]+", re.MULTILINE
    )
    for name in ("plugin-author-guide.md",):
        blocks = re.findall(r"```python\n(.*?)```", _read(name), re.DOTALL)
        offending = [m.group(0).strip() for block in blocks for m in internal.finditer(block)]
        assert not offending, f"docs/{name}: plugin code imports internals: {offending}"


def test_the_config_reference_lists_every_validation_rule():
    from ft_core.engine.config.rules import RULES

    text = (ROOT / "docs" / "config-reference.md").read_text(encoding="utf-8")
    missing = [rule.name for rule in RULES if f"| `{rule.name}` |" not in text]
    assert not missing, f"docs/config-reference.md lacks the validation rules {missing}"
