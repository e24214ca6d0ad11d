"""Render a conversation with a chat template and say which spans are trained (``ft-core template show``).

Messages come as an OpenAI-style JSON list (``[{"role": "user", "content": "..."}, ...]``) or an object
``{"messages": [...], "tools": [...]}``; tool-call arguments given as JSON strings (OpenAI's form) become objects,
as Hugging Face templates expect.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ft_core.api.conversation import Conversation, Message
from ft_core.api.descriptors import ChatTemplate
from ft_core.api.errors import DataError
from ft_core.engine.templates.golden import TOOLS_SOURCE, golden_conversations, reasoning_conversations
from ft_core.engine.templates.render import (
    TemplateRenderError,
    locate_assistant_spans,
    render,
    turn_by_turn,
)

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class TrainedSpan:
    """Characters ``[start, end)`` of a rendering that are trained (an assistant turn with its end marker)."""

    start: int
    end: int
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text}


@dataclass(frozen=True)
class Shown:
    """A rendering and its trained spans; ``rows`` are the training rows (more than one for a template that
    rewrites history, each a rendering of the conversation up to one assistant turn)."""

    text: str
    trained: list[TrainedSpan]
    rows: list[tuple[str, list[TrainedSpan]]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"text": self.text, "trained": [s.as_dict() for s in self.trained]}
        if len(self.rows) > 1:
            shown["rows"] = [
                {"text": text, "trained": [s.as_dict() for s in spans]} for text, spans in self.rows
            ]
        return shown


def _arguments(value: Any, where: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise DataError(f"{where}: tool-call arguments are not valid JSON ({exc}): {value[:80]!r}") from exc


def _content(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts
        parts = []
        for part in value:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "text":
                parts.append(str(part.get("text", "")))
            elif kind in ("image", "image_url"):
                parts.append("<image>")
            else:
                raise DataError(f"{where}: unknown content part {part!r}; expected type 'text' or 'image'")
        return "".join(parts)
    raise DataError(f"{where}: 'content' must be a string or a list of parts, got {type(value).__name__}")


def _message(item: Any, where: str) -> Message:
    if not isinstance(item, Mapping) or "role" not in item:
        raise DataError(f"{where}: expected an object with 'role' and 'content', got {item!r:.80}")
    role = item["role"]
    if role not in ROLES:
        raise DataError(f"{where}: unknown role {role!r}; expected one of {', '.join(ROLES)}")
    calls = []
    for call in item.get("tool_calls") or []:
        function = call.get("function", call) if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or "name" not in function:
            raise DataError(f"{where}: a tool call needs a function name, got {call!r:.80}")
        arguments = _arguments(function.get("arguments", {}), where)
        calls.append({"type": "function", "function": {"name": function["name"], "arguments": arguments}})
    reasoning = item.get("reasoning_content", item.get("reasoning"))
    return Message(role, _content(item.get("content"), where), tool_calls=calls or None, reasoning=reasoning)


def read_messages(path: str | Path) -> Conversation:
    """The conversation in ``path`` (see the module docstring); errors name the file and message."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read messages file {str(path)!r}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    tools = None
    if isinstance(data, Mapping):
        tools = data.get("tools")
        data = data.get("messages")
    if not isinstance(data, list) or not data:
        raise DataError(
            f'{path}: expected a non-empty JSON list of messages ([{{"role": "user", "content": "..."}}]) '
            'or {"messages": [...], "tools": [...]}'
        )
    messages = [_message(item, f"{path}: message {i}") for i, item in enumerate(data)]
    return Conversation(messages, tools=tools, source=str(path))


def example_conversations(template: ChatTemplate) -> list[Conversation]:
    """Built-in examples, best first: a tool call for templates with a tool format, reasoning for reasoning
    templates, a system prompt and two turns, then two turns without a system prompt (for templates that have
    no system role)."""
    goldens = {c.source: c for c in golden_conversations()}
    first = []
    if template.supports_tools:
        first.append(goldens[TOOLS_SOURCE])
    if not template.prefix_stable:
        first.append(reasoning_conversations()[0])
    return [*first, goldens["golden:system-two-turns"], goldens["golden:no-system"]]


def _spans(text: str, spans: list[Any]) -> list[TrainedSpan]:
    return [TrainedSpan(s.start, s.end, text[s.start : s.end]) for s in spans]


def show(
    template: ChatTemplate,
    conversation: Conversation,
    *,
    special_tokens: Mapping[str, Any],
    generation_prompt: bool = False,
    template_kwargs: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Shown:
    """Render ``conversation`` (with the generation prompt appended when asked) and locate its trained spans."""
    kwargs = {**template.template_kwargs, **(template_kwargs or {})}
    options: dict[str, Any] = dict(special_tokens=special_tokens, template_kwargs=kwargs, name=name)
    text = render(
        None,
        template.jinja,
        conversation.messages,
        add_generation_prompt=generation_prompt,
        tools=conversation.tools,
        **options,
    )
    has_answer = any(m.role == "assistant" for m in conversation.messages)
    if not has_answer:
        return Shown(text, [], [(text, [])])
    views = [conversation] if template.prefix_stable else turn_by_turn(conversation)
    rows = []
    for view in views:
        row_text, _, spans = locate_assistant_spans(
            None, template.jinja, view, last_only=not template.prefix_stable, **options
        )
        rows.append((row_text, _spans(row_text, spans)))
    if template.prefix_stable:
        return Shown(text, rows[0][1], rows)
    # Turn by turn: the spans of the last row that are also in the whole rendering.
    return Shown(text, [s for s in rows[-1][1] if text[s.start : s.end] == s.text], rows)


def show_first(template: ChatTemplate, conversations: list[Conversation], **options: Any) -> Shown:
    """:func:`show` of the first of ``conversations`` the template renders (the built-in examples are tried in
    order: a template without a system role refuses the first); the last one's error when none renders."""
    for conversation in conversations[:-1]:
        try:
            return show(template, conversation, **options)
        except TemplateRenderError:
            continue
    return show(template, conversations[-1], **options)
