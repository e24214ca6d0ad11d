"""The plugin manager: loads ``ft_core`` entry points one by one, runs their registration hooks through pluggy and
fills the component registries.

Build one with :func:`build_plugins` (no import-time global state). Each plugin is registered with pluggy on its
own; its registration hooks are called through ``manager.subset_hook_caller`` (pluggy's own dispatch, so
``specname``, ``tryfirst`` and ``wrapper`` hookimpls work), so one broken plugin never takes the others down. A
hookimpl whose name matches no hook spec fails its plugin (with a did-you-mean). A plugin that fails to import or
whose hook raises is recorded as failed (name, version, error) and everything else keeps working; strict mode
(``strict=True`` or ``FT_CORE_STRICT=1``) turns such a failure into a :class:`PluginError`.

Each registration is checked as it is made: its name, its type, and (behaviour components and config sections) its
options schema (:func:`schema_problems`); a bad one fails its plugin, naming the component, the schema and the field.

Name clashes (one name of one kind registered by several distributions) are never last-one-wins. Every registration
stays reachable by its qualified name ``<distribution>:<name>``. The plain name keeps meaning the first-party
registration (distribution ``ft-core`` or ``ft-core-*``) when exactly one of the claimants is first-party — a
warning names both distributions and the qualified name of the other; otherwise the plain name is ambiguous (an
error listing the qualified names when selected; strict mode fails at load).

Lifecycle hooks are called on :attr:`Plugins.hook` (``plugins.hook.ft_patch_model(model=..., run=..., role=...)``).

Environment controls:
``FT_CORE_STRICT=1``            a broken plugin is an error.
``FT_CORE_PLUGINS_ALLOW=a,b``   load only these entry points / distributions (core built-ins always load).
``FT_CORE_PLUGINS_BLOCK=a,b``   never load these entry points / distributions.
``FT_CORE_TRACE=1``             log every hook call and registration (``ft_core.trace``, shown at any verbosity), and
                                tracebacks of failures.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib.metadata as metadata
import inspect
import logging
import os
import re
import sys
import traceback
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal, Union

import pluggy

from ft_core.api import hookspecs
from ft_core.api.components import Component
from ft_core.api.descriptors import ConfigSection
from ft_core.api.errors import ComponentNotFoundError, PluginError, did_you_mean
from ft_core.api.kinds import KINDS, KINDS_BY_KEY, Kind
from ft_core.engine.logs import trace_logger

ENTRY_POINT_GROUP = "ft_core"
CORE_DISTRIBUTION = "ft-core"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
logger = logging.getLogger(__name__)


@dataclass
class Registration:
    """One registered component and who provided it."""

    kind: str
    name: str
    component: Any
    distribution: str
    version: str
    #: The entry point (plugin) that registered it.
    plugin: str = ""

    @property
    def qualified_name(self) -> str:
        """``<distribution>:<name>``: selects this registration even when other distributions use the name."""
        return f"{self.distribution}:{self.name}"


@dataclass
class PluginRecord:
    """What happened to one plugin (entry point) while loading."""

    name: str
    distribution: str
    version: str
    module: str
    status: str = "loaded"  # loaded | failed | blocked
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (``ft-core plugins --json``)."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "status": self.status,
            "error": self.error,
            "hooks": self.hooks,
            "registered": self.registered,
        }


def _env_list(name: str) -> set[str]:
    return {item.strip() for item in os.environ.get(name, "").split(",") if item.strip()}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _spec_names() -> list[str]:
    return sorted(
        n for n in dir(hookspecs) if n.startswith("ft_") and hasattr(getattr(hookspecs, n), "ft_core_spec")
    )


def _warn(message: str) -> None:
    logger.warning(message)


def canonical_distribution(name: str) -> str:
    """A distribution name normalized as pip compares them (``Acme_Stages`` = ``acme-stages``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_first_party(distribution: str) -> bool:
    """Whether ``distribution`` is ft-core itself or one of its own plugins (``ft-core-*``)."""
    canonical = canonical_distribution(distribution)
    return canonical == CORE_DISTRIBUTION or canonical.startswith(f"{CORE_DISTRIBUTION}-")


def _selector_key(kind: str) -> str | None:
    """The config key that names a component of ``kind`` (for messages), if a config names one."""
    spec = KINDS_BY_KEY[kind]
    if spec.section:
        return f"{spec.section}[].{spec.selector}" if spec.many else f"{spec.section}.{spec.selector}"
    return "template.name" if kind == "chat_template" else None


# ------------------------------------------------------------------ options schemas
#: What an options field may be annotated with: what :func:`ft_core.engine.config.typecheck.coerce` checks.
SUPPORTED_OPTION_TYPES = (
    "bool, int, float, str, None, Any, Literal[...] of such values, list[T], tuple[T, ...], dict[str, T], "
    "a union of these (T | None), or a nested options dataclass"
)
_PRIMITIVE_TYPES: tuple[Any, ...] = (bool, int, float, str, type(None))
_LITERAL_VALUE_TYPES = (bool, int, float, str, type(None))


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and typing.get_origin(tp) is None:
        return tp.__qualname__
    return str(tp).replace("typing.", "")


def _literal_key_type(tp: Any) -> bool:
    """Whether ``tp`` may type the keys of a ``dict`` option (config keys are scalars)."""
    if tp in (Any, str, int, bool):
        return True
    origin = typing.get_origin(tp)
    if origin is Literal:
        return all(isinstance(a, (str, int)) and not isinstance(a, enum.Enum) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return all(_literal_key_type(a) for a in typing.get_args(tp))
    return False


def _annotation_problem(tp: Any, stack: tuple[type, ...]) -> str | None:
    """Why annotation ``tp`` is not an option type the config checker supports, or ``None``."""
    if tp is Any or tp in _PRIMITIVE_TYPES or tp in (list, tuple, dict):
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        bad = [a for a in args if not isinstance(a, _LITERAL_VALUE_TYPES) or isinstance(a, enum.Enum)]
        return f"Literal values must be strings, numbers, booleans or None, not {bad[0]!r}" if bad else None
    if origin in (Union, types.UnionType):
        return next((p for p in (_annotation_problem(a, stack) for a in args) if p), None)
    if origin is list:
        return _annotation_problem(args[0], stack) if args else None
    if origin is tuple:
        items = [a for a in args if a is not Ellipsis]
        return next((p for p in (_annotation_problem(a, stack) for a in items) if p), None)
    if origin is dict:
        if not args:
            return None
        if not _literal_key_type(args[0]):
            return f"dict keys must be str (config keys are strings), not {_type_name(args[0])}"
        return _annotation_problem(args[1], stack)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp in stack:
            return f"the nested options dataclass {tp.__qualname__} contains itself"
        nested = schema_problems(tp, _stack=stack)
        return f"nested options {tp.__qualname__}: {'; '.join(nested)}" if nested else None
    return f"{_type_name(tp)} is not an option type ft-core can check (use {SUPPORTED_OPTION_TYPES})"


def _unresolved_annotations(schema: type) -> list[str]:
    """The fields whose string annotation does not evaluate, each with the error (``get_type_hints`` stops at
    the first and names no field)."""
    problems = []
    for klass in reversed(schema.__mro__):
        module = sys.modules.get(klass.__module__)
        global_names = dict(vars(module)) if module is not None else {}
        for name, annotation in inspect.get_annotations(klass).items():
            if not isinstance(annotation, str):
                continue
            try:
                eval(annotation, global_names, dict(vars(klass)))  # what typing.get_type_hints does
            except Exception as exc:
                problems.append(
                    f"field {name!r}: annotation {annotation!r} does not resolve ({type(exc).__name__}: {exc})"
                )
    return problems


def schema_problems(schema: Any, *, _stack: tuple[type, ...] = ()) -> list[str]:
    """What makes ``schema`` unusable as an options schema (``Component.options_schema``,
    ``ConfigSection.schema``); empty when it is fine.

    An options schema is a dataclass whose annotations resolve (``typing.get_type_hints``), each of whose fields
    has a default (a config may leave any option out) and is annotated with a type the config checker supports
    (:data:`SUPPORTED_OPTION_TYPES`). Checked when a plugin registers the component, so that a broken schema fails
    its plugin's load instead of ``ft-core validate``.
    """
    if not (isinstance(schema, type) and dataclasses.is_dataclass(schema)):
        return [f"{schema!r} is not a dataclass: decorate the options class with @dataclasses.dataclass"]
    try:
        hints = typing.get_type_hints(schema)
    except Exception as exc:
        return _unresolved_annotations(schema) or [
            f"its annotations do not resolve ({type(exc).__name__}: {exc})"
        ]
    problems = []
    for item in dataclasses.fields(schema):
        if not item.init:
            continue  # set by the class itself, not an option
        if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            problems.append(
                f"field {item.name!r} has no default: every option needs one (a config may leave it out); "
                "give it a default or a default_factory"
            )
        problem = _annotation_problem(hints.get(item.name, Any), (*_stack, schema))
        if problem:
            problems.append(f"field {item.name!r}: {problem}")
    return problems


def _options_schema(component: Any) -> Any:
    """The options schema of a registered component, or ``None`` for kinds that have none."""
    if isinstance(component, Component):
        return component.options_schema
    if isinstance(component, ConfigSection):
        return component.schema
    return None


class Plugins:
    """Loaded plugins, one registry per component kind, and the pluggy manager whose ``hook`` runs lifecycle hooks."""

    def __init__(self, strict: bool, trace: bool) -> None:
        self.strict = strict
        self.trace = trace
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self._trace = trace_logger(trace)
        if trace:
            self.manager.trace.root.setwriter(lambda text: self._trace.debug(text.rstrip("\n")))
            self.manager.enable_tracing()
        self.records: list[PluginRecord] = []
        #: Per kind, every selectable name: a plain name (a name one distribution registers, or the first-party
        #: registration of a clashing name) or a qualified name ``<distribution>:<name>`` (the other registrations
        #: of a clashing name). Each registration appears once.
        self.registries: dict[str, dict[str, Registration]] = {kind.key: {} for kind in KINDS}
        #: Names (kind, name) registered by more than one distribution, with every registration of each.
        self.clashes: dict[tuple[str, str], list[Registration]] = {}
        self._claims: dict[tuple[str, str], list[Registration]] = {}

    @property
    def hook(self) -> Any:
        """pluggy's hook relay: ``plugins.hook.<lifecycle hook>(**kwargs)``."""
        return self.manager.hook

    # ------------------------------------------------------------------ loading
    def add_module(self, module: ModuleType, record: PluginRecord) -> None:
        """Register ``module`` with pluggy and run its registration hooks (only its own implementations)."""
        self.records.append(record)
        plugin_name = f"{record.distribution}:{record.name}"
        try:
            self.manager.register(module, name=plugin_name)
        except Exception as exc:  # pluggy validation errors (bad signature, bad hookimpl options)
            self._fail(record, f"{type(exc).__name__}: {exc}", exc)
            return
        callers = self.manager.get_hookcallers(module) or []
        record.hooks = sorted(caller.name for caller in callers)
        unknown = [caller.name for caller in callers if not caller.has_spec()]
        if unknown:
            hints = "; ".join(f"{name!r}.{did_you_mean(name, _spec_names())}" for name in unknown)
            self._fail(record, f"implements a hook that ft-core does not define: {hints}")
            return
        others = [p for p in self.manager.get_plugins() if p is not module]
        staged: list[Registration] = []
        rejected: list[str] = []  # what register() refused, even if the plugin's hook swallowed the error
        for kind in KINDS:
            if kind.hook not in record.hooks:
                continue
            caller = self.manager.subset_hook_caller(kind.hook, remove_plugins=others)
            try:
                caller(register=self._collector(kind, record, staged, rejected))
            except Exception as exc:
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                self._fail(record, rejected[0] if rejected else f"{kind.hook} raised {detail}", exc)
                return
            if rejected:
                self._fail(record, rejected[0])
                return
        duplicate = self._duplicate(staged)
        if duplicate:
            self._fail(record, duplicate)
            return
        for registration in staged:
            self._commit(registration, record)

    def _collector(
        self, kind: Kind, record: PluginRecord, staged: list[Registration], rejected: list[str]
    ) -> Any:
        def refuse(message: str) -> PluginError:
            rejected.append(message)
            return PluginError(message)

        def register(name: str, component: Any) -> None:
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise refuse(
                    f"invalid {kind.key} name {name!r}: use lower-case letters, digits, '_', '.', '-'"
                )
            if not isinstance(component, kind.base):
                raise refuse(
                    f"{kind.key} {name!r} must be an instance of ft_core.api.{kind.base.__name__}, "
                    f"got {type(component).__name__}"
                )
            schema = _options_schema(component)
            problems = [] if schema is None else schema_problems(schema)
            if problems:
                label = (
                    f"{schema.__module__}.{schema.__qualname__}" if isinstance(schema, type) else repr(schema)
                )
                raise refuse(
                    f"{kind.singular} {name!r}: its options schema {label} is invalid: {'; '.join(problems)}"
                )
            if self.trace:
                self._trace.debug(f"  {record.distribution} registers {kind.key} {name!r}")
            staged.append(
                Registration(kind.key, name, component, record.distribution, record.version, record.name)
            )

        return register

    def _duplicate(self, staged: list[Registration]) -> str | None:
        """Why ``staged`` cannot be committed: a name registered twice by one distribution (its qualified name
        would be ambiguous), or ``None``."""
        seen: set[tuple[str, str]] = set()
        for registration in staged:
            key = (registration.kind, registration.name)
            singular = KINDS_BY_KEY[registration.kind].singular
            if key in seen:
                return f"registers {singular} {registration.name!r} twice"
            seen.add(key)
            same = canonical_distribution(registration.distribution)
            for other in self._claims.get(key, []):
                if canonical_distribution(other.distribution) == same:
                    return (
                        f"{singular} {registration.name!r} is already registered by plugin {other.plugin!r} of the "
                        f"same distribution {other.distribution}: a distribution registers each name once"
                    )
        return None

    def _commit(self, registration: Registration, record: PluginRecord) -> None:
        key = (registration.kind, registration.name)
        record.registered.setdefault(registration.kind, []).append(registration.name)
        claims = self._claims.setdefault(key, [])
        claims.append(registration)
        registry = self.registries[registration.kind]
        for claim in claims:
            registry.pop(claim.qualified_name, None)
        registry.pop(registration.name, None)
        if len(claims) == 1:
            registry[registration.name] = registration
            return
        self.clashes[key] = claims
        winner = self.clash_winner(key)
        for claim in claims:
            registry[claim.name if claim is winner else claim.qualified_name] = claim

    def clash_winner(self, key: tuple[str, str]) -> Registration | None:
        """The registration that the plain name of a clash selects: the only first-party one; ``None`` when
        the name is ambiguous (no first-party claimant, or several)."""
        first_party = [r for r in self.clashes[key] if is_first_party(r.distribution)]
        return first_party[0] if len(first_party) == 1 else None

    def report_clashes(self) -> None:
        """Warn about every clash once loading is done; in strict mode an ambiguous one is a :class:`PluginError`."""
        for key in sorted(self.clashes):
            message = self.clash_message(key)
            if self.strict and self.clash_winner(key) is None:
                raise PluginError(message)
            _warn(message)

    def clash_message(self, key: tuple[str, str]) -> str:
        """Explain a name that several distributions registered: which one the plain name selects (if any) and
        how to select each by its qualified name."""
        kind, name = key
        spec = KINDS_BY_KEY[kind]
        claims = self.clashes[key]
        where = _selector_key(kind)
        winner = self.clash_winner(key)
        others = [r for r in claims if r is not winner]
        owners = " and by ".join(
            f"{r.distribution} {r.version}" for r in ([winner] if winner else []) + others
        )
        if winner is not None:
            qualified = ", ".join(repr(r.qualified_name) for r in others)
            example = f' (e.g. `{where}: "{others[0].qualified_name}"`)' if where else ""
            return (
                f"{spec.singular} {name!r} is registered by more than one distribution: by {owners}. {name!r} keeps "
                f"selecting the first-party {winner.distribution}'s; select the other by its qualified name "
                f"{qualified}{example}."
            )
        qualified = ", ".join(repr(r.qualified_name) for r in claims)
        return (
            f"{spec.singular} {name!r} is registered by more than one distribution: by {owners}. The name alone is "
            f"ambiguous: select one by its qualified name ({qualified})"
            + (f" in {where}" if where else "")
            + ", or block one with FT_CORE_PLUGINS_BLOCK=<distribution>."
        )

    def _fail(self, record: PluginRecord, error: str, exc: BaseException | None = None) -> None:
        record.status = "failed"
        record.error = error
        module = self.manager.get_plugin(f"{record.distribution}:{record.name}")
        if module is not None:
            self.manager.unregister(module)
        if self.trace and exc is not None:
            self._trace.debug(f"plugin {record.name!r} failed to load", exc_info=exc)
        message = f"plugin {record.name!r} ({record.distribution} {record.version}) failed to load: {error}"
        if self.strict:
            raise PluginError(message)
        _warn(f"{message}; it is disabled")

    # ------------------------------------------------------------------ lookup
    def names(self, kind: str) -> list[str]:
        """Every selectable name of ``kind``: plain names, then the qualified names ``<distribution>:<name>`` of
        the registrations whose plain name is ambiguous or selects another distribution's (sorted)."""
        return sorted(self.registries[kind], key=lambda n: (":" in n, n))

    def registration(self, kind: str, name: str) -> Registration:
        """Resolve ``name`` (plain, or qualified ``<distribution>:<name>``) to exactly one registration, or raise
        a helpful error."""
        if ":" in name:
            distribution, _, plain = name.partition(":")
            wanted = canonical_distribution(distribution)
            for claim in self._claims.get((kind, plain), []):
                if canonical_distribution(claim.distribution) == wanted:
                    return claim
            raise ComponentNotFoundError(self.unknown_message(kind, name))
        registry = self.registries[kind]
        if name in registry:
            return registry[name]
        if (kind, name) in self.clashes:
            raise PluginError(self.clash_message((kind, name)))
        raise ComponentNotFoundError(self.unknown_message(kind, name))

    def get(self, kind: str, name: str) -> Any:
        """The component registered as ``name`` (plain or ``<distribution>:<name>``) for ``kind``."""
        return self.registration(kind, name).component

    def unknown_message(self, kind: str, name: str) -> str:
        """Explain an unknown name: what is available, from where, did-you-mean, what to install; plugins that
        are blocked or failed and might have provided it."""
        spec = KINDS_BY_KEY[kind]
        registry = self.registries[kind]
        available = (
            ", ".join(f"{n} ({registry[n].distribution})" for n in self.names(kind)) or "none installed"
        )
        candidates = {
            *registry,
            *(r.qualified_name for (k, _), claims in self._claims.items() if k == kind for r in claims),
        }
        message = f"unknown {spec.singular} {name!r}.{did_you_mean(name, sorted(candidates))}"
        if ":" in name:
            distribution, _, plain = name.partition(":")
            claims = self._claims.get((kind, plain), [])
            if claims:
                owners = ", ".join(f"{r.distribution} ({r.qualified_name})" for r in claims)
                message += (
                    f" No distribution {distribution!r} registers {plain!r}; it is registered by {owners}."
                )
        message += f" Available: {available}."
        blocked = [r for r in self.records if r.status == "blocked"]
        failed = [r for r in self.records if r.status == "failed" and (not r.hooks or spec.hook in r.hooks)]
        if blocked:
            message += (
                " Installed but not loaded (FT_CORE_PLUGINS_BLOCK / FT_CORE_PLUGINS_ALLOW): "
                + ", ".join(f"{r.name} ({r.distribution})" for r in blocked)
                + "; unblock the one that provides it."
            )
        if failed:
            message += " Plugins that failed to load and may provide it: " + ", ".join(
                f"{r.name} ({r.distribution}: {r.error})" for r in failed
            )
        if not blocked and not failed:
            message += (
                f" If a plugin provides this {spec.singular}, install it with pip (ft-core's own plugins are named "
                "ft-core-<name>); `ft-core plugins` lists what is installed."
            )
        return message


def _distribution_of(entry_point: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return "unknown", "unknown"
    return dist.metadata["Name"], dist.version


def core_version() -> str:
    """The installed ft-core version (``0+source`` when running from a source tree)."""
    try:
        return metadata.version(CORE_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+source"


def build_plugins(
    *,
    strict: bool | None = None,
    entry_points: bool = True,
    builtins: Sequence[ModuleType] = (),
    extra: Sequence[tuple[ModuleType, str]] = (),
    allow: Iterable[str] | None = None,
    block: Iterable[str] | None = None,
    trace: bool | None = None,
) -> Plugins:
    """Build a plugin manager and fill every registry.

    ``builtins`` are core's own plugin modules (the composition root passes them; distribution ``ft-core``).
    ``entry_points=False`` skips installed plugins (tests use it with ``extra`` to load only the plugin under
    test); ``extra`` is a list of ``(module, distribution_name)`` loaded as if they were entry points — a module
    already loaded from its entry point is not loaded twice.
    """
    plugins = Plugins(
        strict=_env_flag("FT_CORE_STRICT") if strict is None else strict,
        trace=_env_flag("FT_CORE_TRACE") if trace is None else trace,
    )
    allowed = set(allow) if allow is not None else _env_list("FT_CORE_PLUGINS_ALLOW")
    blocked = set(block) if block is not None else _env_list("FT_CORE_PLUGINS_BLOCK")
    for module in builtins:
        name = module.__name__.rsplit(".", 1)[-1]
        plugins.add_module(module, PluginRecord(name, CORE_DISTRIBUTION, core_version(), module.__name__))
    if entry_points:
        found = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        known = {name for e in found for name in (e.name, _distribution_of(e)[0])}
        for listed, variable in ((blocked, "FT_CORE_PLUGINS_BLOCK"), (allowed, "FT_CORE_PLUGINS_ALLOW")):
            for name in sorted(listed - known):
                _warn(
                    f"{variable} names {name!r}, which is no installed plugin or distribution."
                    f"{did_you_mean(name, known)}"
                )
        for entry_point in found:
            distribution, version = _distribution_of(entry_point)
            record = PluginRecord(entry_point.name, distribution, version, entry_point.value)
            if {entry_point.name, distribution} & blocked or (
                allowed and not {entry_point.name, distribution} & allowed
            ):
                record.status = "blocked"
                plugins.records.append(record)
                continue
            if any(r.name == record.name and r.distribution == distribution for r in plugins.records):
                continue  # the same distribution seen twice on sys.path
            try:
                module = entry_point.load()
            except Exception as exc:
                plugins.records.append(record)
                plugins._fail(record, "".join(traceback.format_exception_only(type(exc), exc)).strip(), exc)
                continue
            plugins.add_module(module, record)
    for module, distribution in extra:
        if plugins.manager.is_registered(module):
            continue  # already loaded from its entry point (the plugin is pip-installed)
        name = module.__name__.rsplit(".", 1)[-1]
        plugins.add_module(module, PluginRecord(name, distribution, "test", module.__name__))
    plugins.report_clashes()
    return plugins
