"""Exactness checks of chat templates against a model's official Jinja, for template authors.

::

    from ft_core.testing.templates import check_official_template

    OFFICIAL = (Path(__file__).parent / "official" / "mymodel.jinja").read_text()

    def test_renders_like_the_official_template():
        check_official_template(MY_TEMPLATE, OFFICIAL, name="mymodel")

The official template is the Jinja in the model's published ``tokenizer_config.json`` / ``chat_template.jinja``,
kept verbatim in the plugin's tests. Rendering uses the template's own :attr:`ChatTemplate.special_tokens`, so no
tokenizer of the model is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ft_core.api.context import IGNORE_INDEX
from ft_core.api.conversation import Conversation, Message
from ft_core.api.descriptors import ChatTemplate
from ft_core.api.errors import TemplateMismatchError
from ft_core.engine.templates import golden
from ft_core.engine.templates.render import (
    TemplateRenderError,
    encode_supervised,
    locate_assistant_spans,
    render,
    stop_token_ids,
    turn_by_turn,
)
from ft_core.testing.tiny import DEFAULT_SPECIAL_TOKENS, tiny_tokenizer

__all__ = ["check_official_template", "golden_conversations", "render_template", "trained_texts"]


def golden_conversations(*, tools: bool = False, reasoning: bool = False) -> list[Conversation]:
    """The golden conversations: system prompt or none, single and multi-turn, non-ASCII text; with ``tools`` also
    a tool call and its result (with the tool schema offered); with ``reasoning`` also assistant turns carrying
    reasoning. A fresh copy each call."""
    conversations = [c for c in golden.golden_conversations() if tools or c.source != golden.TOOLS_SOURCE]
    return conversations + (golden.reasoning_conversations() if reasoning else [])


def render_template(
    template: ChatTemplate | str,
    messages: Sequence[Message | Mapping[str, Any]],
    *,
    special_tokens: Mapping[str, str] | None = None,
    add_generation_prompt: bool = False,
    tools: list[dict[str, Any]] | None = None,
    **template_kwargs: Any,
) -> str:
    """``messages`` rendered by ``template`` (a :class:`ChatTemplate` or Jinja text) as ``apply_chat_template`` would,
    with ``special_tokens`` (default: the template's own) and the template's keyword defaults under
    ``template_kwargs``."""
    jinja, tokens, kwargs = _parts(template, special_tokens, template_kwargs)
    return render(
        None,
        jinja,
        messages,
        add_generation_prompt=add_generation_prompt,
        tools=tools,
        special_tokens=tokens,
        template_kwargs=kwargs,
    )


def _parts(
    template: ChatTemplate | str, special_tokens: Mapping[str, str] | None, kwargs: Mapping[str, Any]
) -> tuple[str, dict[str, str], dict[str, Any]]:
    if isinstance(template, str):
        return template, dict(special_tokens or {}), dict(kwargs)
    tokens = dict(template.special_tokens if special_tokens is None else special_tokens)
    return template.jinja, tokens, {**template.template_kwargs, **kwargs}


def trained_texts(
    template: ChatTemplate, conversation: Conversation, **template_kwargs: Any
) -> list[tuple[str, str]]:
    """``(rendering, trained text)`` for each assistant turn as ft-core trains it: for a prefix-stable template
    the whole conversation's rendering once per turn; otherwise the rendering of the conversation up to that turn
    (how inference shows it). Text only: rendered with the template's special tokens. For a template with
    ``stop_at_next_turn``, the stop word that follows an answer (or EOS after the last) is part of its text."""
    jinja, tokens, kwargs = _parts(template, None, template_kwargs)
    views = [conversation] if template.prefix_stable else turn_by_turn(conversation)
    result: list[tuple[str, str]] = []
    for view in views:
        text, _, spans = locate_assistant_spans(
            None,
            jinja,
            view,
            special_tokens=tokens,
            template_kwargs=kwargs,
            last_only=not template.prefix_stable,
        )
        result.extend(
            (text, text[span.start : span.end] + _turn_end(template, text, span.end)) for span in spans
        )
    return result


def _turn_end(template: ChatTemplate, text: str, end: int) -> str:
    """What ft-core trains after an answer of a ``stop_at_next_turn`` template: the stop word that follows, or EOS
    when the text ends there ("" for other templates)."""
    if not template.stop_at_next_turn:
        return ""
    following = next((w for w in template.stop_words if text.startswith(w, end)), None)
    if following is not None:
        return following
    return template.special_tokens.get("eos_token", "") if end == len(text) else ""


def _renderings(conversation: Conversation) -> list[tuple[str, list[Message], bool]]:
    """Whole conversation, and every generation prompt before an assistant turn."""
    messages = conversation.messages
    prompts = [
        (f"generation prompt before message {i}", messages[:i], True)
        for i, m in enumerate(messages)
        if m.role == "assistant"
    ]
    return [("whole conversation", messages, False), *prompts]


def _render_or_error(jinja: str, messages: list[Message], conversation: Conversation, **options: Any) -> str:
    try:
        return render(None, jinja, messages, tools=conversation.tools, **options)
    except TemplateRenderError as exc:
        return f"<cannot render: {str(exc).split(': ', 1)[-1]}>"


def _check_same_text(
    template: ChatTemplate, official: str, conversation: Conversation, kwargs: dict[str, Any], where: str
) -> bool:
    """Both templates render every rendering of ``conversation`` identically (or both refuse it); returns whether
    ft-core's renders it at all."""
    tokens = dict(template.special_tokens)
    for mode, messages, prompt in _renderings(conversation):
        options = dict(add_generation_prompt=prompt, special_tokens=tokens, template_kwargs=kwargs)
        expected = _render_or_error(official, messages, conversation, **options)
        actual = _render_or_error(template.jinja, messages, conversation, **options)
        if expected.startswith("<cannot render") and actual.startswith("<cannot render"):
            return False  # the model's own template refuses it too (e.g. a system role it does not have)
        assert expected == actual, (
            f"{where}, {mode}: ft-core's template renders differently from the official one\n"
            f"official: {expected!r}\nft-core:  {actual!r}"
        )
    return True


def _others(conversation: Conversation, upto: int) -> list[str]:
    """Contents of the non-assistant messages before ``upto``: text that must never be trained."""
    return [
        m.content.strip() for m in conversation.messages[:upto] if m.role != "assistant" and m.content.strip()
    ]


def _check_trained_spans(
    template: ChatTemplate, conversation: Conversation, kwargs: dict[str, Any], where: str
) -> None:
    """Each trained span holds exactly one assistant turn: its content, its calls, its end marker; no other text."""
    assistants = [i for i, m in enumerate(conversation.messages) if m.role == "assistant"]
    spans = trained_texts(template, conversation, **kwargs)
    assert len(spans) == len(assistants), (
        f"{where}: {len(spans)} trained spans for {len(assistants)} assistant turns"
    )
    end_markers = [*template.stop_words, template.special_tokens.get("eos_token", "")]
    for (_, span), index in zip(spans, assistants, strict=True):
        message = conversation.messages[index]
        assert message.content.strip() in span, (
            f"{where}: the trained span {span!r} lacks the answer {message.content!r}"
        )
        for call in message.tool_calls or []:
            assert call["function"]["name"] in span, f"{where}: the trained span {span!r} lacks its tool call"
        for other in _others(conversation, index):
            if other not in message.content:
                assert other not in span, f"{where}: the trained span {span!r} contains prompt text {other!r}"
        if any(end_markers):
            tail = (
                span[span.rfind(message.content.strip()) + len(message.content.strip()) :]
                if message.content
                else span
            )
            assert any(m and m in tail for m in end_markers), (
                f"{where}: the trained span {span!r} does not end with the turn's end marker ({end_markers})"
            )


def _tokenizer_for(template: ChatTemplate) -> Any:
    """A tiny tokenizer holding the template's special tokens and stop words as single tokens."""
    specials = [*DEFAULT_SPECIAL_TOKENS, *template.special_tokens.values(), *template.stop_words]
    return tiny_tokenizer(
        special_tokens=[t for t in specials if t],
        chat_template=None,
        bos_token=template.special_tokens.get("bos_token") or "<s>",
        eos_token=template.special_tokens.get("eos_token") or "<|im_end|>",
    )


def _check_trained_tokens(
    template: ChatTemplate, conversation: Conversation, kwargs: dict[str, Any], where: str
) -> None:
    """Tokenized as a run does, the trained tokens decode to exactly the trained spans."""
    tokenizer = _tokenizer_for(template)
    try:
        rows = encode_supervised(
            tokenizer,
            template.jinja,
            conversation,
            prefix_stable=template.prefix_stable,
            cutoff_len=1 << 30,
            template_kwargs={
                **template.special_tokens,
                **kwargs,
            },  # the template's tokens, as the text checks
            next_turn_stops=frozenset(stop_token_ids(tokenizer, template))
            if template.stop_at_next_turn
            else None,
        )
    except TemplateMismatchError as exc:
        raise AssertionError(f"{where}: {exc}") from exc
    trained = "".join(tokenizer.decode([t for t in row["labels"] if t != IGNORE_INDEX]) for row in rows)
    expected = "".join(span for _, span in trained_texts(template, conversation, **kwargs))
    assert trained == expected, (
        f"{where}: trained tokens {trained!r} are not the assistant spans {expected!r}"
    )


def check_official_template(
    template: ChatTemplate,
    official_jinja: str,
    *,
    name: str,
    conversations: Sequence[Conversation] | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Assert that ``template`` is the model's official template in effect, on every conversation.

    ``conversations`` default to :func:`golden_conversations` with tools when the template has a tool format and
    with reasoning when it is not prefix-stable. For each one, both templates render the whole conversation and
    every generation prompt before an assistant turn to exactly the same text (with the template's special
    tokens and keyword defaults, updated by ``template_kwargs``); a conversation the official template refuses
    must be refused by ft-core's too. Then the spans ft-core trains must be exactly the assistant turns (answer,
    tool calls, end-of-turn marker, nothing of the prompt), and tokenizing as a run does must train exactly those
    characters. Raises ``AssertionError`` naming the template, conversation and rendering that differ.
    """
    kwargs = {**template.template_kwargs, **(template_kwargs or {})}
    chosen = (
        list(conversations)
        if conversations is not None
        else golden_conversations(tools=template.supports_tools, reasoning=not template.prefix_stable)
    )
    assert chosen, "no conversations to check"
    rendered_any = False
    for conversation in chosen:
        where = f"template {name!r}, conversation {conversation.source!r}"
        if not _check_same_text(template, official_jinja, conversation, kwargs, where):
            continue
        rendered_any = True
        _check_trained_spans(template, conversation, kwargs, where)
        _check_trained_tokens(template, conversation, kwargs, where)
    assert rendered_any, f"template {name!r}: neither template rendered any conversation"
