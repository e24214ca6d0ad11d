"""The canonical sample forms every dataset format converts to (conversations and their preference extras)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Message:
    """One turn. ``role`` is system, user, assistant or tool (a tool result / observation).

    An assistant turn may carry ``tool_calls`` in the Hugging Face form
    ``[{"type": "function", "function": {"name": ..., "arguments": {...}}}]`` and ``reasoning`` (its thinking,
    passed to templates as ``reasoning_content``). ``content`` may hold ``<image>`` placeholders, one per image of
    the conversation (:attr:`Conversation.images`), in order.
    """

    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None = None
    reasoning: str | None = None

    def to_hf(self) -> dict[str, Any]:
        """The message as the dict ``tokenizer.apply_chat_template`` takes."""
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        if self.reasoning is not None:
            message["reasoning_content"] = self.reasoning
        return message


@dataclass
class Conversation:
    """A conversation: optional system turn first, then user/assistant (and tool) turns.

    ``tools`` holds JSON-schema function definitions offered to the model, if any.
    ``images`` are the image files (paths, or anything PIL opens) of the ``<image>`` placeholders in the
    messages, in order of appearance.
    ``source`` says where the sample came from (``file.json row 12``) for error messages.
    ``extra`` carries what a stage needs beyond the turns: ``rejected`` (the rejected assistant
    :class:`Message` of a preference pair; the conversation ends with the chosen one) and ``kto_tag``
    (a KTO row's boolean label).
    """

    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    source: str = ""
    images: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_hf(self) -> list[dict[str, Any]]:
        """Messages as the list of dicts ``tokenizer.apply_chat_template`` takes."""
        return [m.to_hf() for m in self.messages]
