"""The Llama 3.1+ tool-call format: parse a generated assistant turn into content and calls.

Llama 3.1 / 3.2 / 3.3 Instruct call a custom tool by answering with one JSON object ``{"name": ...,
"parameters": {...}}`` (the whole turn, sometimes after ``<|python_tag|>``; several calls may be separated by
``;``), and a built-in tool (``brave_search``, ``wolfram_alpha``) with ``<|python_tag|>name.call(arg="value")``.
The turn ends with ``<|eot_id|>`` or, in ipython mode, ``<|eom_id|>``. Standard library only.
"""

from __future__ import annotations

import re
from typing import Any

from ft_core.api.toolcalls import prefixed_json, tool_call

PYTHON_TAG = "<|python_tag|>"
END_MARKERS = ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>")

_json_calls = prefixed_json("", arguments_keys=("parameters", "arguments"))
_BUILTIN = re.compile(r"^\s*([A-Za-z_][\w]*)\.call\((.*)\)\s*$", re.DOTALL)
_BUILTIN_ARG = re.compile(r'\s*([A-Za-z_]\w*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _strip_end(text: str) -> str:
    text = text.strip()
    changed = True
    while changed:
        changed = False
        for marker in END_MARKERS:
            if text.endswith(marker):
                text, changed = text[: -len(marker)].rstrip(), True
    return text


def _builtin_call(text: str) -> dict[str, Any] | None:
    match = _BUILTIN.match(text)
    if match is None:
        return None
    arguments: dict[str, str] = {}
    rest = match.group(2).strip()
    while rest:
        argument = _BUILTIN_ARG.match(rest)
        if argument is None:
            return None
        arguments[argument.group(1)] = argument.group(2).replace('\\"', '"')
        rest = rest[argument.end() :].strip()
    return tool_call(match.group(1), arguments)


def _calls(text: str) -> list[dict[str, Any]]:
    """Calls when ``text`` is nothing but calls (JSON objects, ``;``-separated, or one built-in call)."""
    _, calls = _json_calls(text)
    if calls:
        return calls
    builtin = _builtin_call(text)
    if builtin is not None:
        return [builtin]
    parts = [part.strip() for part in text.split(";")]
    if len(parts) > 1:
        decoded = [_json_calls(part)[1] for part in parts if part]
        if decoded and all(len(calls) == 1 for calls in decoded):
            return [calls[0] for calls in decoded]
    return []


def parse_llama3_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """``(content, tool_calls)`` of a generated Llama 3.1+ assistant turn; text that is not a call stays content."""
    body = _strip_end(text)
    position = body.find(PYTHON_TAG)
    if position >= 0:
        calls = _calls(body[position + len(PYTHON_TAG) :].strip())
        if calls:
            return body[:position].strip(), calls
        return body, []
    calls = _calls(body)
    return ("", calls) if calls else (body, [])
