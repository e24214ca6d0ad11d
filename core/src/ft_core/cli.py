"""The ``ft-core`` console script. Sub-commands come from the ``cli_command`` registry (core's own included).

Import-light: parsing arguments and listing plugins never imports torch or transformers.

Global ``-q/--quiet`` (warnings and errors only) and ``-v/--verbose`` (debug lines too) go before the command; they
set the level of ft-core's and the loaded plugins' loggers (:func:`ft_core.engine.logs.configure_logging`). A
command's own product (tables, answers, summaries) goes to stdout with ``print``; progress goes through logging.
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
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        default=0,
        help="warnings and errors only",
    )
    loudness.add_argument(
        "-v", "--verbose", dest="verbosity", action="store_const", const=1, help="also show debug lines"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in plugins.names("cli_command"):
        registration = plugins.registration("cli_command", name)
        command = registration.component
        sub = commands.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(_command=command)
    return parser


def _early_verbosity(argv: Sequence[str]) -> int:
    """``-q`` / ``-v`` among the options before the command (logging is set up before the parser exists)."""
    verbosity = 0
    for token in argv:
        if not token.startswith("-") or token == "--":
            break
        verbosity = -1 if token in ("-q", "--quiet") else 1 if token in ("-v", "--verbose") else verbosity
    return verbosity


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for user errors, with a message and no traceback)."""
    from ft_core.bootstrap import engine_services, load_plugins
    from ft_core.engine.logs import configure_logging, package_names

    argv_list = list(sys.argv[1:] if argv is None else argv)
    undo = [configure_logging(_early_verbosity(argv_list))]  # plugin loading already logs
    try:
        try:
            plugins = load_plugins()
        except PluginError:
            if not argv_list or argv_list[0] != "plugins":
                raise
            plugins = load_plugins(strict=False)  # the diagnostic command lists first, then exits non-zero
        parser = build_parser(plugins)
        args = parser.parse_args(argv)
        loaded = [record.module for record in plugins.records if record.status == "loaded"]
        undo.append(configure_logging(args.verbosity, package_names(loaded)))  # the plugins' loggers too
        if getattr(args, "_command", None) is None:
            parser.print_help()
            return 0
        args.plugins = plugins
        args.services = engine_services(plugins)
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
    finally:
        for restore in reversed(undo):  # an in-process call (a test) leaves logging as it found it
            restore()


def console() -> None:
    """The console script: :func:`main`, then exit with its status. A process of a multi-process run (a torchrun
    worker) leaves without the interpreter's teardown once everything is written and flushed: there, native threads
    of DeepSpeed and gloo can abort the process at exit ("terminate called without an active exception"), which
    would fail a finished run."""
    status = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import logging

        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":  # pragma: no cover
    console()
