"""ft-core plugin: the ``rm`` training stage (a pairwise reward model trained with TRL's RewardTrainer).

Import-light: TRL, torch and PEFT are imported when the stage builds its trainer, not at registration.
"""

from __future__ import annotations

from ft_core.api import Register, hookimpl
from ft_core_rm.stage import RmOptions, RmStage

__all__ = ["RmOptions", "RmStage"]


@hookimpl
def ft_register_stages(register: Register) -> None:
    register("rm", RmStage())
