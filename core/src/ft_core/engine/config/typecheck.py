"""Build dataclass instances from plain config data, collecting every problem with its key path."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

from ft_core.api.errors import did_you_mean
from ft_core.engine.config.llamafactory_keys import migration_hint

#: Words YAML 1.1 reads as booleans, for options whose allowed values are such words (``template.check: off``).
_YAML_BOOLEAN_WORDS: dict[bool, set[str]] = {False: {"off", "no", "false"}, True: {"on", "yes", "true"}}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        return f"list of {_describe(inner)}"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any) -> Any:
    """Return ``value`` converted to ``tp``, or raise ``TypeError`` saying what was expected."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return coerce(value, option)
            except TypeError:
                continue
        raise TypeError(f"expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if isinstance(value, bool) and _YAML_BOOLEAN_WORDS[value] & set(typing.get_args(tp)):
            # YAML 1.1 reads an unquoted off / on / no / yes as a boolean: give back the word the option takes.
            return next(w for w in typing.get_args(tp) if w in _YAML_BOOLEAN_WORDS[value])
        if value in typing.get_args(tp) and not isinstance(value, bool):
            return value
        choices = [str(a) for a in typing.get_args(tp)]
        raise TypeError(f"expected one of {_describe(tp)}, got {value!r}.{did_you_mean(str(value), choices)}")
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise TypeError(f"expected {_describe(tp)}, got {value!r}")
        return [coerce(v, inner) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected a mapping, got {value!r}")
        return dict(value)
    if tp is type(None):
        if value is None:
            return None
        raise TypeError(f"expected null, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError(f"expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads 1e-4 as a string
            except ValueError:
                pass
        raise TypeError(f"expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise TypeError(f"expected a string, got {value!r}")
    raise TypeError(f"unsupported option type {tp!r}")


def build(schema: type, data: Any, path: str, problems: list[str], ignore: tuple[str, ...] = ()) -> Any:
    """Instantiate dataclass ``schema`` from ``data``; append ``"path.key: message"`` problems."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a mapping of options, got {data!r}")
        return None
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in ignore:
            continue
        if key not in fields:
            known = sorted(fields)
            hint = (
                migration_hint(key)
                or did_you_mean(key, known)
                or f" Known keys: {', '.join(known) or 'none'}."
            )
            problems.append(f"{path}.{key}: unknown key.{hint}")
            continue
        try:
            values[key] = coerce(value, hints[key])
        except TypeError as exc:
            problems.append(f"{path}.{key}: {exc}")
    try:
        return schema(**values)
    except (TypeError, ValueError) as exc:  # a required field without default, or a range check
        problems.append(f"{path}: {exc}")
        return None
