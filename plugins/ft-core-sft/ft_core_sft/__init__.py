"""ft-core plugin: the ``sft`` training stage (supervised fine-tuning on chat conversations).

Import-light: transformers is imported when the stage builds its collator, not at registration.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import Register, TrainingStage, hookimpl
from ft_core_sft.stage import SftStage

__all__ = ["SftStage"]


@hookimpl
def ft_register_stages(register: Register[TrainingStage[Any]]) -> None:
    register("sft", SftStage())
