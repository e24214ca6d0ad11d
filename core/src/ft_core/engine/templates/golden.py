"""Golden conversations, and the comparison of two templates' renderings on them.

Two templates are *equal* for ft-core when every golden conversation renders to the same token ids, both as a
whole (training) and up to its last assistant turn with the generation prompt (inference). The tool-calling
conversation is compared only when both templates render it (a template without tool support may raise).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ft_core.api.conversation import Conversation, Message
from ft_core.engine.templates.render import TemplateRenderError, render

_WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name."}},
            "required": ["city"],
        },
    },
}

#: Conversation whose rendering needs tool support; skipped where a template cannot render it.
TOOLS_SOURCE = "golden:tools"


def reasoning_conversations() -> list[Conversation]:
    """Golden conversations whose assistant turns carry reasoning (a fresh copy each call)."""
    return [
        Conversation(
            [
                Message("user", "What is 2 + 3?"),
                Message("assistant", "5.", reasoning="2 plus 3 makes 5."),
                Message("user", "And times 4?"),
                Message("assistant", "20.", reasoning="5 times 4 is 20."),
            ],
            source="golden:reasoning-two-turns",
        ),
        Conversation(
            [
                Message("system", "Think step by step."),
                Message("user", "Écris « bonjour » en chinois."),
                Message("assistant", "你好", reasoning="« bonjour » se dit 你好."),
            ],
            source="golden:reasoning-system",
        ),
    ]


def golden_conversations() -> list[Conversation]:
    """The golden conversations (a fresh copy each call); the last one calls a tool (:data:`TOOLS_SOURCE`)."""
    return [
        Conversation(
            [
                Message("system", "You are a helpful assistant."),
                Message("user", "What is the capital of France?"),
                Message("assistant", "The capital of France is Paris."),
                Message("user", "And of Italy?"),
                Message("assistant", "Rome."),
            ],
            source="golden:system-two-turns",
        ),
        Conversation(
            [
                Message("user", "Who are you?"),
                Message("assistant", "I am a helpful assistant."),
                Message("user", "Say hello world."),
                Message("assistant", "Hello world!"),
            ],
            source="golden:no-system",
        ),
        Conversation(
            [Message("user", "Translate: thanks"), Message("assistant", "Merci.")],
            source="golden:single-turn",
        ),
        Conversation(
            [
                Message("user", "Grüße aus Köln! 你好，世界 👋 — ça va?"),
                Message("assistant", "Très bien, merci ! 谢谢 😊 «ok»"),
            ],
            source="golden:unicode",
        ),
        Conversation(
            [
                Message("user", "What is the weather in Paris?"),
                Message(
                    "assistant",
                    "",
                    tool_calls=[
                        {
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                        }
                    ],
                ),
                Message("tool", '{"temperature": 21, "sky": "clear"}'),
                Message("assistant", "It is 21 degrees and clear in Paris."),
            ],
            tools=[_WEATHER_TOOL],
            source=TOOLS_SOURCE,
        ),
    ]


@dataclass(frozen=True)
class RenderingDiff:
    """The first golden rendering on which two templates disagree."""

    conversation: str
    mode: str
    expected_text: str
    actual_text: str
    expected_ids: list[int]
    actual_ids: list[int]

    @property
    def first_difference(self) -> int:
        """Index of the first token that differs."""
        pairs = zip(self.expected_ids, self.actual_ids, strict=False)
        return next(
            (i for i, (a, b) in enumerate(pairs) if a != b), min(len(self.expected_ids), len(self.actual_ids))
        )

    def describe(self, tokenizer: Any, expected_label: str, actual_label: str, context: int = 4) -> str:
        """A readable report: the first differing token with its neighbours and a unified diff of the texts."""
        index = self.first_difference
        lo = max(0, index - context)

        def window(ids: list[int]) -> str:
            tokens = [tokenizer.decode([t]) for t in ids[lo : index + context + 1]]
            return " ".join(repr(t) for t in tokens) or "(end)"

        diff = difflib.unified_diff(
            self.expected_text.splitlines(keepends=True),
            self.actual_text.splitlines(keepends=True),
            fromfile=expected_label,
            tofile=actual_label,
            lineterm="",
        )
        diff_text = "\n".join(line.rstrip("\n") + ("⏎" if line.endswith("\n") else "") for line in diff)
        return (
            f"golden conversation {self.conversation!r} ({self.mode}): token ids differ first at position {index} "
            f"(of {len(self.expected_ids)} vs {len(self.actual_ids)} tokens)\n"
            f"  {expected_label}: {window(self.expected_ids)}\n"
            f"  {actual_label}: {window(self.actual_ids)}\n"
            f"unified diff of the rendered text (⏎ marks a line end):\n{diff_text}"
        )


def _renderings(conversation: Conversation) -> list[tuple[str, list[Message], bool]]:
    messages = conversation.messages
    last = max(i for i, m in enumerate(messages) if m.role == "assistant")
    return [("whole conversation", messages, False), ("generation prompt", messages[:last], True)]


def compare_templates(
    tokenizer: Any,
    expected_jinja: str,
    actual_jinja: str,
    template_kwargs: Mapping[str, Any] | None = None,
) -> RenderingDiff | None:
    """The first golden rendering where the two templates give different token ids, or ``None``.

    A conversation that neither template can render is skipped, and so is the tool conversation when either
    cannot render it or shows no trace of the call (a different tool-data convention, e.g. GLM-4's own
    ``metadata`` / ``observation`` messages); one template rendering what the other rejects is a difference.
    """
    for conversation in golden_conversations():
        for mode, messages, add_generation_prompt in _renderings(conversation):
            texts: list[str | None] = []
            errors: list[str] = []
            for jinja in (expected_jinja, actual_jinja):
                try:
                    texts.append(
                        render(
                            tokenizer,
                            jinja,
                            messages,
                            add_generation_prompt=add_generation_prompt,
                            tools=conversation.tools,
                            template_kwargs=template_kwargs,
                        )
                    )
                except TemplateRenderError as exc:
                    texts.append(None)
                    errors.append(str(exc))
            if errors and (len(errors) == 2 or conversation.source == TOOLS_SOURCE):
                break
            if conversation.source == TOOLS_SOURCE and any(
                t is not None and "get_weather" not in t for t in texts
            ):
                break  # a template that ignores tool calls has no tool format to compare
            shown = [t if t is not None else f"<cannot render: {errors[0]}>" for t in texts]
            ids = [
                list(tokenizer(t, add_special_tokens=False)["input_ids"]) if t is not None else []
                for t in texts
            ]
            if ids[0] != ids[1] or None in texts:
                return RenderingDiff(conversation.source, mode, shown[0], shown[1], ids[0], ids[1])
    return None
