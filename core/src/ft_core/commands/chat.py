"""``ft-core chat``: talk to a trained run (base + adapter) or a model, with its chat template."""

from __future__ import annotations

import argparse
import sys
from typing import Any, ClassVar

from ft_core.components import CliCommand
from ft_core.errors import ConfigError


class ChatCommand(CliCommand):
    help: ClassVar[str] = "chat with a trained run folder (or a model) in the terminal"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "target", help="a run folder written by `ft-core run`, a model folder, or a model alias"
        )
        parser.add_argument(
            "-m", "--message", action="append", help="send this message and exit (repeatable)"
        )
        parser.add_argument("--system", help="system prompt (default: the run's template.system, if any)")
        parser.add_argument("--engine", default="hf", help="inference engine (default: hf)")
        parser.add_argument("--max-new-tokens", type=int, default=256)
        parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy decoding")

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.config.typecheck import build
        from ft_core.inference.target import resolve_chat_target

        plugins = args.plugins
        engine = plugins.get("inference_engine", args.engine)
        problems: list[str] = []
        options = build(engine.options_schema, {}, "engine", problems)
        if problems:
            raise ConfigError(problems)
        target = resolve_chat_target(args.target, plugins)
        print(f"loading {target.description} ...", file=sys.stderr, flush=True)
        model = engine.load(target, options)
        system = args.system or target.system
        history: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        if args.message:
            for message in args.message:
                self._turn(model, history, message, args, prefix=f"User: {message}\nAssistant: ")
            return 0
        print("Type a message; 'clear' starts over, 'exit' quits.", file=sys.stderr)
        while True:
            try:
                text = input("User: ").strip()
            except EOFError:
                print()
                return 0
            if text.lower() in ("exit", "quit"):
                return 0
            if text.lower() == "clear":
                history = history[:1] if system else []
                continue
            if text:
                self._turn(model, history, text, args, prefix="Assistant: ")

    @staticmethod
    def _turn(
        model: Any, history: list[dict[str, Any]], text: str, args: argparse.Namespace, prefix: str
    ) -> None:
        history.append({"role": "user", "content": text})
        print(prefix, end="", flush=True)
        pieces = []
        for piece in model.chat(history, max_new_tokens=args.max_new_tokens, temperature=args.temperature):
            pieces.append(piece)
            print(piece, end="", flush=True)
        print()
        history.append({"role": "assistant", "content": "".join(pieces).strip()})
