"""Encode many conversations for supervised training together: each is rendered and its assistant spans located as
:func:`~ft_core.engine.templates.render.encode_supervised` does, then every rendering is tokenized in one call of
the fast tokenizer's Rust backend, then each row is labelled and cut exactly as one conversation alone is. The
rows are identical to encoding the conversations one by one (tests compare them); only the tokenizer calls are
fewer. The rows come as :class:`~ft_core.engine.templates.rows.SupervisedRows` (columns the engine stores as they
are)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from ft_core.api.conversation import Conversation
from ft_core.api.errors import TemplateMismatchError
from ft_core.engine.templates.render import (
    encode_supervised,
    locate_assistant_spans,
    supervised_row,
    tokenize_rendering,
)
from ft_core.engine.templates.rows import SupervisedRows

Row = dict[str, list[int]]


def encode_supervised_batch(
    tokenizer: Any,
    jinja: str,
    conversations: Iterable[Conversation],
    *,
    prefix_stable: bool = True,
    **options: Any,
) -> SupervisedRows:
    """The supervised rows of ``conversations`` (consumed in order), as :func:`encode_supervised` gives each one
    with the same keyword ``options`` (``cutoff_len``, ``train_on_prompt``, ``mask_history``, ``system``, ``name``,
    ``template_kwargs``, ``next_turn_stops``), concatenated. A conversation the template renders only turn by turn
    is encoded alone; errors are raised for the first conversation that has one, as one by one."""
    system, name, template_kwargs = (options.get(key) for key in ("system", "name", "template_kwargs"))
    next_turn_stops: Collection[int] | None = options.get("next_turn_stops")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not getattr(tokenizer, "is_fast", False):
        return SupervisedRows(
            row
            for conversation in conversations
            for row in encode_supervised(
                tokenizer, jinja, conversation, prefix_stable=prefix_stable, **options
            )
        )
    # per conversation: its rendering, text, messages and spans, or its rows when it was encoded turn by turn
    located: list[tuple[str, list[dict[str, Any]], list[Any]] | list[Row]] = []
    for conversation in conversations:
        try:
            located.append(
                locate_assistant_spans(
                    tokenizer, jinja, conversation, system=system, name=name, template_kwargs=template_kwargs
                )
            )
        except TemplateMismatchError:
            if prefix_stable:
                raise
            located.append(encode_supervised(tokenizer, jinja, conversation, prefix_stable=False, **options))
    texts = [found[0] for found in located if isinstance(found, tuple)]
    # what tokenizer(texts, add_special_tokens=False) encodes
    encodings = iter(backend.encode_batch(texts, add_special_tokens=False))
    eos = tokenizer.eos_token_id if next_turn_stops is not None else None
    rows: list[Row] = []
    for found in located:
        if not isinstance(found, tuple):
            rows += found
            continue
        rendered = tokenize_rendering(tokenizer, *found, encoding=next(encodings))
        row = supervised_row(
            rendered,
            eos,
            train_on_prompt=options.get("train_on_prompt", False),
            mask_history=options.get("mask_history", False),
            cutoff_len=options["cutoff_len"],
            next_turn_stops=next_turn_stops,
        )
        if row is not None:
            rows.append(row)
    return SupervisedRows(rows)
