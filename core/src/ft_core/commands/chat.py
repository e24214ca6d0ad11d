"""``ft-core chat``: talk to a trained run (base + adapter) or a model, with its chat template.

Uses only the typed inference API (:mod:`ft_core.api.inference`) of the chosen engine.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from ft_core.api.components import CliCommand
from ft_core.api.errors import ConfigError, FtCoreError

logger = logging.getLogger(__name__)


class ChatCommand(CliCommand):
    help: ClassVar[str] = "chat with a trained run folder (or a model) in the terminal"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "target",
            help="a run folder written by `ft-core run`, a Hugging Face model folder, a .gguf file or "
            "smollm2-135m-instruct",
        )
        parser.add_argument(
            "-m", "--message", action="append", help="send this message and exit (repeatable)"
        )
        parser.add_argument(
            "--image",
            action="append",
            default=[],
            metavar="PATH",
            help="attach this image to the first message (repeatable; vision-language runs only); the message's "
            "<image> placeholders mark where the images go, else they go before its text. Interactively, "
            "'/image PATH' attaches an image to the next message",
        )
        parser.add_argument("--system", help="system prompt (default: the run's template.system, if any)")
        parser.add_argument(
            "--tools",
            help="JSON file with the functions the model may call (a list of JSON schemas, OpenAI style); replies "
            "in the template's tool-call format are shown as calls",
        )
        parser.add_argument("--engine", default="hf", help="inference engine (default: hf)")
        parser.add_argument(
            "--adapter",
            action="append",
            default=[],
            metavar="DIR",
            help="merge this PEFT adapter (or run folder's adapter) into the model first (repeatable, in order)",
        )
        from ft_core.api.inference import add_generation_flags

        add_generation_flags(parser, "reply")
        parser.add_argument(
            "-v", "--verbose", action="store_true", help="print token counts and speed after each reply"
        )

    def run(self, args: argparse.Namespace) -> int:
        from ft_core.api.inference import SamplingOptions, generation_flags
        from ft_core.engine.config.typecheck import build
        from ft_core.engine.inference.target import resolve_chat_target

        plugins = args.plugins
        engine = plugins.get("inference_engine", args.engine)
        problems: list[str] = []
        options = build(engine.options_schema, {}, "engine", problems)
        if problems:
            raise ConfigError(problems)
        target = resolve_chat_target(args.target, plugins, args.adapter)
        if args.image:
            if target.vision is None:
                raise FtCoreError(
                    f"--image: {target.description} is not a vision-language model (it reads text only); give a "
                    "run of a vision-language model family"
                )
            missing = [path for path in args.image if not Path(path).expanduser().is_file()]
            if missing:
                raise FtCoreError(f"--image: no such file: {missing[0]}")
            if not args.message:
                raise FtCoreError("--image needs --message (interactively, attach with '/image PATH')")
        try:
            # The template's stop words go in as stop strings too: one several tokens long is caught as text.
            sampling = SamplingOptions.from_settings(
                target.generation, generation_flags(args), {"stop": target.stop_words}
            )
        except ValueError as exc:
            raise FtCoreError(f"chat: {exc}") from None
        tools = read_tools(args.tools)  # before the (slow) model load, so a bad file fails at once
        logger.info(f"loading {target.description} ...")
        model = engine.load(target, options)
        system = args.system or target.system
        history: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        session = _Session(model, sampling, args.verbose, tools, _tool_parser(plugins, target))
        if args.message:
            for index, message in enumerate(args.message):
                first = [str(Path(p).expanduser()) for p in args.image] if index == 0 else []
                session.turn(history, message, prefix=f"User: {message}\nAssistant: ", images=first)
            return 0
        hint = "; '/image PATH' attaches an image to the next message" if target.vision is not None else ""
        print(f"Type a message; 'clear' starts over, 'exit' quits{hint}.", file=sys.stderr)
        pending: list[str] = []
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
                session.images.clear()
                pending.clear()
                continue
            if text == "/image" or text.startswith("/image "):
                image = _attach(text[len("/image") :].strip(), target.vision is not None)
                if image is not None:
                    pending.append(image)
                    print(f"[image {image} attached to the next message]", file=sys.stderr)
                continue
            if text:
                try:
                    session.turn(history, text, prefix="Assistant: ", images=pending)
                except FtCoreError as exc:  # e.g. an unreadable image: say so and go on chatting
                    print(f"error: {exc}", file=sys.stderr)
                pending = []


def _attach(path: str, vision: bool) -> str | None:
    """The image file of a ``/image PATH`` line, or ``None`` (the problem is printed)."""
    problem = None
    if not vision:
        problem = "this model reads text only: images need a run of a vision-language model family"
    elif not path:
        problem = "usage: /image PATH"
    elif not Path(path).expanduser().is_file():
        problem = f"no such file: {path}"
    if problem is not None:
        print(f"/image: {problem}", file=sys.stderr)
        return None
    return str(Path(path).expanduser())


def with_placeholders(text: str, count: int) -> str:
    """``text`` with an ``<image>`` placeholder before it for each of ``count`` images it has no placeholder
    for."""
    from ft_core.api.inference import IMAGE_PLACEHOLDER

    missing = count - text.count(IMAGE_PLACEHOLDER)
    return IMAGE_PLACEHOLDER * missing + text if missing > 0 else text


def read_tools(path: str | None) -> list[dict[str, Any]] | None:
    """The functions in ``path`` as Hugging Face tool definitions; errors name the file and entry."""
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise FtCoreError(f"--tools: cannot read {path!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise FtCoreError(f"--tools: {path} is not valid JSON ({exc})") from None
    items = data if isinstance(data, list) else [data]
    tools = []
    for index, item in enumerate(items):
        function = item.get("function", item) if isinstance(item, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise FtCoreError(f"--tools: {path} entry {index}: expected a function schema with a 'name'")
        tools.append({"type": "function", "function": function})
    return tools


def _tool_parser(plugins: Any, target: Any) -> Any:
    """The tool-call parser of the target's registered chat template, if it has one."""
    name = target.template
    if not name or name not in plugins.registries["chat_template"]:
        return None
    return plugins.get("chat_template", name).parse_tool_calls


class _Session:
    """One chat: the model, sampling, the offered tools and how to recognise a generated tool call."""

    def __init__(self, model: Any, sampling: Any, verbose: bool, tools: Any, parse_tool_calls: Any) -> None:
        self.model, self.sampling, self.verbose = model, sampling, verbose
        self.tools, self.parse_tool_calls = tools, parse_tool_calls
        #: The conversation's images so far, in the order of the ``<image>`` placeholders of its messages.
        self.images: list[str] = []

    def turn(
        self, history: list[dict[str, Any]], text: str, prefix: str, images: list[str] | None = None
    ) -> None:
        from ft_core.api.inference import ChatRequest, count_image_placeholders

        attached = list(images or [])
        message = {"role": "user", "content": with_placeholders(text, len(attached))}
        wanted = (
            count_image_placeholders([message])
            if attached or getattr(self.model, "accepts_images", False)
            else 0
        )
        if wanted != len(attached):
            raise FtCoreError(
                f"the message holds {wanted} <image> placeholder(s) but {len(attached)} image(s) are attached"
            )
        request = ChatRequest(
            messages=[*history, message],
            tools=self.tools,
            sampling=self.sampling,
            images=[*self.images, *attached],
        )
        print(prefix, end="", flush=True)
        pieces: list[str] = []
        started = time.perf_counter()
        usage = None
        try:
            for delta in self.model.stream(request):
                pieces.append(delta.text)
                print(delta.text, end="", flush=True)
                usage = delta.usage or usage
        finally:
            print()
        history.append(message)
        self.images.extend(attached)
        reply: dict[str, Any] = {"role": "assistant", "content": "".join(pieces).strip()}
        if self.parse_tool_calls is not None:
            content, calls = self.parse_tool_calls(reply["content"])
            for call in calls:
                function = call["function"]
                print(
                    f"[tool call] {function['name']}({json.dumps(function['arguments'], ensure_ascii=False)})"
                )
            if calls:
                reply = {"role": "assistant", "content": content, "tool_calls": calls}
        history.append(reply)
        if self.verbose and usage is not None:
            seconds = time.perf_counter() - started
            speed = usage.completion_tokens / seconds if seconds > 0 else 0.0
            print(
                f"[{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens, "
                f"{speed:.1f} tokens/s]",
                file=sys.stderr,
                flush=True,
            )
