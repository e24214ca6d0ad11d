"""Render conversations with a chat template and mark which tokens are trained.

Templates are Jinja strings in the Hugging Face ``chat_template`` dialect, rendered by transformers' own
engine (``tokenizer.apply_chat_template``), so a template can be exactly a model's own.

Which tokens are trained is found by *prefix difference*: for assistant turn ``i`` the prompt is
``messages[:i]`` rendered with ``add_generation_prompt=True`` and the turn is ``messages[:i + 1]`` rendered
without it; the assistant span is the text between the two, i.e. the answer plus its end-of-turn marker as the
template writes it (``Paris.<|im_end|>\\n``). This needs a *prefix-stable* template: adding messages must not
change how earlier ones render. Templates that rewrite history (e.g. drop earlier reasoning) are rejected
with :class:`~ft_core.api.errors.TemplateMismatchError`.

The full rendering is tokenized once (``add_special_tokens=False``, exactly as ``apply_chat_template`` does)
and a token is trained when its start offset lies in a trained span. Where a token straddles a span boundary
(the prompt's last characters merge with the answer's first), the text is cut at that boundary and the pieces
are tokenized separately, so the prompt tokens are exactly what inference feeds the model and no prompt
character is trained. Slow tokenizers (no offsets) are always tokenized piece by piece; caveat: a
SentencePiece tokenizer may then add a word-start marker at each piece, so ids can differ slightly from
tokenizing the whole text — prefer fast tokenizers.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ft_core.api.context import IGNORE_INDEX
from ft_core.api.conversation import Conversation, Message
from ft_core.api.errors import DataError, TemplateMismatchError
from ft_core.engine.templates.truncation import truncate_turns, turns_of

MessageLike = Message | Mapping[str, Any]


class TemplateRenderError(DataError):
    """The chat template raised on a conversation (unsupported role, tool call, order, ...)."""


@dataclass(frozen=True)
class AssistantSpan:
    """Character range ``[start, end)`` of assistant message ``index`` in the full rendering."""

    index: int
    start: int
    end: int


@dataclass(frozen=True)
class Tokenized:
    """Token ids of a text cut at given character positions, no token crossing a cut.

    ``bounds`` maps each cut (and 0 and the text's length) to the index of the first token at or after it.
    ``token_starts`` (each token's start offset) is computed only when asked for: training needs the bounds alone.
    """

    ids: list[int]
    bounds: dict[int, int]
    _starts: Any  # a list of starts, or the backend Encoding they come from

    @property
    def token_starts(self) -> list[int]:
        """Each token's start offset in the text."""
        if isinstance(self._starts, list):
            return self._starts
        return [start for start, _ in self._starts.offsets]


@dataclass(frozen=True)
class RenderedConversation:
    """A conversation rendered and tokenized: text, assistant spans, token ids (and, on demand, their offsets)."""

    text: str
    messages: list[dict[str, Any]]
    spans: list[AssistantSpan]
    tokens: Tokenized

    @property
    def input_ids(self) -> list[int]:
        """The token ids of :attr:`text`."""
        return self.tokens.ids

    @property
    def token_starts(self) -> list[int]:
        """Each token's start offset in :attr:`text`."""
        return self.tokens.token_starts

    def token_range(self, span: AssistantSpan) -> tuple[int, int]:
        """The tokens ``[lo, hi)`` of ``span``."""
        return self.tokens.bounds[span.start], self.tokens.bounds[span.end]


def _as_hf(messages: Sequence[MessageLike]) -> list[dict[str, Any]]:
    return [m.to_hf() if isinstance(m, Message) else dict(m) for m in messages]


def render(
    tokenizer: Any,
    jinja: str,
    messages: Sequence[MessageLike],
    *,
    add_generation_prompt: bool = False,
    tools: list[dict[str, Any]] | None = None,
    name: str | None = None,
    special_tokens: Mapping[str, Any] | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """Render ``messages`` to text with ``jinja`` exactly as ``tokenizer.apply_chat_template`` does (transformers'
    own Jinja environment, with the tokenizer's special tokens as template variables).

    ``special_tokens`` replaces the tokenizer's (``tokenizer`` may then be ``None``: rendering without a model);
    ``template_kwargs`` are extra template variables (``enable_thinking``, ``date_string``, ...).
    An empty message list renders to ``""``. A template error becomes :class:`TemplateRenderError`.
    """
    from transformers.utils.chat_template_utils import render_jinja_template

    hf = _as_hf(messages)
    if not hf:
        return ""
    variables = dict(tokenizer.special_tokens_map if special_tokens is None else special_tokens)
    variables.update(template_kwargs or {})
    try:
        # What apply_chat_template(tokenize=False) runs, minus its overhead. transformers annotates it as returning
        # str; it returns (rendered texts, generation indices).
        rendered, _ = render_jinja_template(  # type: ignore[str-unpack]
            conversations=[hf],
            tools=list(tools) if tools is not None else None,
            chat_template=jinja,
            add_generation_prompt=add_generation_prompt,
            **variables,
        )
        return rendered[0]
    except Exception as exc:  # jinja2 errors, raise_exception(), TypeError on missing content, ...
        label = f"chat template {name!r}" if name else "the chat template"
        raise TemplateRenderError(
            f"{label} cannot render this conversation: {type(exc).__name__}: {exc}"
        ) from exc


def with_system(messages: Sequence[Message], system: str | None) -> list[Message]:
    """``messages`` with a system message ``system`` put first when it is given and there is none."""
    if system is None or any(m.role == "system" for m in messages):
        return list(messages)
    return [Message("system", system), *messages]


def _divergence(short: str, long: str, width: int = 60) -> str:
    index = next(
        (i for i, (a, b) in enumerate(zip(short, long, strict=False)) if a != b), min(len(short), len(long))
    )
    lo = max(0, index - width)
    return (
        f"they diverge at character {index}:\n"
        f"  shorter rendering: ...{short[lo : index + width]!r}\n"
        f"  longer rendering:  ...{long[lo : index + width]!r}"
    )


def _require_prefix(prefix: str, text: str, what: str, name: str | None, source: str) -> None:
    if text.startswith(prefix):
        return
    label = f"chat template {name!r}" if name else "the chat template"
    where = f" ({source})" if source else ""
    raise TemplateMismatchError(
        f"{label} is not prefix-stable{where}: {what}, so the trained tokens cannot be located. A template must "
        f"render earlier messages identically whatever follows them; {_divergence(prefix, text)}"
    )


def _is_fast(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` reports character offsets (a Rust-backed "fast" tokenizer)."""
    return bool(getattr(tokenizer, "is_fast", False))


def _encode_piece(tokenizer: Any, text: str) -> tuple[list[int], list[int] | None]:
    """Ids of ``text`` and, for a fast tokenizer, each token's start offset."""
    if not _is_fast(tokenizer):
        return list(tokenizer.encode(text, add_special_tokens=False)), None
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(encoded["input_ids"]), [start for start, _ in encoded["offset_mapping"]]


def _whole(tokenizer: Any, text: str, cuts: list[int]) -> Tokenized | None:
    """Encode ``text`` at once with a fast tokenizer's Rust backend; ``None`` when a token straddles a cut."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    # what tokenizer(text, add_special_tokens=False) gives
    return _from_encoding(backend.encode(text, add_special_tokens=False), text, cuts)


def _from_encoding(encoding: Any, text: str, cuts: list[int]) -> Tokenized | None:
    """The tokens of ``encoding`` (the backend's encoding of ``text``) cut at ``cuts``; ``None`` when a token
    straddles a cut.

    The token at each cut comes from ``char_to_token`` (no offsets list is built): the first token covering a
    character at or after the cut; it straddles the cut when it starts before it.
    """
    ids = encoding.ids
    bounds = {0: 0, len(text): len(ids)}
    for cut in cuts:
        token = next(
            (t for t in map(encoding.char_to_token, range(cut, len(text))) if t is not None), len(ids)
        )
        if token < len(ids) and encoding.token_to_chars(token)[0] < cut:
            return None
        bounds[cut] = token
    return Tokenized(ids, bounds, encoding)


def _tokenize(tokenizer: Any, text: str, cuts: Sequence[int], encoding: Any = None) -> Tokenized:
    """Token ids of ``text`` such that no token crosses a position in ``cuts``.

    A fast tokenizer encodes the whole text once (or takes ``encoding``, the backend's encoding of ``text``
    made beforehand); only if a token straddles a cut is the text encoded piece by piece between the cuts. A slow
    tokenizer is always encoded piece by piece (each token then gets its piece's start as offset, which is exact
    for labelling because pieces never cross a cut).
    """
    inner = sorted({c for c in cuts if 0 < c < len(text)})
    if encoding is not None:
        whole = _from_encoding(encoding, text, inner)
    else:
        whole = _whole(tokenizer, text, inner) if _is_fast(tokenizer) else None
    if whole is not None:
        return whole
    ids: list[int] = []
    starts: list[int] = []
    bounds = {0: 0}
    for lo, hi in itertools.pairwise([0, *inner, len(text)]):
        piece_ids, piece_starts = _encode_piece(tokenizer, text[lo:hi])
        ids.extend(piece_ids)
        starts.extend([lo + s for s in piece_starts] if piece_starts is not None else [lo] * len(piece_ids))
        bounds[hi] = len(ids)
    return Tokenized(ids, bounds, starts)


def _require_tools_rendered(
    text: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    name: str | None,
    source: str,
) -> None:
    """A template that ignores tool calls or tool schemas would train on answers stripped of them (an empty
    assistant turn where the call was): the name of every called or offered function must appear in the text."""
    called = [
        call.get("function", {}).get("name", "")
        for message in messages
        for call in message.get("tool_calls") or []
    ]
    offered = [tool.get("function", {}).get("name", "") for tool in tools or []]
    missing = [n for n in [*called, *offered] if n and n not in text]
    if missing:
        label = f"chat template {name!r}" if name else "the chat template"
        raise TemplateRenderError(
            f"{source or 'a conversation'}: {label} does not render its tool calls or tool schemas (no trace of "
            f"{', '.join(repr(n) for n in dict.fromkeys(missing))} in the rendering), so the model would learn empty "
            "answers where the calls were. Use a template with a tool format (e.g. qwen, llama3.1-style), or drop "
            "such rows (sharegpt function_call / tools columns)."
        )


def locate_assistant_spans(
    tokenizer: Any,
    jinja: str,
    conversation: Conversation,
    *,
    system: str | None = None,
    name: str | None = None,
    special_tokens: Mapping[str, Any] | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
    last_only: bool = False,
) -> tuple[str, list[dict[str, Any]], list[AssistantSpan]]:
    """``(text, messages, spans)``: the whole rendering and the character span of every assistant turn (only the
    last one with ``last_only``), found by prefix difference (text only: no tokenizer is needed when
    ``special_tokens`` is given).

    Raises :class:`TemplateMismatchError` when the template is not prefix-stable on this conversation and
    :class:`TemplateRenderError` when it cannot render it.
    """
    messages = _as_hf(with_system(conversation.messages, system))
    tools = conversation.tools
    source = conversation.source
    options: dict[str, Any] = dict(
        tools=tools, name=name, special_tokens=special_tokens, template_kwargs=template_kwargs
    )
    try:
        full = render(tokenizer, jinja, messages, **options)
    except TemplateRenderError as exc:
        roles = ", ".join(m["role"] for m in messages)
        raise TemplateRenderError(
            f"{source or 'a conversation'} (roles: {roles}): {exc}. Fix or drop such rows, or choose a template "
            "that supports them (for a template without a system role: remove the system prompt / "
            "template.system)"
        ) from exc
    _require_tools_rendered(full, messages, tools, name, source)
    spans: list[AssistantSpan] = []
    assistant_turns = [i for i, message in enumerate(messages) if message["role"] == "assistant"]
    for index in assistant_turns[-1:] if last_only else assistant_turns:
        if index == 0:
            raise DataError(
                f"conversation {source or '(unnamed)'} starts with an assistant turn; a user (or system) turn "
                "must come first"
            )
        prompt = render(tokenizer, jinja, messages[:index], add_generation_prompt=True, **options)
        last = index == len(messages) - 1
        turn = full if last else render(tokenizer, jinja, messages[: index + 1], **options)
        _require_prefix(
            prompt,
            turn,
            f"the generation prompt before message {index} is not a prefix of that turn",
            name,
            source,
        )
        _require_prefix(
            turn,
            full,
            f"messages up to {index} render differently inside the whole conversation",
            name,
            source,
        )
        spans.append(AssistantSpan(index, len(prompt), len(turn)))
    return full, messages, spans


def render_conversation(
    tokenizer: Any,
    jinja: str,
    conversation: Conversation,
    *,
    system: str | None = None,
    name: str | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
    last_only: bool = False,
) -> RenderedConversation:
    """Render and tokenize ``conversation``, locating every assistant turn (or the last) by prefix difference.

    Raises :class:`TemplateMismatchError` when the template is not prefix-stable and
    :class:`TemplateRenderError` when it cannot render the conversation.
    """
    full, messages, spans = locate_assistant_spans(
        tokenizer,
        jinja,
        conversation,
        system=system,
        name=name,
        template_kwargs=template_kwargs,
        last_only=last_only,
    )
    return tokenize_rendering(tokenizer, full, messages, spans)


def tokenize_rendering(
    tokenizer: Any,
    text: str,
    messages: list[dict[str, Any]],
    spans: list[AssistantSpan],
    encoding: Any = None,
) -> RenderedConversation:
    """Tokenize a rendering found by :func:`locate_assistant_spans` (with ``encoding``, the backend's encoding of
    ``text`` when it was made beforehand), no token crossing a span's edge."""
    cuts = [edge for span in spans for edge in (span.start, span.end)]
    return RenderedConversation(text, messages, spans, _tokenize(tokenizer, text, cuts, encoding))


def turn_by_turn(conversation: Conversation) -> list[Conversation]:
    """One conversation per assistant turn, ending with it: how a template that rewrites history (drops earlier
    reasoning) shows each turn at inference. Only the last assistant turn of each is trained."""
    ends = [i for i, message in enumerate(conversation.messages) if message.role == "assistant"]
    return [
        replace(conversation, messages=conversation.messages[: end + 1], source=conversation.source)
        for end in ends
    ]


def _labels(rendered: RenderedConversation, *, train_on_prompt: bool, mask_history: bool) -> list[int]:
    """Token ids where trained, :data:`IGNORE_INDEX` elsewhere: the tokens of every assistant span (the last only
    with ``mask_history``); with ``train_on_prompt`` also every token outside the spans ``mask_history`` masks."""
    trained_spans = rendered.spans[-1:] if mask_history else rendered.spans
    masked_spans = rendered.spans[:-1] if mask_history else []
    ids = rendered.input_ids
    if train_on_prompt:
        labels = list(ids)
        for span in masked_spans:
            lo, hi = rendered.token_range(span)
            labels[lo:hi] = [IGNORE_INDEX] * (hi - lo)
        return labels
    labels = [IGNORE_INDEX] * len(ids)
    for span in trained_spans:
        lo, hi = rendered.token_range(span)
        labels[lo:hi] = ids[lo:hi]
    return labels


def _train_turn_ends(
    rendered: RenderedConversation,
    input_ids: list[int],
    labels: list[int],
    stops: Collection[int],
    eos: int | None,
    mask_history: bool,
) -> None:
    """Train how a turn ends where the template writes no end marker: the stop token right after each trained
    answer; EOS appended after the last answer when the conversation ends there."""
    spans = rendered.spans[-1:] if mask_history else rendered.spans
    for span in spans:
        _, hi = rendered.token_range(span)
        if hi < len(rendered.input_ids) and rendered.input_ids[hi] in stops:
            labels[hi] = rendered.input_ids[hi]
        elif hi == len(rendered.input_ids) and eos is not None:
            input_ids.append(eos)
            labels.append(eos)


def encode_conversation(
    tokenizer: Any,
    jinja: str,
    conversation: Conversation,
    *,
    train_on_prompt: bool = False,
    mask_history: bool = False,
    cutoff_len: int,
    system: str | None = None,
    name: str | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
    last_only: bool = False,
    next_turn_stops: Collection[int] | None = None,
) -> dict[str, list[int]] | None:
    """Tokenize ``conversation`` for supervised training.

    Returns ``input_ids``, ``labels`` (:data:`IGNORE_INDEX` where not trained) and ``attention_mask``.
    By default every assistant turn (answer + end-of-turn marker) is trained; ``mask_history`` trains only the
    last one; ``train_on_prompt`` also trains all other text (earlier turns stay masked under
    ``mask_history``). ``system`` is put first when the conversation has no system message. Sequences longer
    than ``cutoff_len`` are cut turn by turn as LLaMA-Factory does (:mod:`~ft_core.engine.templates.truncation`;
    the last turn first with ``mask_history``). Returns ``None`` when no trained token remains (the caller
    skips and counts the sample). ``name`` only labels error messages. ``last_only`` trains only the last
    assistant turn and treats earlier ones as prompt (they need not render prefix-stably).
    ``next_turn_stops`` (token ids) is for templates that write no end marker after an answer: the stop token that
    follows a trained answer is trained too, and EOS is appended after a trained last answer.
    """
    rendered = render_conversation(
        tokenizer,
        jinja,
        conversation,
        system=system,
        name=name,
        template_kwargs=template_kwargs,
        last_only=last_only,
    )
    eos = tokenizer.eos_token_id if next_turn_stops is not None else None
    return supervised_row(
        rendered,
        eos,
        train_on_prompt=train_on_prompt,
        mask_history=mask_history,
        cutoff_len=cutoff_len,
        next_turn_stops=next_turn_stops,
    )


def supervised_row(
    rendered: RenderedConversation,
    eos: int | None,
    *,
    train_on_prompt: bool,
    mask_history: bool,
    cutoff_len: int,
    next_turn_stops: Collection[int] | None,
) -> dict[str, list[int]] | None:
    """The supervised row of a rendered conversation (see :func:`encode_conversation`; ``eos`` is the tokenizer's
    EOS id, appended after a trained last answer with ``next_turn_stops``), or ``None`` without a trained token."""
    labels = _labels(rendered, train_on_prompt=train_on_prompt, mask_history=mask_history)
    input_ids = list(rendered.input_ids)
    if next_turn_stops is not None:
        _train_turn_ends(rendered, input_ids, labels, next_turn_stops, eos, mask_history)
    length = len(rendered.input_ids)
    # the EOS trained after a last answer without an end marker, kept after the cut
    appended = input_ids[length:], labels[length:]
    turns = turns_of([rendered.token_range(span) for span in rendered.spans], length)
    input_ids, labels, _ = truncate_turns(
        input_ids[:length],
        labels[:length],
        turns,
        cutoff_len,
        last_turn_first=mask_history,
        reserved=len(appended[0]),
    )
    input_ids += appended[0]
    labels += appended[1]
    if labels.count(IGNORE_INDEX) == len(labels):  # no trained token (counted in C: rows are long)
        return None
    return {"input_ids": input_ids, "labels": labels, "attention_mask": [1] * len(input_ids)}


def encode_supervised(
    tokenizer: Any,
    jinja: str,
    conversation: Conversation,
    *,
    prefix_stable: bool = True,
    train_on_prompt: bool = False,
    mask_history: bool = False,
    cutoff_len: int,
    system: str | None = None,
    name: str | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
    next_turn_stops: Collection[int] | None = None,
) -> list[dict[str, list[int]]]:
    """The supervised rows of ``conversation``: one row (:func:`encode_conversation`) when the template renders it
    prefix-stably; otherwise, for a template declared not prefix-stable (reasoning templates that drop earlier
    turns' reasoning), one row per assistant turn, each rendered exactly as inference shows it and training only
    that turn (``mask_history`` keeps only the last). Rows with no trained token left are dropped."""
    options: dict[str, Any] = dict(
        train_on_prompt=train_on_prompt,
        cutoff_len=cutoff_len,
        system=system,
        name=name,
        template_kwargs=template_kwargs,
        next_turn_stops=next_turn_stops,
    )
    try:
        row = encode_conversation(tokenizer, jinja, conversation, mask_history=mask_history, **options)
        return [] if row is None else [row]
    except TemplateMismatchError:
        if prefix_stable:
            raise
    views = turn_by_turn(conversation)
    if mask_history:
        views = views[-1:]
    try:
        rows = [encode_conversation(tokenizer, jinja, view, last_only=True, **options) for view in views]
    except TemplateMismatchError as exc:
        raise TemplateMismatchError(
            f"{exc}\nEven turn by turn, the answer does not follow the generation prompt. For a reasoning template "
            "this usually means the data carries reasoning while thinking is switched off (or the reverse): check "
            f"template.kwargs (now {dict(template_kwargs or {})}) against the data."
        ) from exc
    return [row for row in rows if row is not None]


def encode_completion(
    tokenizer: Any,
    jinja: str,
    conversation: Conversation,
    answer: Message | None = None,
    *,
    system: str | None = None,
    name: str | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
) -> tuple[list[int], list[int]]:
    """``(prompt_ids, completion_ids)`` of the conversation's last assistant turn (or ``answer`` in its place).

    The prompt is everything before that turn with the generation prompt; the completion is the rest of the
    rendering up to and including the turn's end marker, cut exactly where inference would start generating (a
    token straddling that point is split, as in :func:`encode_conversation`).
    """
    messages = _as_hf(with_system(conversation.messages, system))
    if answer is not None:
        messages = [*messages[:-1], answer.to_hf()]
    if not messages or messages[-1]["role"] != "assistant":
        raise DataError(f"{conversation.source or 'a conversation'}: it must end with an assistant turn")
    source = conversation.source
    options: dict[str, Any] = dict(tools=conversation.tools, name=name, template_kwargs=template_kwargs)
    try:
        prompt = render(tokenizer, jinja, messages[:-1], add_generation_prompt=True, **options)
        turn = render(tokenizer, jinja, messages, **options)
    except TemplateRenderError as exc:
        raise TemplateRenderError(f"{source or 'a conversation'}: {exc}") from exc
    _require_prefix(
        prompt, turn, "the generation prompt is not a prefix of the answered conversation", name, source
    )
    tokens = _tokenize(tokenizer, turn, [len(prompt)])
    split = tokens.bounds[len(prompt)]
    return tokens.ids[:split], tokens.ids[split:]


def generation_inputs(
    tokenizer: Any,
    jinja: str,
    messages: Sequence[MessageLike],
    tools: list[dict[str, Any]] | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
) -> list[int]:
    """Token ids that prompt the model for the next assistant turn (``add_generation_prompt=True``)."""
    text = render(
        tokenizer, jinja, messages, add_generation_prompt=True, tools=tools, template_kwargs=template_kwargs
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def stop_token_ids(tokenizer: Any, template: Any) -> list[int]:
    """EOS plus every stop word of ``template`` (anything with ``stop_words``) that is a single token."""
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    for word in getattr(template, "stop_words", ()):
        encoded = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(encoded[0])
    return ids
