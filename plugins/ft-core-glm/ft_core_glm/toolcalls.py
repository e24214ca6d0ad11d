"""The GLM-4 tool-call format (standard library only).

GLM-4-9B-Chat writes a call as an assistant turn whose first line is the function name (``<|assistant|>`` +
``metadata`` in its template) and whose body is the JSON arguments; an answer's turn starts with a newline
instead. Several calls are several such turns, each after its own ``<|assistant|>``.
"""

from __future__ import annotations

import json
from typing import Any

from ft_core.api.toolcalls import tool_call

ASSISTANT = "<|assistant|>"


def parse_glm4_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Split a generated GLM-4 assistant turn into ``(content, tool_calls)``; malformed calls stay content."""
    content: list[str] = []
    calls: list[dict[str, Any]] = []
    for segment in text.split(ASSISTANT):
        name, newline, body = segment.partition("\n")
        if newline and name.strip() and not name.startswith(" ") and " " not in name.strip():
            try:
                arguments = json.loads(body)
            except ValueError:
                arguments = None
            if isinstance(arguments, dict):
                calls.append(tool_call(name.strip(), arguments))
                continue
        content.append(segment.strip())
    return "\n".join(part for part in content if part), calls
