"""ft-core plugin: the ``pt`` training stage (continued pretraining on plain text)."""

from __future__ import annotations

from ft_core.hookspecs import Register, hookimpl
from ft_core_pt.stage import PtStage


@hookimpl
def ft_register_stages(register: Register) -> None:
    register("pt", PtStage())
