"""ft-core plugin: ``ft-core export RUN_DIR``: merge a run's adapter into its base model and write a plain
Hugging Face model folder (safetensors shards, tokenizer, chat template), optionally a GGUF file too.

Import-light: torch, transformers and peft are imported when the command runs, not at registration.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import CliCommand, Register, hookimpl
from ft_core_export.command import ExportCommand

__all__ = ["ExportCommand"]


@hookimpl
def ft_register_cli_commands(register: Register[CliCommand[Any]]) -> None:
    register("export", ExportCommand())
