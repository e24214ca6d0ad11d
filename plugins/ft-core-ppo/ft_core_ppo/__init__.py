"""ft-core plugin: the ``ppo`` training stage (Proximal Policy Optimization with a value head, GAE and an adaptive
KL penalty, rewarded by an ``rm`` run or by reward functions).

Import-light: torch, transformers and PEFT are imported when the stage builds its trainer, not at registration.
"""

from __future__ import annotations

from ft_core.api import Register, hookimpl
from ft_core_ppo.stage import PpoOptions, PpoStage

__all__ = ["PpoOptions", "PpoStage"]


@hookimpl
def ft_register_stages(register: Register) -> None:
    register("ppo", PpoStage())
