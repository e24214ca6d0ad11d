"""ft-core-serve: ``ft-core serve RUN_DIR | MODEL``, an OpenAI-compatible API server for trained runs.

The entry-point module: registers the ``serve`` CLI command. Import-light (FastAPI, uvicorn and torch load when
the command runs).
"""

from __future__ import annotations

from typing import Any

from ft_core.api import CliCommand, Register, hookimpl
from ft_core_serve.command import ServeCommand

__all__ = ["ServeCommand", "ft_register_cli_commands"]


@hookimpl
def ft_register_cli_commands(register: Register[CliCommand[Any]]) -> None:
    """Register ``ft-core serve``."""
    register("serve", ServeCommand())
