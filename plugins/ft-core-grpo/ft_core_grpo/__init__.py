"""ft-core plugin: the ``grpo`` training stage (online RL from reward functions with TRL's GRPOTrainer).

Import-light: TRL, torch and PEFT are imported when the stage builds its trainer, not at registration.
"""

from __future__ import annotations

from ft_core.api import Register, hookimpl
from ft_core_grpo.stage import GrpoOptions, GrpoStage

__all__ = ["GrpoOptions", "GrpoStage"]


@hookimpl
def ft_register_stages(register: Register) -> None:
    register("grpo", GrpoStage())
