"""``ft-core run`` and ``ft-core validate``."""

from __future__ import annotations

import argparse
from typing import ClassVar

from ft_core.components import CliCommand


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the YAML config file")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. training.max_steps=5"
    )


class RunCommand(CliCommand):
    help: ClassVar[str] = (
        "validate a config, then train (resumes from the newest checkpoint when there is one)"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _config_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.run.runner import load_and_validate, run_training

        config, plugins = load_and_validate(args.config, args.overrides, args.plugins)
        run_training(config, plugins)
        return 0


class ValidateCommand(CliCommand):
    help: ClassVar[str] = "check a config (keys, types, component names, datasets) without loading any model"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _config_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.run.runner import load_and_validate

        config, _ = load_and_validate(args.config, args.overrides, args.plugins)
        chosen = ", ".join(
            f"{s.section}={s.name} ({s.distribution})"
            for selections in config.selections.values()
            for s in selections
        )
        print(f"{args.config}: OK ({chosen})")
        return 0
