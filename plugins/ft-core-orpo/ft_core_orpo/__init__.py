"""ft-core plugin: the ``orpo`` training stage (Odds Ratio Preference Optimization with TRL's experimental
ORPOTrainer).

Import-light: TRL and torch are imported when the stage builds its trainer, not at registration.
"""

from __future__ import annotations

from ft_core.api import Register, hookimpl
from ft_core_orpo.stage import OrpoOptions, OrpoStage

__all__ = ["OrpoOptions", "OrpoStage"]


@hookimpl
def ft_register_stages(register: Register) -> None:
    register("orpo", OrpoStage())
