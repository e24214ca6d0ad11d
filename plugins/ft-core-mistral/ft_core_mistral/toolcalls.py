"""The Mistral tool-call format: ``[TOOL_CALLS] [{"name": ..., "arguments": {...}, "id": "abcDEF123"}, ...]``.

A generated assistant turn that calls tools is ``[TOOL_CALLS]`` followed by a JSON list of calls (v3 tokenizer:
after a space; tekken: directly) and EOS. Standard library only.
"""

from __future__ import annotations

import json
from typing import Any

from ft_core.api.toolcalls import tool_call

TOOL_CALLS = "[TOOL_CALLS]"
END_MARKERS = ("</s>",)


def _strip_end(text: str) -> str:
    text = text.strip()
    for marker in END_MARKERS:
        if text.endswith(marker):
            text = text[: -len(marker)].rstrip()
    return text


def _call(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or "arguments" not in item:
        return None
    call = tool_call(item["name"], item["arguments"])
    if isinstance(item.get("id"), str):
        call["id"] = item["id"]
    return call


def parse_mistral_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """``(content, tool_calls)`` of a generated Mistral assistant turn (calls keep their ``id``); text that is not
    a well-formed call list stays content."""
    body = _strip_end(text)
    position = body.find(TOOL_CALLS)
    if position < 0:
        return body, []
    try:
        value = json.loads(body[position + len(TOOL_CALLS) :].strip())
    except ValueError:
        return body, []
    items = value if isinstance(value, list) else [value]
    calls = [_call(item) for item in items]
    if not calls or any(call is None for call in calls):
        return body, []
    return body[:position].strip(), calls  # type: ignore[return-value]
