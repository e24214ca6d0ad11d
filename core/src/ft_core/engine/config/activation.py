"""Which plugins act in a run, and why; and the hook relay that calls only theirs.

A plugin's lifecycle hooks act in a run when the plugin is core's own, when the config selects one of its
components (any component section, the chat template, the model family of the base model), when the config sets
its config section (or names it in ``distributed.strategy``), when ``plugins.enable`` names it, or when its
``ft_activate_by_default`` hook returns a reason. ``plugins.disable`` switches a plugin off whatever else says.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ft_core.api.config import RunConfig
from ft_core.api.plan import ActivePlugin
from ft_core.engine.plugins import CORE_DISTRIBUTION, PluginRecord, Plugins

DEFAULT_HOOK = "ft_activate_by_default"


def plugin_key(record: PluginRecord) -> str:
    """The name a plugin module is registered under with pluggy."""
    return f"{record.distribution}:{record.name}"


def is_named(record: PluginRecord, names: Iterable[str]) -> bool:
    """Whether ``names`` (``plugins.enable`` / ``plugins.disable``) name this plugin (by entry-point or distribution
    name)."""
    return bool({record.name, record.distribution} & set(names))


def _registered(record: PluginRecord, kind: str, name: str | None) -> bool:
    return name is not None and name.rsplit(":", 1)[-1] in record.registered.get(kind, [])


def selection_reasons(
    config: RunConfig, record: PluginRecord, family: str | None, template: str | None
) -> list[str]:
    """Why the config itself activates the plugin of ``record`` (``family`` / ``template``: the model family and
    chat template names once known; the config's ``template.name`` before)."""
    reasons = [
        f"selected {selection.section}: {selection.name}"
        for selections in config.selections.values()
        for selection in selections
        if selection.distribution == record.distribution
        and _registered(record, selection.kind, selection.name)
    ]
    template = template or config.template.name
    if _registered(record, "chat_template", template):
        reasons.append(f"chat template {template}")
    if _registered(record, "model_family", family):
        reasons.append(f"model family {family}")
    reasons += [
        f"config section {section}"
        for section in record.registered.get("config_section", [])
        if section in config.raw
    ]
    if config.distributed.strategy in record.registered.get("config_section", []):
        reasons.append(f"distributed.strategy: {config.distributed.strategy}")
    return reasons


def active_plugins(
    config: RunConfig, plugins: Plugins, family: str | None = None, template: str | None = None
) -> tuple[ActivePlugin, ...]:
    """The plugins that act in a run of ``config``, each with its reason, in load order."""
    active = []
    for record in plugins.records:
        if record.status != "loaded" or is_named(record, config.plugins.disable):
            continue
        if record.distribution == CORE_DISTRIBUTION:
            reasons = ["ft-core built-in"]
        elif is_named(record, config.plugins.enable):
            reasons = ["enabled in plugins.enable"]
        else:
            reasons = selection_reasons(config, record, family, template) or _default_reasons(
                config, plugins, record
            )
        if reasons:
            active.append(ActivePlugin(record.name, record.distribution, record.version, "; ".join(reasons)))
    return tuple(active)


def _default_reasons(config: RunConfig, plugins: Plugins, record: PluginRecord) -> list[str]:
    """The plugin's own ``ft_activate_by_default`` answer (only its implementation is called)."""
    if DEFAULT_HOOK not in record.hooks:
        return []
    module = plugins.manager.get_plugin(plugin_key(record))
    others = [plugin for plugin in plugins.manager.get_plugins() if plugin is not module]
    caller = plugins.manager.subset_hook_caller(DEFAULT_HOOK, remove_plugins=others)
    return [f"on by default: {reason}" for reason in caller(config=config) if reason]


def idle_hook_plugins(plugins: Plugins, active: Iterable[ActivePlugin]) -> list[PluginRecord]:
    """Loaded plugins of lifecycle hooks only (they register nothing a config could select) that will not act in
    the run: ``plugins.enable`` does not name them and they do not switch themselves on (the log says so, so a
    silent plugin is explained)."""
    acting = {(plugin.distribution, plugin.name) for plugin in active}
    return [
        record
        for record in plugins.records
        if record.status == "loaded"
        and (record.distribution, record.name) not in acting
        and not any(record.registered.values())
        and any(not hook.startswith("ft_register_") and hook != DEFAULT_HOOK for hook in record.hooks)
    ]


class ActiveHooks:
    """pluggy's hook relay restricted to a run's active plugins: ``hooks.ft_patch_model(model=..., ...)``."""

    def __init__(self, plugins: Plugins, active: Iterable[ActivePlugin]) -> None:
        keep = {f"{plugin.distribution}:{plugin.name}" for plugin in active}
        manager = plugins.manager
        inactive = [
            module for name, module in manager.list_name_plugin() if name not in keep and module is not None
        ]
        for name in _spec_names(manager):
            setattr(self, name, manager.subset_hook_caller(name, remove_plugins=inactive))


def _spec_names(manager: Any) -> list[str]:
    """The names of the hooks that have a specification."""
    return [name for name in vars(manager.hook) if name.startswith("ft_")]
