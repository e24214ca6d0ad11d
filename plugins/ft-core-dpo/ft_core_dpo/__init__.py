"""ft-core plugin: the ``dpo`` training stage (Direct Preference Optimization with TRL's DPOTrainer).

Import-light: TRL, torch and PEFT are imported when the stage builds its trainer, not at registration.
"""

from __future__ import annotations

from ft_core.api import Register, hookimpl
from ft_core_dpo.stage import DpoOptions, DpoStage

__all__ = ["DpoOptions", "DpoStage"]


@hookimpl
def ft_register_stages(register: Register) -> None:
    register("dpo", DpoStage())
