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
#: Deepest nesting of lists and mappings a config may hold (reading and merging recurse through every level).
MAX_DEPTH = 32


def _too_deep(data: Any) -> str | None:
    """The dotted key where ``data`` nests more than :data:`MAX_DEPTH` levels, if it does (checked without
    recursion)."""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    while stack:
        value, depth, key = stack.pop()
        if depth > MAX_DEPTH:
            return key or "the top level"
        items = (
            value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        )
        for name, item in items:
            label = f"{key}[{name}]" if isinstance(name, int) else f"{key}.{name}" if key else str(name)
            stack.append((item, depth + 1, label))
    return None


def _check_depth(data: Any, where: str) -> None:
    key = _too_deep(data)
    if key is not None:
        raise ConfigError([f"{key}: nested more than {MAX_DEPTH} levels deep (lists or mappings) [{where}]"])


def _read_yaml(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    origin = f" (included from {chain[-1]})" if chain else ""
    if not path.is_file():
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
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}"]) from None
    except OSError as exc:  # unreadable: permissions, a device, ...
        raise ConfigError([f"{path}{origin}: cannot be read: {exc.strerror or exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: nested more than {MAX_DEPTH} levels deep (lists or mappings)"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections, got {type(data).__name__}"])
    _check_depth(data, str(path))
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
    try:
        resolved = path.resolve()
        path.is_file()
    except (OSError, ValueError) as exc:  # a null byte, a name longer than the system takes
        origin = f" (included from {chain[-1]})" if chain else ""
        raise ConfigError([f"config file {str(path)!r}{origin}: not a usable path ({exc})"]) from None
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
    path: str | Path, overrides: list[str] | None = None, *, from_env: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the merged config as plain data, and for each dotted key the file (or ``command line``) that set it.

    Included files merge first, in order; the including file overrides them; ``overrides`` come last. ``from_env``,
    when given, receives the interpolation text of each value read from the environment (:func:`env_interpolations`).
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
                try:
                    layer = normalize(OmegaConf.to_container(OmegaConf.from_dotlist([override])))  # type: ignore[arg-type]
                except yaml.YAMLError as exc:  # the value is read as YAML
                    problem = getattr(exc, "problem", None) or exc
                    raise ConfigError(
                        [f"override {override!r}: the value is not valid YAML ({problem}); quote it"],
                        "command line",
                    ) from None
                _check_depth(layer, "command line")
                merged = _merge(merged, layer)
                _record_sources(sources, _flatten(layer), "command line")
        container = OmegaConf.to_container(merged, resolve=True)
        if from_env is not None:
            from_env.update(env_interpolations(merged))
    except (OmegaConfBaseException, TypeError, ValueError) as exc:
        raise ConfigError([f"cannot merge or resolve the config: {exc}"], str(path)) from None
    except RecursionError:  # an override nested too deeply to parse
        raise ConfigError(
            [f"an override is nested more than {MAX_DEPTH} levels deep (lists or mappings)"], "command line"
        ) from None
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


def _strings(data: Any, prefix: str = "") -> dict[str, str]:
    """Dotted key (list items by index) -> each string leaf of ``data``."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else None
    if items is None:
        return {prefix[:-1]: data} if isinstance(data, str) and prefix else {}
    return {k: v for key, value in items for k, v in _strings(value, f"{prefix}{key}.").items()}


def env_interpolations(merged: DictConfig) -> dict[str, str]:
    """Dotted key -> interpolation text (``${oc.env:API_KEY}``) of each value that reads the environment, directly
    or through another such value: what the run folder's ``config.yaml`` keeps instead of the (secret) value."""
    unresolved = _strings(OmegaConf.to_container(merged, resolve=False))
    found = {key: text for key, text in unresolved.items() if "${" in text and "oc.env" in text}
    grew = True
    while grew:  # `${wandb.key}` naming a value read from the environment reads it too
        grew = False
        for key, text in unresolved.items():
            if key not in found and "${" in text and any(name in text for name in found):
                found[key], grew = text, True
    return found


def with_interpolations(raw: dict[str, Any], kept: dict[str, str]) -> dict[str, Any]:
    """A copy of ``raw`` with the values of ``kept`` (dotted key -> interpolation text) put back as text."""
    import copy

    def child(node: Any, part: str) -> Any:
        if isinstance(node, dict):
            return node.get(part)
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            return node[int(part)]
        return None

    out = copy.deepcopy(raw)
    for key, text in kept.items():
        *parents, last = key.split(".")
        node: Any = out
        for part in parents:
            node = child(node, part)
        if isinstance(node, dict):
            node[last] = text
        elif child(node, last) is not None:
            node[int(last)] = text
    return out
