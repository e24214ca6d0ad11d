"""Reasoning in the answers of training data, as LLaMA-Factory treats it.

- ``template.kwargs.enable_thinking: false``: the reasoning is removed from every assistant answer (the model is
  trained to answer without thinking, as the template prompts it to), instead of the data clashing with the
  template.
- ``data.mask_history`` without ``data.preserve_thinking``: the reasoning of the earlier (untrained) assistant
  turns is removed, as the model sees earlier turns at inference.

Reasoning is a message's ``reasoning`` field or a ``<think>...</think>`` block in its content.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ft_core.api.conversation import Conversation, Message

#: A reasoning block in an answer's text (LLaMA-Factory's default thought words).
THOUGHT = re.compile(r"<think>.*?</think>", re.DOTALL)


def without_reasoning(message: Message) -> Message:
    """``message`` with its reasoning removed (the ``reasoning`` field and ``<think>`` blocks in its content)."""
    content = THOUGHT.sub("", message.content).lstrip("\n")
    if content == message.content and message.reasoning is None:
        return message
    return replace(message, content=content, reasoning=None)


def apply_thinking_rules(
    conversation: Conversation, *, enable_thinking: bool | None, mask_history: bool, preserve_thinking: bool
) -> Conversation:
    """``conversation`` with reasoning removed where the rules above say so (the same object when nothing is)."""
    assistant = [i for i, m in enumerate(conversation.messages) if m.role == "assistant"]
    if enable_thinking is False:
        strip = set(assistant)
    elif mask_history and not preserve_thinking:
        strip = set(assistant[:-1])
    else:
        return conversation
    messages = [without_reasoning(m) if i in strip else m for i, m in enumerate(conversation.messages)]
    extra = conversation.extra
    rejected = extra.get("rejected")
    if enable_thinking is False and isinstance(rejected, Message):
        extra = {**extra, "rejected": without_reasoning(rejected)}
    if messages == conversation.messages and extra is conversation.extra:
        return conversation
    return replace(conversation, messages=messages, extra=extra)
