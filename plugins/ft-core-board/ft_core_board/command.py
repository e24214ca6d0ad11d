"""``ft-core board``: serve the web board on ``--host:--port`` (Gradio).

Import-light: gradio is imported in :meth:`BoardCommand.run`, after the port has been checked.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
from pathlib import Path
from typing import ClassVar

from ft_core.api import CliCommand, FtCoreError
from ft_core_board.choices import choices_from


def check_port(host: str, port: int) -> None:
    """An :class:`FtCoreError` (``ft-core: error:``, exit 2) when ``host:port`` cannot be listened on."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise FtCoreError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    with socket.socket(family, kind, proto) as sock:
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise FtCoreError(
                    f"port {port} on {host} is already in use (another server is listening there); stop it or "
                    "give another port with --port"
                ) from None
            raise FtCoreError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class BoardCommand(CliCommand):
    help: ClassVar[str] = (
        "a web board (Gradio): build a config from forms, validate it, train and follow the run live, cancel / "
        "resume it, chat with the result, export it"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
        parser.add_argument(
            "--runs-dir",
            default="runs",
            help="folder for the configs, logs and run folders the board writes (default runs)",
        )
        parser.add_argument(
            "--data-dir",
            default="data",
            help="folder holding dataset_info.json and its files (default data, as data.dataset_dir)",
        )
        parser.add_argument(
            "--model-dir",
            action="append",
            default=[],
            metavar="DIR",
            help="a folder local models may be picked from (repeatable); the embedded smollm2-135m-instruct is "
            "always offered",
        )

    def run(self, args: argparse.Namespace) -> int:
        from ft_core_board.logic import Workspace

        if not 0 <= args.port <= 65535:
            raise FtCoreError(f"--port {args.port}: not a port number (0-65535)")
        workspace = Workspace(
            runs_dir=Path(args.runs_dir),
            data_dir=Path(args.data_dir),
            model_dirs=tuple(Path(d) for d in args.model_dir),
        )
        for path in workspace.roots():
            if ".." in path.parts:
                raise FtCoreError(f"{path}: give the board's folders without '..'")
        check_port(args.host, args.port)
        workspace.runs_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        os.environ.setdefault("GRADIO_TELEMETRY_ENABLED", "False")
        from ft_core_board.app import serve

        serve(workspace, choices_from(args.plugins), host=args.host, port=args.port)
        return 0
