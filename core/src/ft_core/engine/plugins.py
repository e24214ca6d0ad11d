"""The plugin manager: loads ``ft_core`` entry points one by one, runs their registration hooks through pluggy and
fills the component registries.

Build one with :func:`build_plugins` (no import-time global state). Each plugin is registered with pluggy on its
own; its registration hooks are called through ``manager.subset_hook_caller`` (pluggy's own dispatch, so
``specname``, ``tryfirst`` and ``wrapper`` hookimpls work), so one broken plugin never takes the others down. A
hookimpl whose name matches no hook spec fails its plugin (with a did-you-mean). A plugin that fails to import or
whose hook raises is recorded as failed (name, version, error) and everything else keeps working; strict mode
(``strict=True`` or ``FT_CORE_STRICT=1``) turns such a failure into a :class:`PluginError`.

Lifecycle hooks are called on :attr:`Plugins.hook` (``plugins.hook.ft_patch_model(model=..., run=..., role=...)``).

Environment controls:
``FT_CORE_STRICT=1``            a broken plugin is an error.
``FT_CORE_PLUGINS_ALLOW=a,b``   load only these entry points / distributions (core built-ins always load).
``FT_CORE_PLUGINS_BLOCK=a,b``   never load these entry points / distributions.
``FT_CORE_TRACE=1``             print every hook call and registration to stderr, and tracebacks of failures.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from ft_core.api import hookspecs
from ft_core.api.errors import ComponentNotFoundError, PluginError, did_you_mean
from ft_core.api.kinds import KINDS, KINDS_BY_KEY, Kind

ENTRY_POINT_GROUP = "ft_core"
CORE_DISTRIBUTION = "ft-core"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass
class Registration:
    """One registered component and who provided it."""

    kind: str
    name: str
    component: Any
    distribution: str
    version: str


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


class Plugins:
    """Loaded plugins, one registry per component kind, and the pluggy manager whose ``hook`` runs lifecycle hooks."""

    def __init__(self, strict: bool, trace: bool) -> None:
        self.strict = strict
        self.trace = trace
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        if trace:
            self.manager.trace.root.setwriter(
                lambda text: print(f"[ft-core trace] {text}", end="", file=sys.stderr)
            )
            self.manager.enable_tracing()
        self.records: list[PluginRecord] = []
        self.registries: dict[str, dict[str, Registration]] = {kind.key: {} for kind in KINDS}
        #: Names registered by more than one distribution: usable by neither until one is removed.
        self.conflicts: dict[tuple[str, str], list[Registration]] = {}

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
        for kind in KINDS:
            if kind.hook not in record.hooks:
                continue
            caller = self.manager.subset_hook_caller(kind.hook, remove_plugins=others)
            try:
                caller(register=self._collector(kind, record, staged))
            except Exception as exc:
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                self._fail(record, f"{kind.hook} raised {detail}", exc)
                return
        for registration in staged:
            self._commit(registration, record)

    def _collector(self, kind: Kind, record: PluginRecord, staged: list[Registration]) -> Any:
        def register(name: str, component: Any) -> None:
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise PluginError(
                    f"invalid {kind.key} name {name!r}: use lower-case letters, digits, '_', '.', '-'"
                )
            if not isinstance(component, kind.base):
                raise PluginError(
                    f"{kind.key} {name!r} must be an instance of ft_core.api.{kind.base.__name__}, "
                    f"got {type(component).__name__}"
                )
            if self.trace:
                print(
                    f"[ft-core trace]   {record.distribution} registers {kind.key} {name!r}", file=sys.stderr
                )
            staged.append(Registration(kind.key, name, component, record.distribution, record.version))

        return register

    def _commit(self, registration: Registration, record: PluginRecord) -> None:
        registry = self.registries[registration.kind]
        key = (registration.kind, registration.name)
        record.registered.setdefault(registration.kind, []).append(registration.name)
        existing = registry.pop(registration.name, None)
        if existing is None and key not in self.conflicts:
            registry[registration.name] = registration
            return
        claimants = self.conflicts.setdefault(key, [existing] if existing else [])
        claimants.append(registration)
        message = self.conflict_message(key)
        if self.strict:
            raise PluginError(message)
        print(f"ft-core: warning: {message}", file=sys.stderr)

    def conflict_message(self, key: tuple[str, str]) -> str:
        """Explain a name that several distributions registered (neither is used)."""
        kind, name = key
        owners = " and by ".join(f"{r.distribution} {r.version}" for r in self.conflicts[key])
        return (
            f"{KINDS_BY_KEY[kind].singular} {name!r} is registered twice: by {owners}. Neither is used: uninstall "
            "one of them, or block one with FT_CORE_PLUGINS_BLOCK=<distribution>."
        )

    def _fail(self, record: PluginRecord, error: str, exc: BaseException | None = None) -> None:
        record.status = "failed"
        record.error = error
        module = self.manager.get_plugin(f"{record.distribution}:{record.name}")
        if module is not None:
            self.manager.unregister(module)
        if self.trace and exc is not None:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        message = f"plugin {record.name!r} ({record.distribution} {record.version}) failed to load: {error}"
        if self.strict:
            raise PluginError(message)
        print(f"ft-core: warning: {message}; it is disabled", file=sys.stderr)

    # ------------------------------------------------------------------ lookup
    def names(self, kind: str) -> list[str]:
        """Registered names of ``kind``, sorted."""
        return sorted(self.registries[kind])

    def registration(self, kind: str, name: str) -> Registration:
        """Resolve ``name`` to exactly one registration, or raise a helpful error."""
        registry = self.registries[kind]
        if name in registry:
            return registry[name]
        if (kind, name) in self.conflicts:
            raise PluginError(self.conflict_message((kind, name)))
        raise ComponentNotFoundError(self.unknown_message(kind, name))

    def get(self, kind: str, name: str) -> Any:
        """The component registered as ``name`` for ``kind``."""
        return self.registration(kind, name).component

    def unknown_message(self, kind: str, name: str) -> str:
        """Explain an unknown name: what is available, from where, did-you-mean, what to install; plugins that
        are blocked or failed and might have provided it."""
        spec = KINDS_BY_KEY[kind]
        registry = self.registries[kind]
        available = (
            ", ".join(f"{n} ({registry[n].distribution})" for n in sorted(registry)) or "none installed"
        )
        message = f"unknown {spec.singular} {name!r}.{did_you_mean(name, registry)} Available: {available}."
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
                print(
                    f"ft-core: warning: {variable} names {name!r}, which is no installed plugin or distribution."
                    f"{did_you_mean(name, known)}",
                    file=sys.stderr,
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
    return plugins
