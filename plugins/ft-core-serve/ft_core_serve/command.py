"""``ft-core serve RUN_DIR | MODEL``: load a trained run (or a model) with an inference engine and serve it over an
OpenAI-compatible HTTP API.

Import-light: FastAPI, uvicorn and the engine's libraries are imported when the command runs, not when it is
registered (``ft-core --help`` stays fast).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import ipaddress
import os
import socket
import sys
from pathlib import Path
from typing import Any, ClassVar

from ft_core.api import ChatTarget, CliCommand, FtCoreError, Services
from ft_core.api.toolcalls import ToolCallParser

#: Connections waiting to be accepted (uvicorn's default).
_BACKLOG = 2048
#: The environment variable holding the API key (safer than ``--api-key``, which other users can see in ``ps``).
API_KEY_ENV = "FT_CORE_API_KEY"


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port), or an :class:`FtCoreError` saying why not.

    Bound before the model loads, so a port in use fails at once; uvicorn then serves on this very socket.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise FtCoreError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise FtCoreError(
                f"port {port} on {host} is already in use (another server is listening there); stop it or give "
                "another port with --port"
            ) from None
        raise FtCoreError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tool_parser(plugins: Any, target: ChatTarget) -> ToolCallParser | None:
    """The tool-call parser of the target's registered chat template, if it has a tool format."""
    name = target.template
    if not name or name not in plugins.names("chat_template"):
        return None
    parser: ToolCallParser | None = plugins.get("chat_template", name).parse_tool_calls
    return parser


class ServeCommand(CliCommand):
    """The ``serve`` sub-command."""

    help: ClassVar[str] = "serve a trained run folder (or a model) over an OpenAI-compatible HTTP API"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "target",
            help="a run folder written by `ft-core run`, a Hugging Face model folder, a .gguf file or "
            "smollm2-135m-instruct",
        )
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument(
            "--port", type=int, default=8000, help="port to listen on (default 8000; 0: any free)"
        )
        parser.add_argument("--engine", default="hf", help="inference engine (default: hf)")
        parser.add_argument(
            "--adapter",
            action="append",
            default=[],
            metavar="DIR",
            help="merge this PEFT adapter (or run folder's adapter) into the model first (repeatable, in order)",
        )
        parser.add_argument(
            "--model-name", help="the model id clients send and /v1/models lists (default: TARGET as given)"
        )
        parser.add_argument(
            "--api-key",
            help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}; unset: no authentication)",
        )
        parser.add_argument("--system", help="system prompt (default: the run's template.system, if any)")
        parser.add_argument(
            "--max-tokens",
            type=int,
            default=512,
            help="most tokens of one reply; a request asking for more gets a 400, one that sets none gets this (512)",
        )
        parser.add_argument(
            "--max-body-bytes",
            type=int,
            default=1 << 20,
            help="largest request body (default 1 MiB; 413 above)",
        )
        parser.add_argument(
            "--max-batch-size",
            type=int,
            default=32,
            help="most concurrent requests generated together (default 32; 1 serves them one at a time)",
        )
        parser.add_argument(
            "--batch-window-ms",
            type=float,
            default=10.0,
            help="how long the first request of a batch waits for others (default 10 ms)",
        )
        parser.add_argument(
            "--max-queue",
            type=int,
            default=256,
            help="most requests waiting for a batch (default 256; 503 above)",
        )
        parser.add_argument(
            "--image-folder",
            metavar="DIR",
            help="vision models: requests may name image files inside DIR in image_url parts (a path relative to "
            "DIR, or file://); default: only data: URLs (base64). Remote URLs are never fetched",
        )

    def run(self, args: argparse.Namespace) -> int:
        from ft_core_serve.app import ServedModel, ServerOptions, create_app

        if not 0 <= args.port <= 65535:
            raise FtCoreError(f"--port must be in 0..65535, got {args.port}")
        try:
            options = ServerOptions(
                api_key=args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None,
                max_tokens=args.max_tokens,
                max_body_bytes=args.max_body_bytes,
                max_batch_size=args.max_batch_size,
                batch_window_s=args.batch_window_ms / 1000,
                max_queue=args.max_queue,
            )
        except ValueError as exc:
            raise FtCoreError(f"serve: {exc}") from None
        if args.image_folder is not None:
            folder = Path(os.path.expanduser(args.image_folder))
            if not folder.is_dir():
                raise FtCoreError(f"--image-folder: no such folder: {args.image_folder}")
            options = dataclasses.replace(options, image_folder=folder.resolve())
        plugins = args.plugins
        services: Services = args.services
        engine = plugins.get("inference_engine", args.engine)
        target = services.chat_target(args.target, args.adapter)
        sock = bind_socket(args.host, args.port)
        try:
            print(f"loading {target.description} ...", file=sys.stderr, flush=True)
            served = ServedModel(
                name=args.model_name or args.target.rstrip("/") or args.target,
                model=engine.load(target, engine.options_schema()),
                system=args.system or target.system,
                stop_words=tuple(target.stop_words),
                parse_tool_calls=_tool_parser(plugins, target),
                generation=dict(target.generation),
            )
            sock.listen(_BACKLOG)  # from here on connections wait in the backlog until uvicorn takes them
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            print(
                f"serving {served.name!r} at http://{shown}:{port}/v1 (OpenAI-compatible; Ctrl-C stops)",
                file=sys.stderr,
                flush=True,
            )
            if options.api_key is None and not _is_loopback(args.host):
                print(
                    f"ft-core: warning: no API key and listening on {args.host}: anyone who can reach this port can "
                    f"use the model; set {API_KEY_ENV} or --api-key",
                    file=sys.stderr,
                )
            run_server(create_app(served, options), sock)
        finally:
            sock.close()
        return 0


def run_server(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` with uvicorn on the bound ``sock`` until interrupted."""
    import uvicorn

    config = uvicorn.Config(app, log_level="info", backlog=_BACKLOG, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
