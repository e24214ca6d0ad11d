"""The component names the board's forms offer, read off the plugin manager."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Choices:
    """Component names the forms offer (from the loaded plugin manager)."""

    templates: list[str] = field(default_factory=lambda: ["auto"])
    stages: list[str] = field(default_factory=lambda: ["sft"])
    adapters: list[str] = field(default_factory=lambda: ["lora"])
    quantizers: list[str] = field(default_factory=lambda: ["none"])
    commands: list[str] = field(default_factory=list)


def choices_from(plugins: Any) -> Choices:
    """The registered names per kind, read off the plugin manager the CLI hands to commands."""

    def names(kind: str) -> list[str]:
        try:
            return list(plugins.names(kind))
        except (AttributeError, KeyError, TypeError):
            return []

    return Choices(
        templates=["auto", *names("chat_template")],
        stages=names("stage") or ["sft"],
        adapters=names("adapter") or ["lora"],
        quantizers=["none", *names("quantizer")],
        commands=names("cli_command"),
    )
