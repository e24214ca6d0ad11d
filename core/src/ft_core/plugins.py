"""The plugin manager: loads ``ft_core`` entry points one by one and fills the component registries.

Build one with :func:`build_plugins` (no import-time global state). A plugin that fails to import or whose
hook raises is recorded as failed (name, version, error) and everything else keeps working; strict mode
(``strict=True`` or ``FT_CORE_STRICT=1``) turns such a failure into a :class:`PluginError`.

Environment controls:
``FT_CORE_STRICT=1``            a broken plugin is an error.
``FT_CORE_PLUGINS_ALLOW=a,b``   load only these entry points / distributions (core built-ins always load).
``FT_CORE_PLUGINS_BLOCK=a,b``   never load these entry points / distributions.
``FT_CORE_TRACE=1``             print every hook call and registration to stderr.
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

from ft_core import hookspecs
from ft_core.components import KINDS, KINDS_BY_KEY, Kind
from ft_core.errors import ComponentNotFoundError, PluginError, did_you_mean

ENTRY_POINT_GROUP = "ft_core"
CORE_DISTRIBUTION = "ft-core"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")

#: First-party plugin distributions per kind and name, so an unknown name can say what to install.
KNOWN_DISTRIBUTIONS: dict[str, dict[str, str]] = {
    "chat_template": {
        **{n: "ft-core-templates-generic" for n in ("default", "alpaca", "vicuna", "chatml", "empty")},
        "llama2": "ft-core-llama",
        "llama3": "ft-core-llama",
        "qwen": "ft-core-qwen",
    },
    "model_family": {"llama": "ft-core-llama", "qwen": "ft-core-qwen"},
    "adapter": {"lora": "ft-core-lora", "freeze": "ft-core-freeze", "full": "ft-core-full"},
    "stage": {"sft": "ft-core-sft", "pt": "ft-core-pt"},
    "optimizer": {"adamw": "ft-core-adamw"},
    "logger": {"tensorboard": "ft-core-tensorboard"},
}


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


class Plugins:
    """Loaded plugins plus one registry per component kind."""

    def __init__(self, strict: bool, trace: bool) -> None:
        self.strict = strict
        self.trace = trace
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.records: list[PluginRecord] = []
        self.registries: dict[str, dict[str, Registration]] = {kind.key: {} for kind in KINDS}
        #: Names registered by more than one distribution: usable by neither until one is removed.
        self.conflicts: dict[tuple[str, str], list[Registration]] = {}

    # ------------------------------------------------------------------ loading
    def add_module(self, module: ModuleType, record: PluginRecord) -> None:
        """Register ``module``'s hook implementations and run its registration hooks."""
        self.records.append(record)
        try:
            self.manager.register(module, name=f"{record.distribution}:{record.name}")
        except Exception as exc:  # pluggy validation errors (unknown hook, bad signature)
            self._fail(record, f"{type(exc).__name__}: {exc}")
            return
        record.hooks = sorted(
            impl.name for impl in self.manager.get_hookcallers(module) or [] if impl.name.startswith("ft_")
        )
        staged: list[Registration] = []
        for kind in KINDS:
            function = getattr(module, kind.hook, None)
            if function is None or kind.hook not in record.hooks:
                continue
            if self.trace:
                print(
                    f"[ft-core trace] {record.distribution}:{record.name} -> {kind.hook}()", file=sys.stderr
                )
            try:
                function(register=self._collector(kind, record, staged))
            except Exception as exc:
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                self._fail(record, f"{kind.hook} raised {detail}")
                return
        for registration in staged:
            self._commit(registration, record)

    def _collector(self, kind: Kind, record: PluginRecord, staged: list[Registration]):
        def register(name: str, component: Any) -> None:
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise PluginError(
                    f"invalid {kind.key} name {name!r}: use lower-case letters, digits, '_', '.', '-'"
                )
            if not isinstance(component, kind.base):
                raise PluginError(
                    f"{kind.key} {name!r} must be an instance of ft_core.components.{kind.base.__name__}, "
                    f"got {type(component).__name__}"
                )
            if self.trace:
                print(f"[ft-core trace]   register {kind.key} {name!r}", file=sys.stderr)
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

    def _fail(self, record: PluginRecord, error: str) -> None:
        record.status = "failed"
        record.error = error
        module = self.manager.get_plugin(f"{record.distribution}:{record.name}")
        if module is not None:
            self.manager.unregister(module)
        if self.strict:
            raise PluginError(
                f"plugin {record.name!r} from {record.distribution} {record.version} failed to load: {error}"
            )
        print(
            f"ft-core: warning: plugin {record.name!r} ({record.distribution} {record.version}) failed to load "
            f"and is disabled: {error}",
            file=sys.stderr,
        )

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
        """Explain an unknown name: what is available, from where, did-you-mean, what to install."""
        singular = KINDS_BY_KEY[kind].singular
        registry = self.registries[kind]
        available = (
            ", ".join(f"{n} ({registry[n].distribution})" for n in sorted(registry)) or "none installed"
        )
        message = f"unknown {singular} {name!r}.{did_you_mean(name, registry)}"
        message += f" Available: {available}."
        install = KNOWN_DISTRIBUTIONS.get(kind, {}).get(name)
        failed = [r for r in self.records if r.status == "failed"]
        if install:
            message += f" It is provided by the plugin distribution {install}: pip install {install}"
        if failed:
            message += " Note: failed plugins: " + ", ".join(f"{r.name} ({r.distribution})" for r in failed)
        return message


def _distribution_of(entry_point: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return "unknown", "unknown"
    return dist.metadata["Name"], dist.version


def _core_version() -> str:
    try:
        return metadata.version(CORE_DISTRIBUTION)
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0+source"


def build_plugins(
    *,
    strict: bool | None = None,
    entry_points: bool = True,
    builtins: bool = True,
    extra: Sequence[tuple[ModuleType, str]] = (),
    allow: Iterable[str] | None = None,
    block: Iterable[str] | None = None,
    trace: bool | None = None,
) -> Plugins:
    """Build a plugin manager and fill every registry.

    ``entry_points=False`` skips installed plugins (tests use it with ``extra`` to load only the plugin
    under test); ``extra`` is a list of ``(module, distribution_name)`` loaded as if they were entry points.
    """
    plugins = Plugins(
        strict=_env_flag("FT_CORE_STRICT") if strict is None else strict,
        trace=_env_flag("FT_CORE_TRACE") if trace is None else trace,
    )
    allowed = set(allow) if allow is not None else _env_list("FT_CORE_PLUGINS_ALLOW")
    blocked = set(block) if block is not None else _env_list("FT_CORE_PLUGINS_BLOCK")
    if builtins:
        from ft_core import builtin

        plugins.add_module(
            builtin, PluginRecord("builtin", CORE_DISTRIBUTION, _core_version(), builtin.__name__)
        )
    if entry_points:
        for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
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
                plugins._fail(record, "".join(traceback.format_exception_only(type(exc), exc)).strip())
                continue
            plugins.add_module(module, record)
    for module, distribution in extra:
        name = module.__name__.rsplit(".", 1)[-1]
        plugins.add_module(module, PluginRecord(name, distribution, "test", module.__name__))
    return plugins
