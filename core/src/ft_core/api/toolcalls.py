"""Parsers of generated tool calls, for :attr:`ChatTemplate.parse_tool_calls <ft_core.api.ChatTemplate>`.

A parser takes the text of one generated assistant turn and returns ``(content, tool_calls)``: the text that is
not a call, and the calls in the Hugging Face form ``[{"type": "function", "function": {"name": ...,
"arguments": {...}}}]``. Text that is not a well-formed call stays content, so a parser never loses output.
Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

ToolCallParser = Callable[[str], tuple[str, list[dict[str, Any]]]]


def tool_call(name: str, arguments: Any) -> dict[str, Any]:
    """One call in the Hugging Face form (``arguments`` a dict; a JSON string is decoded when it is one)."""
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def _call_from_object(value: Any, arguments_keys: Iterable[str]) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    for key in arguments_keys:
        if key in value:
            return tool_call(value["name"], value[key])
    return None


def _decode_calls(text: str, arguments_keys: Iterable[str]) -> list[dict[str, Any]] | None:
    """Calls from a JSON object or a JSON list of objects; ``None`` when ``text`` is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    calls = [_call_from_object(item, tuple(arguments_keys)) for item in items]
    return None if not calls or any(call is None for call in calls) else calls  # type: ignore[return-value]


def tagged_json(
    open_tag: str, close_tag: str, arguments_keys: Iterable[str] = ("arguments",)
) -> ToolCallParser:
    """Calls written as ``<open>{"name": ..., "arguments": {...}}<close>`` blocks (Hermes / Qwen ``<tool_call>``;
    Phi-4 ``<|tool_call|>[...]<|/tool_call|>``). A block may hold one object or a list of them."""
    keys = tuple(arguments_keys)
    pattern = re.compile(re.escape(open_tag) + r"(.*?)" + re.escape(close_tag), re.DOTALL)

    def parse(text: str) -> tuple[str, list[dict[str, Any]]]:
        calls: list[dict[str, Any]] = []
        content: list[str] = []
        position = 0
        for match in pattern.finditer(text):
            decoded = _decode_calls(match.group(1).strip(), keys)
            if decoded is None:
                continue
            content.append(text[position : match.start()])
            calls.extend(decoded)
            position = match.end()
        content.append(text[position:])
        return "".join(content).strip(), calls

    return parse


def prefixed_json(prefix: str, arguments_keys: Iterable[str] = ("arguments",)) -> ToolCallParser:
    """Calls written as ``<prefix>`` followed by a JSON object or list, to the end of the turn (Mistral's
    ``[TOOL_CALLS] [...]``, Llama 3.x's ``<|python_tag|>{...}``). An empty prefix means the whole turn must be
    the JSON (Llama 3.1's plain ``{"name": ..., "parameters": ...}``)."""
    keys = tuple(arguments_keys)

    def parse(text: str) -> tuple[str, list[dict[str, Any]]]:
        position = text.find(prefix) if prefix else 0
        if position < 0:
            return text.strip(), []
        decoded = _decode_calls(text[position + len(prefix) :].strip(), keys)
        if decoded is None:
            return text.strip(), []
        return text[:position].strip(), decoded

    return parse


def first_of(*parsers: ToolCallParser) -> ToolCallParser:
    """The result of the first parser that finds a call (for templates that accept several spellings)."""

    def parse(text: str) -> tuple[str, list[dict[str, Any]]]:
        for parser in parsers:
            content, calls = parser(text)
            if calls:
                return content, calls
        return text.strip(), []

    return parse


#: Hermes / Qwen2.5 / Qwen3: ``<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>``.
hermes = tagged_json("<tool_call>", "</tool_call>")
