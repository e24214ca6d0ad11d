"""Load a run configuration: YAML, ``include:`` files, and ``key=value`` overrides (OmegaConf)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ft_core.api.errors import ConfigError

#: Shorthand ``section: name`` expands to ``section: {<selector>: name}``.
_SELECTORS = {
    "stage": "name",
    "adapter": "method",
    "optimizer": "name",
    "quantization": "method",
    "template": "name",
}
_LIST_SELECTORS = {"loggers": "name", "patches": "name"}


def _read_yaml(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    if not path.is_file():
        origin = f" (included from {chain[-1]})" if chain else ""
        hint = ""
        if path.is_dir():
            hint = (
                f"; it is a folder: a run folder's config is {path / 'config.yaml'}"
                if (path / "config.yaml").is_file()
                else "; it is a folder, give a YAML file"
            )
        raise ConfigError([f"config file not found: {path}{origin}{hint}"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections, got {type(data).__name__}"])
    return data


def _flatten(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, dict) and data:
        keys: list[str] = []
        for key, value in data.items():
            keys.extend(_flatten(value, f"{prefix}{key}."))
        return keys
    return [prefix[:-1]] if prefix else []


def normalize(data: dict[str, Any]) -> dict[str, Any]:
    """Expand shorthands: ``adapter: lora``, ``loggers: [tensorboard]``, ``data.dataset: a,b``."""
    out = dict(data)
    for section, selector in _SELECTORS.items():
        if isinstance(out.get(section), str):
            out[section] = {selector: out[section]}
    for section, selector in _LIST_SELECTORS.items():
        value = out.get(section)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            out[section] = [{selector: v} if isinstance(v, str) else v for v in value]
    data_section = out.get("data")
    if isinstance(data_section, dict):
        data_section = dict(data_section)
        for key in ("dataset", "eval_dataset"):
            if isinstance(data_section.get(key), str):
                data_section[key] = [v.strip() for v in data_section[key].split(",") if v.strip()]
        out["data"] = data_section
    return out


def _merge(merged: Any, data: dict[str, Any]) -> Any:
    """Merge one layer; a layer that selects a different component replaces that section's options."""
    for section, selector in _SELECTORS.items():
        new, old = data.get(section), merged.get(section) if section in merged else None
        if new is None or old is None:
            continue
        if not isinstance(old, DictConfig) or not isinstance(new, dict):
            merged[section] = (
                None  # a scalar and a mapping do not merge: the later layer replaces the earlier
            )
        elif new.get(selector, old.get(selector)) != old.get(selector):
            merged[section] = None
    return OmegaConf.merge(merged, OmegaConf.create(data))


def _collect(path: Path, chain: tuple[Path, ...], layers: list[tuple[Path, dict[str, Any]]]) -> None:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ConfigError([f"include cycle: {cycle}"])
    data = _read_yaml(path, chain)
    includes = data.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError([f"{path}: 'include' must be a file path or a list of file paths"])
    for include in includes:
        _collect((path.parent / include), (*chain, resolved), layers)
    layers.append((path, normalize(data)))


def _record_sources(sources: dict[str, str], keys: list[str], source: str) -> None:
    """Record who set ``keys``; a key set again moves to the end, so the newest setter of a section comes last."""
    for key in keys:
        sources.pop(key, None)
        sources[key] = source


def load_config(
    path: str | Path, overrides: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the merged config as plain data, and for each dotted key the file (or ``command line``) that set it.

    Included files merge first, in order; the including file overrides them; ``overrides`` come last.
    """
    layers: list[tuple[Path, dict[str, Any]]] = []
    _collect(Path(path), (), layers)
    sources: dict[str, str] = {}
    try:
        merged = OmegaConf.create({})
        for file, data in layers:
            merged = _merge(merged, data)
            _record_sources(sources, _flatten(data), str(file))
        if overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(
                    [f"override {o!r} is not of the form key=value" for o in bad], "command line"
                )
            for override in overrides:  # one layer each: `stage=pt stage.packing=false` keeps pt
                layer = normalize(OmegaConf.to_container(OmegaConf.from_dotlist([override])))  # type: ignore[arg-type]
                merged = _merge(merged, layer)
                _record_sources(sources, _flatten(layer), "command line")
        container = OmegaConf.to_container(merged, resolve=True)
    except (OmegaConfBaseException, TypeError, ValueError) as exc:
        raise ConfigError([f"cannot merge or resolve the config: {exc}"], str(path)) from None
    return normalize(container), sources  # type: ignore[arg-type]


def source_of(sources: dict[str, str], key: str) -> str:
    """The file that set ``key`` (or the nearest parent key), for error messages."""
    probe = key
    while probe:
        if probe in sources:
            return sources[probe]
        matches = [s for k, s in sources.items() if k.startswith(probe + ".")]
        if matches:
            return matches[-1]
        probe = probe.rpartition(".")[0]
    return ""
