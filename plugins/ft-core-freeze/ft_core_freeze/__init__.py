"""ft-core plugin: the ``freeze`` adapter method (train a few decoder layers, freeze the rest).

Import-light: torch is imported when the adapter is used, not at registration.
"""

from __future__ import annotations

from ft_core.hookspecs import Register, hookimpl
from ft_core_freeze.adapter import FreezeAdapter, FreezeOptions

__all__ = ["FreezeAdapter", "FreezeOptions"]


@hookimpl
def ft_register_adapters(register: Register) -> None:
    register("freeze", FreezeAdapter())
