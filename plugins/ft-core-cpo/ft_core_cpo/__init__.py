"""ft-core plugin: the ``cpo`` and ``simpo`` training stages (reference-free preference optimization with TRL's
experimental CPOTrainer).

Import-light: TRL and torch are imported when a stage builds its trainer, not at registration.
"""

from __future__ import annotations

from ft_core.api import Register, hookimpl
from ft_core_cpo.stage import CpoOptions, CpoStage, SimpoOptions, SimpoStage

__all__ = ["CpoOptions", "CpoStage", "SimpoOptions", "SimpoStage"]


@hookimpl
def ft_register_stages(register: Register) -> None:
    register("cpo", CpoStage())
    register("simpo", SimpoStage())
