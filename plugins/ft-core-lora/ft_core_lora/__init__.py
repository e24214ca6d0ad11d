"""ft-core plugin: the ``lora`` adapter method (LoRA, rsLoRA, DoRA through PEFT).

Import-light: torch and peft are imported when the adapter is used, not at registration.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import AdapterMethod, Register, hookimpl
from ft_core_lora.adapter import LoraAdapter, LoraOptions

__all__ = ["LoraAdapter", "LoraOptions"]


@hookimpl
def ft_register_adapters(register: Register[AdapterMethod[Any]]) -> None:
    register("lora", LoraAdapter())
