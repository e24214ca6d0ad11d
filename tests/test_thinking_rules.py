"""Reasoning in answers: ``enable_thinking: false`` strips it, ``mask_history`` drops earlier turns' reasoning unless
``data.preserve_thinking`` (ft_core.engine.templates.thinking), as LLaMA-Factory does."""

from __future__ import annotations

from ft_core.api.context import IGNORE_INDEX
from ft_core.api.conversation import Conversation, Message
from ft_core.engine.templates.encoder import TemplateEncoder
from ft_core.engine.templates.thinking import apply_thinking_rules, without_reasoning
from ft_core.testing import tiny_tokenizer
from ft_core.testing.tiny import CHATML_JINJA
from ft_core_qwen import template_text


def chat() -> Conversation:
    return Conversation(
        [
            Message("user", "What is 2 + 3?"),
            Message("assistant", "<think>\n2 plus 3 makes 5.\n</think>\n\n5."),
            Message("user", "And times 4?"),
            Message("assistant", "20.", reasoning="5 times 4 is 20."),
        ],
        source="chat.json row 1",
    )


def test_without_reasoning_removes_the_field_and_think_blocks() -> None:
    assert without_reasoning(Message("assistant", "<think>a\nb</think>\n\nAnswer.")) == Message(
        "assistant", "Answer."
    )
    assert without_reasoning(Message("assistant", "x", reasoning="r")).reasoning is None
    plain = Message("assistant", "Plain.")
    assert without_reasoning(plain) is plain


def test_rules_pick_the_turns() -> None:
    stripped = apply_thinking_rules(chat(), enable_thinking=False, mask_history=False, preserve_thinking=True)
    assert [m.content for m in stripped.messages[1::2]] == ["5.", "20."]
    assert all(m.reasoning is None for m in stripped.messages)
    history = apply_thinking_rules(chat(), enable_thinking=None, mask_history=True, preserve_thinking=False)
    assert history.messages[1].content == "5." and history.messages[3].reasoning == "5 times 4 is 20."
    kept = chat()
    assert apply_thinking_rules(kept, enable_thinking=True, mask_history=True, preserve_thinking=True) is kept
    assert (
        apply_thinking_rules(kept, enable_thinking=None, mask_history=False, preserve_thinking=False) is kept
    )


def test_qwen3_without_thinking_trains_on_answers_stripped_of_reasoning() -> None:
    """Before, reasoning data with enable_thinking: false stopped with a template mismatch; LLaMA-Factory strips
    the reasoning and trains on the answers, each after the template's empty think block."""
    jinja = template_text("qwen3")
    tokenizer = tiny_tokenizer(chat_template=jinja, eos_token="<|im_end|>")
    encoder = TemplateEncoder(
        tokenizer, jinja, cutoff_len=4096, prefix_stable=False, template_kwargs={"enable_thinking": False}
    )
    rows = encoder.encode_supervised(chat())
    trained = [tokenizer.decode([t for t in row["labels"] if t != IGNORE_INDEX]) for row in rows]
    assert trained == ["5.<|im_end|>\n", "20.<|im_end|>\n"]
    text = "".join(tokenizer.decode(row["input_ids"]) for row in rows)
    assert "makes 5" not in text and "is 20" not in text
    assert "<think>\n\n</think>\n\n5.<|im_end|>" in tokenizer.decode(rows[0]["input_ids"])


def test_mask_history_drops_earlier_reasoning_unless_preserved() -> None:
    tokenizer = tiny_tokenizer(chat_template=CHATML_JINJA)
    dropped = TemplateEncoder(tokenizer, CHATML_JINJA, cutoff_len=4096, mask_history=True)
    kept = TemplateEncoder(
        tokenizer, CHATML_JINJA, cutoff_len=4096, mask_history=True, preserve_thinking=True
    )
    assert "makes 5" not in tokenizer.decode(dropped.encode_supervised(chat())[0]["input_ids"])
    assert "makes 5" in tokenizer.decode(kept.encode_supervised(chat())[0]["input_ids"])
