"""Build dataclass instances from plain config data, collecting every problem with its key path.

:func:`build` never raises for what a config holds (wrong types, odd keys, unicode, deep nesting, huge numbers):
every problem becomes a ``"path.key: message"`` string. The option types it checks are those
:func:`ft_core.engine.plugins.schema_problems` accepts when a plugin registers a component: ``bool``, ``int``,
``float``, ``str``, ``None``, ``Any``, ``Literal[...]``, ``list[T]``, ``tuple[T, ...]``, ``dict[K, V]``, unions and
nested dataclasses. A schema outside that (one that did not come through registration) is reported as a problem
too, never a raw exception.
"""

from __future__ import annotations

import dataclasses
import functools
import reprlib
import types
import typing
from typing import Any, Literal, Union

from ft_core.api.errors import did_you_mean
from ft_core.engine.config.llamafactory_keys import migration_hint
from ft_core.engine.plugins import schema_problems

#: Words YAML 1.1 reads as booleans, for options whose allowed values are such words (``template.check: off``).
_YAML_BOOLEAN_WORDS: dict[bool, set[str]] = {False: {"off", "no", "false"}, True: {"on", "yes", "true"}}

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple = 3, 8, 8, 8
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 100, 100, 60


def _show(value: Any) -> str:
    """``repr(value)`` for a message: shortened, and safe for deeply nested or huge values."""
    try:
        return _REPR.repr(value)
    except Exception:  # an int too long to print
        if isinstance(value, int):
            return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
        return f"a {type(value).__name__} value"


class NestedTypeError(TypeError):
    """Problems inside a list, tuple, mapping or nested dataclass value: ``(relative path, message)`` pairs, the
    path like ``[2]``, ``.lr`` or ``[0].name`` (empty for the value itself)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path.lstrip('.') or 'value'}: {message}" for path, message in problems))


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_describe(a) for a in typing.get_args(tp))
    if origin in (list, tuple) or tp in (list, tuple):
        inner = [a for a in typing.get_args(tp) if a is not Ellipsis] or [Any]
        return f"list of {' | '.join(dict.fromkeys(_describe(a) for a in inner))}"
    if origin is dict or tp is dict:
        return "mapping"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return "mapping of options"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _prefixed(path: str, exc: TypeError) -> list[tuple[str, str]]:
    if isinstance(exc, NestedTypeError):
        return [(path + sub, message) for sub, message in exc.problems]
    return [(path, str(exc))]


def _items(values: list[Any], item_types: list[Any]) -> list[Any]:
    result, problems = [], []
    for index, (value, tp) in enumerate(zip(values, item_types, strict=True)):
        try:
            result.append(coerce(value, tp))
        except TypeError as exc:
            problems += _prefixed(f"[{index}]", exc)
    if problems:
        raise NestedTypeError(problems)
    return result


def _key_label(key: Any) -> str:
    return f".{key}" if isinstance(key, str) else f".{_show(key)}"


def _mapping(value: Any, key_type: Any, value_type: Any) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a mapping, got {_show(value)}")
    result, problems = {}, []
    for key, item in value.items():
        try:
            checked_key = coerce(key, key_type)
        except TypeError as exc:
            problems.append((_key_label(key), f"bad key: {exc}"))
            continue
        try:
            result[checked_key] = coerce(item, value_type)
        except TypeError as exc:
            problems += _prefixed(_key_label(key), exc)
    if problems:
        raise NestedTypeError(problems)
    return result


def coerce(value: Any, tp: Any) -> Any:
    """Return ``value`` converted to ``tp``, or raise ``TypeError`` saying what was expected
    (:class:`NestedTypeError`, with a path per problem, for problems inside a container or nested options)."""
    if tp is Any:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        errors: list[TypeError] = []
        for option in args:
            try:
                return coerce(value, option)
            except TypeError as exc:
                errors.append(exc)
        # A container whose shape matched one option (a list for list[...]): that option's problems say more.
        nested = [exc for exc in errors if isinstance(exc, NestedTypeError)]
        if len(nested) == 1:
            raise nested[0]
        raise TypeError(f"expected {_describe(tp)}, got {_show(value)}")
    if origin is Literal:
        words = {a for a in args if isinstance(a, str)}
        if isinstance(value, bool) and _YAML_BOOLEAN_WORDS[value] & words:
            # YAML 1.1 reads an unquoted off / on / no / yes as a boolean: give back the word the option takes.
            return next(w for w in args if isinstance(w, str) and w in _YAML_BOOLEAN_WORDS[value])
        if any(type(a) is type(value) and a == value for a in args):
            return value
        hint = did_you_mean(value, [str(a) for a in args]) if isinstance(value, str) else ""
        raise TypeError(f"expected one of {_describe(tp)}, got {_show(value)}.{hint}")
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise TypeError(f"expected {_describe(tp)}, got {_show(value)}")
        (inner,) = args or (Any,)
        return _items(value, [inner] * len(value))
    if origin is tuple or tp is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected {_describe(tp)}, got {_show(value)}")
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return tuple(_items(list(value), [args[0] if args else Any] * len(value)))
        if len(value) != len(args):
            raise TypeError(f"expected {len(args)} items ({_describe(tp)}), got {len(value)}: {_show(value)}")
        return tuple(_items(list(value), list(args)))
    if origin is dict or tp is dict:
        key_type, value_type = args or (Any, Any)
        return _mapping(value, key_type, value_type)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        result, problems = _build(tp, value, ())
        if problems:
            raise NestedTypeError(problems)
        return result
    if tp is type(None):
        if value is None:
            return None
        raise TypeError(f"expected null, got {_show(value)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true or false, got {_show(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError(f"expected an integer, got {_show(value)}")
    if tp is float:
        try:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                return float(value)  # YAML 1.1 reads 1e-4 as a string
        except (ValueError, OverflowError):
            pass
        raise TypeError(f"expected a number, got {_show(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return str(value)
            except ValueError:  # an int longer than Python prints
                pass
        raise TypeError(f"expected a string, got {_show(value)}")
    raise TypeError(f"unsupported option type {tp!r}")


@functools.cache
def _checked_schema(schema: type) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``(type hints, problems)`` of an options schema, computed once per class."""
    problems = tuple(schema_problems(schema))
    return ({} if problems else typing.get_type_hints(schema)), problems


def _build(schema: type, data: Any, ignore: tuple[str, ...]) -> tuple[Any, list[tuple[str, str]]]:
    """Instantiate ``schema`` from ``data``: ``(instance or None, [(relative path, message), ...])``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [("", f"expected a mapping of options, got {_show(data)}")]
    if not isinstance(schema, type):
        hints, broken = {}, tuple(schema_problems(schema))
    else:
        try:
            hints, broken = _checked_schema(schema)
        except Exception as exc:  # a safety net: report, never crash
            hints, broken = {}, (f"{type(exc).__name__}: {exc}",)
    if broken:
        label = getattr(schema, "__name__", _show(schema))
        return None, [("", f"the options schema {label} cannot be checked: {'; '.join(broken)}")]
    fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key, value in data.items():
        if key in ignore:
            continue
        if not isinstance(key, str):
            problems.append((_key_label(key), f"unknown key: option names are strings, got {_show(key)}"))
            continue
        if key not in fields:
            known = sorted(fields)
            hint = (
                migration_hint(key)
                or did_you_mean(key, known)
                or f" Known keys: {', '.join(known) or 'none'}."
            )
            problems.append((f".{key}", f"unknown key.{hint}"))
            continue
        try:
            values[key] = coerce(value, hints[key])
        except TypeError as exc:
            problems += _prefixed(f".{key}", exc)
        except Exception as exc:  # a safety net: a value is a problem to report, never a crash
            problems.append((f".{key}", f"cannot read {_show(value)} ({type(exc).__name__}: {exc})"))
    try:
        return schema(**values), problems
    except (TypeError, ValueError) as exc:  # a range check in __post_init__ (OptionsError)
        problems.append(("", str(exc)))
    except Exception as exc:  # a bug in the schema's __post_init__: still a problem, not a traceback
        problems.append(("", f"{schema.__name__} rejected these options ({type(exc).__name__}: {exc})"))
    return None, problems


def build(schema: type, data: Any, path: str, problems: list[str], ignore: tuple[str, ...] = ()) -> Any:
    """Instantiate dataclass ``schema`` from ``data``; append ``"path.key: message"`` problems."""
    result, found = _build(schema, data, ignore)
    problems.extend(f"{path}{suffix}: {message}" for suffix, message in found)
    return result
