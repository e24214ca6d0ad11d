"""ft-core plugin: the ``pt`` training stage (continued pretraining on plain text).

Import-light: transformers is imported when the stage builds its collator, not at registration.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import Register, TrainingStage, hookimpl
from ft_core_pt.stage import PtOptions, PtStage

__all__ = ["PtOptions", "PtStage"]


@hookimpl
def ft_register_stages(register: Register[TrainingStage[Any]]) -> None:
    register("pt", PtStage())
