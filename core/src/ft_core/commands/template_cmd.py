"""``ft-core template``: look at registered chat templates (``list``) and render a conversation with one (``show``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, ClassVar

from ft_core.api.components import CliCommand
from ft_core.api.errors import FtCoreError

_TRAINED_ON, _TRAINED_OFF = "\x1b[42;30m", "\x1b[0m"


def _kwargs(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are parsed as JSON where they are JSON (``false``, ``3``), else kept as text."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise FtCoreError(f"--kwarg {pair!r}: expected key=value, e.g. --kwarg enable_thinking=false")
        try:
            result[key] = json.loads(value)
        except ValueError:
            result[key] = value
    return result


def _highlighted(text: str, spans: list[Any], color: bool) -> str:
    """``text`` with trained spans in green (a terminal) or between ``[[`` and ``]]``."""
    on, off = (_TRAINED_ON, _TRAINED_OFF) if color else ("[[", "]]")
    out, position = [], 0
    for span in spans:
        out += [text[position : span.start], on, text[span.start : span.end], off]
        position = span.end
    out.append(text[position:])
    return "".join(out)


class TemplateCommand(CliCommand):
    help: ClassVar[str] = "list chat templates, or render a conversation with one and show the trained spans"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{show,list}")
        show = actions.add_parser("show", help="render a conversation with a registered template")
        show.add_argument("name", help="a registered chat template (see `ft-core template list`)")
        show.add_argument(
            "--messages", help="OpenAI-style JSON list of messages (default: a built-in example)"
        )
        show.add_argument("--tokenizer", help="a tokenizer folder whose special tokens to render with")
        show.add_argument("--generation-prompt", action="store_true", help="append the generation prompt")
        show.add_argument(
            "--kwarg",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a chat-template keyword argument",
        )
        show.add_argument("--json", action="store_true", help='print {"text": ..., "trained": [...]}')
        listing = actions.add_parser("list", help="registered chat templates")
        listing.add_argument("--json", action="store_true", help="machine-readable output")

    def run(self, args: argparse.Namespace) -> int:
        if args.action == "list":
            return self._list(args)
        return self._show(args)

    def _list(self, args: argparse.Namespace) -> int:
        plugins = args.plugins
        registry = plugins.registries["chat_template"]
        rows = [
            {
                "name": name,
                "distribution": registry[name].distribution,
                "tools": registry[name].component.supports_tools,
                "description": registry[name].component.description,
            }
            for name in plugins.names("chat_template")
        ]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        width = max((len(r["name"]) for r in rows), default=4)
        for row in rows:
            tools = " [tools]" if row["tools"] else ""
            print(f"{row['name'].ljust(width)}  {row['description']}{tools} ({row['distribution']})")
        return 0

    def _show(self, args: argparse.Namespace) -> int:
        from ft_core.engine.templates.show import example_conversations, read_messages, show_first

        template = args.plugins.get("chat_template", args.name)
        candidates = [read_messages(args.messages)] if args.messages else example_conversations(template)
        special_tokens: dict[str, Any] = dict(template.special_tokens)
        if args.tokenizer:
            from ft_core.api.config import ModelSection
            from ft_core.engine.models.loader import load_tokenizer, loading

            with loading("tokenizer", args.tokenizer):
                tokenizer = load_tokenizer(ModelSection(name_or_path=args.tokenizer))
            special_tokens = dict(tokenizer.special_tokens_map)
        # The user's own messages, or the built-in examples in order; an error says why none renders.
        shown = show_first(
            template,
            candidates,
            special_tokens=special_tokens,
            generation_prompt=args.generation_prompt,
            template_kwargs=_kwargs(args.kwarg),
            name=args.name,
        )
        if args.json:
            print(json.dumps(shown.as_dict(), ensure_ascii=False, indent=2))
            return 0
        color = sys.stdout.isatty()
        for index, (text, spans) in enumerate(
            shown.rows if len(shown.rows) > 1 else [(shown.text, shown.trained)]
        ):
            if len(shown.rows) > 1:
                print(
                    f"--- training row {index + 1} of {len(shown.rows)} (this template rewrites earlier turns)"
                )
            print(_highlighted(text, spans, color))
        trained = len(shown.trained) if len(shown.rows) <= 1 else sum(len(s) for _, s in shown.rows)
        marks = "green" if color else "[[ ]]"
        print(f"\n{trained} trained span(s) marked {marks}; template {args.name!r}", file=sys.stderr)
        return 0
