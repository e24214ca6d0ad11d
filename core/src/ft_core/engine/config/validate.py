"""Strict validation of a merged config: every problem is reported at once, before anything heavy runs.

Order: unknown sections; core sections against their dataclasses; component sections (each against the schema of
the component it selects); plugin-declared sections; then the ordered rules of :mod:`ft_core.engine.config.rules`
(core's, each selected component's ``validate``, each active plugin's ``ft_validate_config``, and with ``inputs``
the rules reading the tokenizer's files and the data rows).
"""

from __future__ import annotations

import os
from typing import Any

from ft_core.api.config import CORE_SECTIONS, META_KEYS, RunConfig, Selection
from ft_core.api.errors import ConfigError, FtCoreError, did_you_mean
from ft_core.api.kinds import SECTION_KINDS
from ft_core.engine.config import rules
from ft_core.engine.config.llamafactory_keys import migration_hint
from ft_core.engine.config.loader import source_of
from ft_core.engine.config.training_arguments import split_training
from ft_core.engine.config.typecheck import build
from ft_core.engine.plugins import Plugins


def _select(plugins: Plugins, section: str, entry: Any, path: str, problems: list[str]) -> Selection | None:
    kind = SECTION_KINDS[section]
    if not isinstance(entry, dict):
        problems.append(f"{path}: expected a name or a mapping with '{kind.selector}', got {entry!r}")
        return None
    name = entry.get(kind.selector, kind.default)
    if not isinstance(name, str) or not name:
        problems.append(f"{path}.{kind.selector}: required (the name of a registered {kind.singular})")
        return None
    try:
        registration = plugins.registration(kind.key, name)
    except FtCoreError as exc:
        problems.append(f"{path}.{kind.selector}: {exc}")
        return None
    component = registration.component
    options = build(component.options_schema, entry, path, problems, ignore=(kind.selector,))
    return Selection(
        section, kind.key, name, component, options, registration.distribution, registration.version
    )


def _selections(raw: dict[str, Any], plugins: Plugins, problems: list[str]) -> dict[str, list[Selection]]:
    selections: dict[str, list[Selection]] = {}
    for section, kind in SECTION_KINDS.items():
        value = raw.get(section)
        if value is None:
            if kind.default is None:
                continue
            value = [{kind.selector: kind.default}] if kind.many else {kind.selector: kind.default}
        if kind.many:
            if not isinstance(value, list):
                problems.append(f"{section}: expected a list, got {value!r}")
                continue
            chosen = [_select(plugins, section, v, f"{section}[{i}]", problems) for i, v in enumerate(value)]
        else:
            chosen = [_select(plugins, section, value, section, problems)]
        selections[section] = [c for c in chosen if c is not None]
    return selections


def _plugin_sections(raw: dict[str, Any], plugins: Plugins, problems: list[str]) -> dict[str, Any]:
    return {
        name: build(plugins.get("config_section", name).schema, raw.get(name), name, problems)
        for name in plugins.names("config_section")
    }


#: Keys of core's sections that name files or folders: checked to be usable paths before any rule opens them.
PATH_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("name_or_path", "hub_cache_dir", "tokenizer", "cache_dir", "adapters"),
    "data": ("dataset_dir", "cache_dir", "tokenized_path", "media_dir"),
    "training": ("output_dir", "resume"),
}
#: The longest file name (one path component) and path, in bytes, that common file systems take.
NAME_MAX, PATH_MAX = 255, 4095
_SHORTER = "give a shorter path"


def path_problem(value: str) -> str | None:
    """Why ``value`` cannot be a file system path (``None`` when it can)."""
    if "\x00" in value:
        return "a path must not contain a null byte"
    try:
        encoded = os.fsencode(value)
    except UnicodeEncodeError:
        return f"{value[:40]!r}... is not encodable as a file name"
    if value.startswith("~") and os.path.expanduser(value).startswith("~"):
        return f"{value.split('/')[0]!r}: no such user's home folder"
    longest = max((len(part) for part in encoded.split(b"/")), default=0)
    if longest > NAME_MAX:
        return f"a file or folder name of {longest} bytes (file systems take at most {NAME_MAX}): {_SHORTER}"
    if len(encoded) > PATH_MAX:
        return f"a path of {len(encoded)} bytes (file systems take at most {PATH_MAX}): {_SHORTER}"
    return None


def _path_problems(sections: dict[str, Any]) -> list[str]:
    problems = []
    for section, keys in PATH_KEYS.items():
        for key in keys:
            value = getattr(sections.get(section), key, None)
            for item in value if isinstance(value, list) else [value]:
                problem = path_problem(item) if isinstance(item, str) else None
                if problem:
                    problems.append(f"{section}.{key}: {problem}")
    return problems


def _reject_llamafactory_config(raw: dict[str, Any], known: list[str], config_path: str | None) -> None:
    """A file of LLaMA-Factory's flat keys gets one problem naming ``ft-core import-lf``, not one per flat key."""
    from ft_core.engine.config.llamafactory_map import looks_like_llamafactory

    if looks_like_llamafactory(raw, known):
        keys = [k for k in raw if k not in known]
        flat = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        where = config_path or "FILE.yaml"
        raise ConfigError(
            [
                f"this looks like a LLaMA-Factory config (flat keys: {flat}); ft-core configs have sections. "
                f"Translate it with `ft-core import-lf {where} --output DIR`: it writes DIR/config.yaml and lists "
                "every key without an ft-core counterpart (with did-you-means for typos)"
            ],
            config_path,
        )


def validate(
    raw: dict[str, Any],
    plugins: Plugins,
    sources: dict[str, str] | None = None,
    config_path: str | None = None,
    *,
    inputs: bool = False,
) -> RunConfig:
    """Validate merged config data against the core schemas, each selected component's schema, the plugins'
    sections and every rule (:data:`~ft_core.engine.config.rules.RULES`; the input rules with ``inputs``).

    Raises :class:`ConfigError` listing every problem, each labelled with the file (or ``command line``) that set
    the key — ``config_path`` for keys that nothing set.
    """
    problems: list[str] = []
    plugin_sections = plugins.names("config_section")
    known = [*CORE_SECTIONS, *SECTION_KINDS, *plugin_sections, *META_KEYS]
    _reject_llamafactory_config(raw, known, config_path)
    for key in raw:
        if key not in known:
            hint = migration_hint(key) or did_you_mean(key, known)
            problems.append(f"{key}: unknown section.{hint} Known sections: {', '.join(known)}.")
    training_keys, passthrough = split_training(raw.get("training"), problems)
    given = {**raw, "training": training_keys}
    sections = {
        name: build(schema, given.get(name), name, problems) for name, schema in CORE_SECTIONS.items()
    }
    if sections["training"] is not None:
        sections["training"].arguments = passthrough
    bad_paths = _path_problems(sections)
    problems += bad_paths
    selections = _selections(raw, plugins, problems)
    extra = _plugin_sections(raw, plugins, problems)
    config = None
    if not bad_paths and all(v is not None for v in [*sections.values(), *extra.values()]):
        config = RunConfig(selections=selections, sections=extra, raw=raw, **sections)  # type: ignore[arg-type]
        problems += rules.check(rules.RuleContext(config, plugins), inputs=inputs, earlier=bool(problems))
    if problems:
        raise ConfigError([_with_source(p, sources or {}, config_path) for p in problems])
    assert config is not None
    return config


def _with_source(problem: str, sources: dict[str, str], default: str | None) -> str:
    key = problem.split(":", 1)[0].split("[", 1)[0]
    source = source_of(sources, key) or default
    return f"{problem} [{source}]" if source else problem
