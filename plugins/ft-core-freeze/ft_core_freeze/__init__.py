"""ft-core plugin: the ``freeze`` adapter method (train a few decoder layers, freeze the rest).

Import-light: torch is imported when the adapter is used, not at registration.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import AdapterMethod, Register, hookimpl
from ft_core_freeze.adapter import FreezeAdapter, FreezeOptions

__all__ = ["FreezeAdapter", "FreezeOptions"]


@hookimpl
def ft_register_adapters(register: Register[AdapterMethod[Any]]) -> None:
    register("freeze", FreezeAdapter())
