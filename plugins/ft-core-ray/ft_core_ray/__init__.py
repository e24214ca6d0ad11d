"""ft-core-ray: ``ft-core ray-run CONFIG``, a Ray Train launcher for clusters that run Ray (LLaMA-Factory's
``USE_RAY=1``).

The entry-point module: registers the ``ray-run`` CLI command. Import-light (ray loads when the command runs).
"""

from __future__ import annotations

from typing import Any

from ft_core.api import CliCommand, Register, hookimpl
from ft_core_ray.command import RayRunCommand

__all__ = ["RayRunCommand", "ft_register_cli_commands"]


@hookimpl
def ft_register_cli_commands(register: Register[CliCommand[Any]]) -> None:
    """Register ``ft-core ray-run``."""
    register("ray-run", RayRunCommand())
