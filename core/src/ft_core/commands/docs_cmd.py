"""``ft-core docs``: write (or check) the generated reference pages: chat templates and supported models."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import ClassVar

from ft_core.api.components import CliCommand


class DocsCommand(CliCommand):
    help: ClassVar[str] = (
        "write the chat-template reference and supported-models table from the installed plugins"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--output", default="docs", help="folder to write them to (default: docs)")
        parser.add_argument(
            "--check", action="store_true", help="write nothing; exit 1 when a page is missing or out of date"
        )

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.engine.reference import generated_docs

        folder = Path(args.output)
        stale = []
        for name, content in generated_docs(args.plugins).items():
            path = folder / name
            current = path.read_text(encoding="utf-8") if path.is_file() else None
            if current == content:
                continue
            stale.append(str(path))
            if not args.check:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
        if args.check:
            for stale_path in stale:
                print(f"{stale_path} is out of date: run `ft-core docs --output {folder}`")
            return 1 if stale else 0
        print(f"wrote {', '.join(stale)}" if stale else "generated docs are up to date")
        return 0
