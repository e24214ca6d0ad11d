"""Batch encoding (``Encoder.encode_supervised_batch``, what ``ft-core prepare`` runs) gives exactly the rows of
encoding each conversation alone, for every installed chat template and every supervision option: the same token
ids and labels, the same Arrow table, the same first error."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ft_core.api.conversation import Conversation, Message
from ft_core.bootstrap import load_plugins
from ft_core.engine.data.prepare import _table
from ft_core.engine.templates.encoder import TemplateEncoder
from ft_core.engine.templates.rows import SupervisedRows
from ft_core.testing.templates import golden_conversations
from ft_core.testing.tiny import DEFAULT_SPECIAL_TOKENS, SlowTokenizerView, tiny_tokenizer

PLUGINS = load_plugins()
TEMPLATES = sorted(PLUGINS.names("chat_template"))
OPTIONS: list[dict[str, Any]] = [
    {},
    {"train_on_prompt": True},
    {"mask_history": True},
    {"cutoff_len": 48},
    {"cutoff_len": 48, "mask_history": True, "train_on_prompt": True},
    {"system": "Answer in one word."},
]


def _corpus() -> list[Conversation]:
    """Golden conversations (system prompts, several turns, non-ASCII, a tool call, reasoning), alpaca-like rows,
    long multi-turn rows that the cutoff cuts and one whose answer starts inside a word."""
    rng = random.Random(0)
    words = ["hello", "world", " spaced", "é", "中文", "\n", "Paris.", "{x}", "  ", "<s>"]

    def text(count: int) -> str:
        return "".join(rng.choice(words) + rng.choice([" ", "", "\n"]) for _ in range(count)).strip() or "x"

    conversations = golden_conversations(tools=True, reasoning=True)
    conversations += [
        Conversation([Message("user", text(12)), Message("assistant", text(20))]) for _ in range(6)
    ]
    for _ in range(4):
        turns = [Message("system", text(4))]
        for _ in range(3):
            turns += [Message("user", text(30)), Message("assistant", text(30))]
        conversations.append(Conversation(turns))
    # with a template that joins the turns (``empty``), a token straddles the answer's start: split there
    conversations.append(
        Conversation([Message("user", "The quick bro"), Message("assistant", "wn fox jumps")])
    )
    for number, conversation in enumerate(conversations):
        conversation.source = f"conversation {number}"
    return conversations


def _tokenizers(template: Any) -> dict[str, Any]:
    """One tokenizer that knows the template's special tokens (atomic, as the model's own) and one that does not
    (they split into pieces, so tokens straddle the trained spans' edges and the piece-by-piece path runs)."""
    specials = [
        t for t in (*DEFAULT_SPECIAL_TOKENS, *template.special_tokens.values(), *template.stop_words) if t
    ]
    knowing = tiny_tokenizer(
        special_tokens=specials,
        chat_template=None,
        bos_token=template.special_tokens.get("bos_token") or "<s>",
        eos_token=template.special_tokens.get("eos_token") or "<|im_end|>",
    )
    return {
        "knowing": knowing,
        "plain": tiny_tokenizer(special_tokens=["<unk>", "<|im_end|>"], bos_token=None),
    }


def _one_by_one(encoder: TemplateEncoder, conversations: list[Conversation]) -> list[Any]:
    """Each conversation's rows, or the error it raises (``(type, message)``)."""
    results: list[Any] = []
    for conversation in conversations:
        try:
            results.append(encoder.encode_supervised(conversation))
        except Exception as exc:  # the error itself is compared
            results.append((type(exc), str(exc)))
    return results


@pytest.mark.parametrize("name", TEMPLATES)
def test_batch_encoding_gives_the_rows_of_one_by_one(name: str) -> None:
    template = PLUGINS.get("chat_template", name)
    conversations = _corpus()
    variants = [dict(template.template_kwargs)]
    if "enable_thinking" in template.template_kwargs:
        variants.append(
            {**template.template_kwargs, "enable_thinking": not template.template_kwargs["enable_thinking"]}
        )
    encoded = 0
    for tokenizer in _tokenizers(template).values():
        for options in OPTIONS:
            for kwargs in variants:
                encoder = TemplateEncoder(
                    tokenizer=tokenizer,
                    jinja=template.jinja,
                    cutoff_len=options.get("cutoff_len", 4096),
                    train_on_prompt=options.get("train_on_prompt", False),
                    mask_history=options.get("mask_history", False),
                    system=options.get("system"),
                    template_name=name,
                    prefix_stable=template.prefix_stable,
                    template_kwargs=kwargs,
                    next_turn_stop_words=template.stop_words if template.stop_at_next_turn else None,
                )
                alone = _one_by_one(encoder, conversations)
                good = [c for c, result in zip(conversations, alone, strict=True) if isinstance(result, list)]
                expected = [row for result in alone if isinstance(result, list) for row in result]
                batch = encoder.encode_supervised_batch(good)
                assert isinstance(batch, SupervisedRows)
                assert list(batch) == expected, f"{name} {options} {kwargs}"
                table, reference = _table(batch), _table(expected)
                assert table.schema == reference.schema and table.equals(reference)
                encoded += len(expected)
                first_error = next((result for result in alone if isinstance(result, tuple)), None)
                if first_error is not None:
                    with pytest.raises(first_error[0]) as raised:
                        encoder.encode_supervised_batch(conversations)
                    assert str(raised.value) == first_error[1]
    assert encoded, f"{name}: no conversation encoded"


def test_slow_tokenizers_and_empty_batches_encode_one_by_one() -> None:
    template = PLUGINS.get("chat_template", "chatml")
    encoder = TemplateEncoder(
        tokenizer=SlowTokenizerView(tiny_tokenizer()), jinja=template.jinja, cutoff_len=64
    )
    conversations = _corpus()[-6:]
    assert list(encoder.encode_supervised_batch(conversations)) == [
        row for conversation in conversations for row in encoder.encode_supervised(conversation)
    ]
    assert list(encoder.encode_supervised_batch([])) == []
    assert _table(SupervisedRows([])).num_columns == 0
