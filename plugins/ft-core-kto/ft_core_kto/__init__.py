"""ft-core plugin: the ``kto`` training stage (Kahneman-Tversky Optimization with TRL's KTOTrainer).

Import-light: TRL, torch and PEFT are imported when the stage builds its trainer, not at registration.
"""

from __future__ import annotations

from ft_core.api import Register, hookimpl
from ft_core_kto.stage import KtoOptions, KtoStage

__all__ = ["KtoOptions", "KtoStage"]


@hookimpl
def ft_register_stages(register: Register) -> None:
    register("kto", KtoStage())
