"""The ``ft-core`` console script. Sub-commands come from the ``cli_command`` registry (core's own included).

Import-light: parsing arguments and listing plugins never imports torch or transformers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ft_core import __version__
from ft_core.api.errors import FtCoreError, PluginError


def build_parser(plugins) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ft-core",
        description="Fine-tune large language models. Run `ft-core plugins` to see what is installed.",
    )
    parser.add_argument("--version", action="version", version=f"ft-core {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in plugins.names("cli_command"):
        registration = plugins.registration("cli_command", name)
        command = registration.component
        sub = commands.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for user errors, with a message and no traceback)."""
    from ft_core.bootstrap import load_plugins

    argv_list = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            plugins = load_plugins()
        except PluginError:
            if not argv_list or argv_list[0] != "plugins":
                raise
            plugins = load_plugins(strict=False)  # the diagnostic command lists first, then exits non-zero
        parser = build_parser(plugins)
        args = parser.parse_args(argv)
        if getattr(args, "_command", None) is None:
            parser.print_help()
            return 0
        args.plugins = plugins
        return int(args._command.run(args) or 0)
    except FtCoreError as exc:
        print(f"ft-core: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ft-core: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
