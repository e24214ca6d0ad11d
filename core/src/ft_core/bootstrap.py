"""The composition root: builds the plugin manager with core's own built-in plugins, then the installed ones."""

from __future__ import annotations

from typing import Any

from ft_core import builtin
from ft_core.api.services import Services
from ft_core.engine.plugins import Plugins, build_plugins
from ft_core.engine.run import sinks

#: Core's own plugin modules (distribution ``ft-core``): components, commands and the run-event consumers.
BUILTIN_PLUGINS = (builtin, sinks)


def engine_services(plugins: Plugins) -> Services:
    """The :class:`~ft_core.api.services.Services` commands get as ``args.services``."""
    from ft_core.engine.inference.services import EngineServices

    return EngineServices(plugins)


def load_trained_model(run_dir: str, *, dtype: str = "auto", add_heads: Any = None) -> tuple[Any, Any]:
    """A finished run's trained model with its head (eval mode) and its tokenizer, for scoring or generation
    (``add_heads``: re-adds a stage's custom head modules before their weights load)."""
    from ft_core.engine.inference.target import load_trained_model as load

    return load(run_dir, load_plugins(), dtype=dtype, add_heads=add_heads)


def load_plugins(**kwargs: Any) -> Plugins:
    """:func:`~ft_core.engine.plugins.build_plugins` with core's built-ins (same keyword arguments)."""
    return build_plugins(builtins=BUILTIN_PLUGINS, **kwargs)
