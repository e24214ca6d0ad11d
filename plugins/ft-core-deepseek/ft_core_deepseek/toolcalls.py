"""Parser of DeepSeek-V2.5 / V3 / R1 tool calls (standard library only).

The models write calls as::

    <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
    ```json
    {...arguments...}
    ```<｜tool▁call▁end｜>
    <｜tool▁call▁begin｜>...<｜tool▁call▁end｜><｜tool▁calls▁end｜>

with the turn's text content, if any, before ``<｜tool▁calls▁begin｜>``.
"""

from __future__ import annotations

import re
from typing import Any

from ft_core.api.toolcalls import tool_call

CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
CALLS_END = "<｜tool▁calls▁end｜>"
EOS = "<｜end▁of▁sentence｜>"

_CALL = re.compile(
    r"<｜tool▁call▁begin｜>(?P<type>[^<]*?)<｜tool▁sep｜>(?P<name>[^\n]+)\n```json\n(?P<arguments>.*?)\n```"
    r"<｜tool▁call▁end｜>",
    re.DOTALL,
)


def parse_deepseek_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """``(content, calls)`` of one generated DeepSeek assistant turn; text without a well-formed call block is
    all content."""
    position = text.find(CALLS_BEGIN)
    if position < 0:
        return text.removesuffix(EOS).strip(), []
    calls = [tool_call(m.group("name").strip(), m.group("arguments")) for m in _CALL.finditer(text, position)]
    if not calls:
        return text.removesuffix(EOS).strip(), []
    return text[:position].strip(), calls
