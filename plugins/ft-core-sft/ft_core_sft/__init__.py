"""ft-core plugin: the ``sft`` training stage (supervised fine-tuning on chat conversations)."""

from __future__ import annotations

from ft_core.hookspecs import Register, hookimpl
from ft_core_sft.stage import SftStage

__all__ = ["SftStage"]


@hookimpl
def ft_register_stages(register: Register) -> None:
    register("sft", SftStage())
