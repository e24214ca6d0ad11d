"""Conformance checks for plugin components, one function per kind; each raises ``AssertionError``.

Chat templates (``ft_register_chat_templates``)::

    from ft_core.testing.conformance import check_chat_template

    def test_conformance(tiny_tokenizer):
        check_chat_template(MY_TEMPLATE, tiny_tokenizer)

Checks of other kinds live in sibling modules (``conformance_adapters``, ...).
"""

from __future__ import annotations

from typing import Any

from ft_core.api.conversation import Conversation
from ft_core.api.descriptors import ChatTemplate
from ft_core.api.errors import FtCoreError
from ft_core.engine.templates.golden import TOOLS_SOURCE, golden_conversations
from ft_core.engine.templates.render import (
    IGNORE_INDEX,
    RenderedConversation,
    TemplateRenderError,
    encode_conversation,
    render,
    render_conversation,
)


def _find_contents(rendered: RenderedConversation, roles: tuple[str, ...]) -> list[tuple[int, int, int]]:
    """``(message index, start, end)`` of each non-empty content of ``roles``, searched in order in the text."""
    found, cursor = [], 0
    for index, message in enumerate(rendered.messages):
        content = str(message.get("content") or "").strip()
        if not content:
            continue
        position = rendered.text.find(content, cursor)
        if position < 0:
            continue  # a template may legitimately not show a message (e.g. a system prompt it ignores)
        cursor = position + len(content)
        if message["role"] in roles:
            found.append((index, position, cursor))
    return found


def _token_ranges(rendered: RenderedConversation) -> list[tuple[int, int]]:
    starts = rendered.token_starts
    return [
        (start, starts[i + 1] if i + 1 < len(starts) else len(rendered.text))
        for i, start in enumerate(starts)
    ]


def _check_conversation(
    template: ChatTemplate, tokenizer: Any, conversation: Conversation, name: str | None, label: str
) -> None:
    where = f"{label}, golden conversation {conversation.source!r}"
    try:
        rendered = render_conversation(tokenizer, template.jinja, conversation, name=name)
        encoded = encode_conversation(tokenizer, template.jinja, conversation, cutoff_len=1 << 30, name=name)
    except FtCoreError as exc:
        raise AssertionError(f"{where}: {exc}") from exc
    assistants = [i for i, m in enumerate(rendered.messages) if m["role"] == "assistant"]
    assert [s.index for s in rendered.spans] == assistants, f"{where}: not every assistant turn got a span"
    assert encoded is not None, f"{where}: no token is trained"
    labels = encoded["labels"]
    assert encoded["input_ids"] == rendered.input_ids, f"{where}: encode_conversation and rendering disagree"

    # Generation prompt: rendering up to an assistant turn with add_generation_prompt is a prefix of the turn.
    for span in rendered.spans:
        prompt = render(
            tokenizer,
            template.jinja,
            rendered.messages[: span.index],
            add_generation_prompt=True,
            tools=conversation.tools,
        )
        assert rendered.text.startswith(prompt) and len(prompt) == span.start, (
            f"{where}: the generation prompt before message {span.index} is not a prefix of the conversation"
        )

    ranges = _token_ranges(rendered)
    # Every assistant content is inside its span and all its tokens are trained.
    for index, start, end in _find_contents(rendered, ("assistant",)):
        span = next(s for s in rendered.spans if s.index == index)
        assert span.start <= start and end <= span.end, (
            f"{where}: the content of assistant message {index} lies outside its trained span "
            f"{rendered.text[span.start : span.end]!r}"
        )
        untrained = [
            tokenizer.decode([rendered.input_ids[t]])
            for t, (lo, hi) in enumerate(ranges)
            if lo < end and hi > start and labels[t] == IGNORE_INDEX
        ]
        assert not untrained, f"{where}: tokens of assistant message {index} are not trained: {untrained!r}"
    # No system / user / tool text is trained.
    for index, start, end in _find_contents(rendered, ("system", "user", "tool")):
        trained = [
            tokenizer.decode([rendered.input_ids[t]])
            for t, (lo, hi) in enumerate(ranges)
            if lo < end and hi > start and labels[t] != IGNORE_INDEX
        ]
        assert not trained, (
            f"{where}: tokens of {rendered.messages[index]['role']} message {index} are trained: {trained!r}"
        )


def check_chat_template(template: ChatTemplate, tokenizer: Any, name: str | None = None) -> None:
    """Check a chat template on the golden conversations with ``tokenizer`` (e.g. ``tiny_tokenizer``).

    1. It renders every golden conversation (the tool conversation may raise if tools are unsupported) and is
       prefix-stable, so :func:`~ft_core.engine.templates.encode_conversation` can locate the assistant turns.
    2. The generation prompt before each assistant turn is a prefix of the rendering with that turn.
    3. Every token of every assistant content is trained; no token of system, user or tool text is.
    4. Each stop word is a single token of ``tokenizer`` (otherwise generation could not stop on it).

    ``name`` only labels failure messages.
    """
    assert isinstance(template, ChatTemplate), f"expected a ChatTemplate, got {type(template).__name__}"
    label = f"chat template {name!r}" if name else "chat template"
    for conversation in golden_conversations():
        if conversation.source == TOOLS_SOURCE:  # skipped by templates without a tool format
            try:
                render_conversation(tokenizer, template.jinja, conversation, name=name)
            except TemplateRenderError:
                continue
        _check_conversation(template, tokenizer, conversation, name, label)
    for word in template.stop_words:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, f"{label}: stop word {word!r} is {len(ids)} tokens of this tokenizer, not one"
