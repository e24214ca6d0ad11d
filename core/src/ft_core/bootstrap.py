"""The composition root: builds the plugin manager with core's own built-in plugins, then the installed ones."""

from __future__ import annotations

from typing import Any

from ft_core import builtin
from ft_core.engine.plugins import Plugins, build_plugins
from ft_core.engine.run import sinks

#: Core's own plugin modules (distribution ``ft-core``): components, commands and the run-event consumers.
BUILTIN_PLUGINS = (builtin, sinks)


def load_plugins(**kwargs: Any) -> Plugins:
    """:func:`~ft_core.engine.plugins.build_plugins` with core's built-ins (same keyword arguments)."""
    return build_plugins(builtins=BUILTIN_PLUGINS, **kwargs)
