"""Fixtures of the ft-core-eval tests: the arguments the CLI hands to a command."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import pytest

import ft_core_eval


@pytest.fixture(scope="session")
def eval_plugins() -> Any:
    from ft_core.bootstrap import load_plugins

    return load_plugins(strict=True, entry_points=False, extra=[(ft_core_eval, "ft-core-eval")])


@pytest.fixture
def command_args(eval_plugins: Any) -> Callable[..., argparse.Namespace]:
    """``command_args("predict", [argv...])``: the namespace the CLI gives the command, with its services."""
    from ft_core.bootstrap import engine_services

    def make(command: str, argv: list[str]) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        eval_plugins.get("cli_command", command).add_arguments(parser)
        args = parser.parse_args(argv)
        args.command, args.plugins, args.services = command, eval_plugins, engine_services(eval_plugins)
        return args

    return make
