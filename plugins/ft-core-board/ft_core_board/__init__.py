"""ft-core plugin: ``ft-core board``, a browser UI (Gradio) to build a config from forms, validate it, train, follow
the run live, cancel / resume it, chat with the result and export it.

Import-light: gradio is imported when the command runs, not at registration.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import CliCommand, Register, hookimpl
from ft_core_board.command import BoardCommand

__all__ = ["BoardCommand", "ft_register_cli_commands"]


@hookimpl
def ft_register_cli_commands(register: Register[CliCommand[Any]]) -> None:
    """Register ``ft-core board``."""
    register("board", BoardCommand())
