"""Rendering conversations and masking labels (ft_core.engine.templates.render)."""

from __future__ import annotations

from typing import Any

import pytest

from ft_core.api.context import IGNORE_INDEX
from ft_core.api.conversation import Conversation, Message
from ft_core.api.errors import DataError, TemplateMismatchError
from ft_core.engine.templates.render import (
    TemplateRenderError,
    encode_conversation,
    encode_supervised,
    generation_inputs,
    render,
    render_conversation,
    stop_token_ids,
)
from ft_core.testing.tiny import CHATML_JINJA, SlowTokenizerView
from ft_core_llama.templates import LLAMA2, LLAMA3

CONCAT_JINJA = "{% for message in messages %}{{ message['content'] }}{% endfor %}"


def two_turns(system: str | None = "You are a helpful assistant.") -> Conversation:
    messages = [
        Message("user", "What is the capital of France?"),
        Message("assistant", "The capital of France is Paris."),
        Message("user", "And of Italy?"),
        Message("assistant", "Rome."),
    ]
    if system is not None:
        messages.insert(0, Message("system", system))
    return Conversation(messages, source="test.json row 1")


def trained_segments(tokenizer: Any, encoded: dict[str, list[int]]) -> list[str]:
    """Decoded runs of consecutive trained tokens."""
    segments: list[list[int]] = []
    previous = False
    for label in encoded["labels"]:
        trained = label != IGNORE_INDEX
        if trained and not previous:
            segments.append([])
        if trained:
            segments[-1].append(label)
        previous = trained
    return [tokenizer.decode(ids) for ids in segments]


def test_every_assistant_turn_with_its_end_marker_is_trained(tiny_tokenizer: Any) -> None:
    encoded = encode_conversation(tiny_tokenizer, CHATML_JINJA, two_turns(), cutoff_len=1024)
    assert encoded is not None
    assert trained_segments(tiny_tokenizer, encoded) == [
        "The capital of France is Paris.<|im_end|>\n",
        "Rome.<|im_end|>\n",
    ]
    text = render(tiny_tokenizer, CHATML_JINJA, two_turns().messages)
    assert encoded["input_ids"] == tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert encoded["attention_mask"] == [1] * len(encoded["input_ids"])
    assert len(encoded["labels"]) == len(encoded["input_ids"])


def test_mask_history_trains_only_the_last_turn(tiny_tokenizer: Any) -> None:
    encoded = encode_conversation(
        tiny_tokenizer, CHATML_JINJA, two_turns(), cutoff_len=1024, mask_history=True
    )
    assert encoded is not None
    assert trained_segments(tiny_tokenizer, encoded) == ["Rome.<|im_end|>\n"]


def test_train_on_prompt_trains_everything(tiny_tokenizer: Any) -> None:
    encoded = encode_conversation(
        tiny_tokenizer, CHATML_JINJA, two_turns(), cutoff_len=1024, train_on_prompt=True
    )
    assert encoded is not None
    assert encoded["labels"] == encoded["input_ids"]


def test_train_on_prompt_with_mask_history_keeps_earlier_answers_masked(tiny_tokenizer: Any) -> None:
    encoded = encode_conversation(
        tiny_tokenizer, CHATML_JINJA, two_turns(), cutoff_len=1024, train_on_prompt=True, mask_history=True
    )
    assert encoded is not None
    segments = trained_segments(tiny_tokenizer, encoded)
    assert len(segments) == 2
    assert segments[0].endswith("<|im_start|>assistant\n")
    assert "Paris" not in "".join(segments)
    assert segments[1].startswith("<|im_start|>user\nAnd of Italy?") and segments[1].endswith(
        "Rome.<|im_end|>\n"
    )


def test_cutoff_keeps_the_start_of_each_answer(tiny_tokenizer: Any) -> None:
    """Cut turn by turn (LLaMA-Factory's rule; tests/test_cutoff_turns.py works the numbers by hand): a budget that
    ends inside the second prompt keeps part of it and the start of its answer, not the prompt alone."""
    full = encode_conversation(tiny_tokenizer, CHATML_JINJA, two_turns(), cutoff_len=1024)
    assert full is not None
    cut = len(full["input_ids"]) - 4
    truncated = encode_conversation(tiny_tokenizer, CHATML_JINJA, two_turns(), cutoff_len=cut)
    assert truncated is not None
    assert len(truncated["input_ids"]) == cut == len(truncated["labels"])
    assert trained_segments(tiny_tokenizer, truncated)[0] == trained_segments(tiny_tokenizer, full)[0]
    assert trained_segments(tiny_tokenizer, truncated)[1].startswith("Ro")
    assert truncated["attention_mask"] == [1] * cut


def test_none_when_no_trained_token_remains(tiny_tokenizer: Any) -> None:
    no_answer = Conversation([Message("user", "Hello?")])
    assert encode_conversation(tiny_tokenizer, CHATML_JINJA, no_answer, cutoff_len=1024) is None


def test_system_is_inserted_only_when_missing(tiny_tokenizer: Any) -> None:
    inserted = render_conversation(tiny_tokenizer, CHATML_JINJA, two_turns(system=None), system="Be brief.")
    assert inserted.text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert [s.index for s in inserted.spans] == [2, 4]
    kept = render_conversation(tiny_tokenizer, CHATML_JINJA, two_turns(system="Own."), system="Be brief.")
    assert kept.text.startswith("<|im_start|>system\nOwn.<|im_end|>\n") and "Be brief." not in kept.text
    encoded = encode_conversation(
        tiny_tokenizer, CHATML_JINJA, two_turns(system=None), cutoff_len=1024, system="S."
    )
    assert encoded is not None
    assert trained_segments(tiny_tokenizer, encoded)[-1] == "Rome.<|im_end|>\n"


def test_token_straddling_the_prompt_answer_boundary_is_split(tiny_tokenizer: Any) -> None:
    conversation = Conversation([Message("user", "The quick bro"), Message("assistant", "wn fox jumps")])
    whole = tiny_tokenizer("The quick brown fox jumps", add_special_tokens=False, return_offsets_mapping=True)
    boundary = len("The quick bro")
    assert any(start < boundary < end for start, end in whole["offset_mapping"]), (
        "fixture: a token must straddle"
    )

    encoded = encode_conversation(tiny_tokenizer, CONCAT_JINJA, conversation, cutoff_len=1024)
    assert encoded is not None
    prompt_ids = tiny_tokenizer("The quick bro", add_special_tokens=False)["input_ids"]
    answer_ids = tiny_tokenizer("wn fox jumps", add_special_tokens=False)["input_ids"]
    assert encoded["input_ids"] == prompt_ids + answer_ids  # the prompt tokens are what inference feeds
    assert encoded["labels"] == [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    assert trained_segments(tiny_tokenizer, encoded) == ["wn fox jumps"]


def test_slow_tokenizer_is_encoded_piece_by_piece(tiny_tokenizer: Any) -> None:
    fast = encode_conversation(tiny_tokenizer, CHATML_JINJA, two_turns(), cutoff_len=1024)
    slow = encode_conversation(SlowTokenizerView(tiny_tokenizer), CHATML_JINJA, two_turns(), cutoff_len=1024)
    assert slow == fast  # ChatML's turn boundaries are token boundaries, so the pieces agree with the whole


def test_llama_templates_train_answer_and_end_of_turn(tiny_tokenizer: Any) -> None:
    llama3 = encode_conversation(tiny_tokenizer, LLAMA3, two_turns(), cutoff_len=1024)
    assert llama3 is not None
    assert trained_segments(tiny_tokenizer, llama3) == [
        "The capital of France is Paris.<|eot_id|>",
        "Rome.<|eot_id|>",
    ]
    llama2 = encode_conversation(tiny_tokenizer, LLAMA2, two_turns(), cutoff_len=1024)
    assert llama2 is not None
    eos = tiny_tokenizer.eos_token
    assert trained_segments(tiny_tokenizer, llama2) == [
        f" The capital of France is Paris. {eos}",
        f" Rome. {eos}",
    ]


def test_prefix_unstable_template_is_rejected_with_the_divergence(tiny_tokenizer: Any) -> None:
    # Like templates that drop earlier reasoning: an assistant turn renders differently once more follows.
    unstable = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}<old>{% endif %}"
        "{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    )
    with pytest.raises(TemplateMismatchError) as info:
        encode_conversation(tiny_tokenizer, unstable, two_turns(), cutoff_len=1024, name="thinker")
    message = str(info.value)
    assert "'thinker' is not prefix-stable" in message and "test.json row 1" in message
    assert "diverge at character" in message and "<old>" in message


def test_generation_prompt_not_a_prefix_is_rejected(tiny_tokenizer: Any) -> None:
    odd = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT >{% endif %}"
    )
    with pytest.raises(TemplateMismatchError, match="generation prompt before message 2"):
        encode_conversation(tiny_tokenizer, odd, two_turns(), cutoff_len=1024)


def test_render_errors_and_bad_conversations(tiny_tokenizer: Any) -> None:
    not_alternating = Conversation([Message("user", "a"), Message("user", "b"), Message("assistant", "c")])
    with pytest.raises(TemplateRenderError, match=r"'llama2' cannot render.*must alternate"):
        encode_conversation(tiny_tokenizer, LLAMA2, not_alternating, cutoff_len=64, name="llama2")
    assistant_first = Conversation(
        [Message("assistant", "Hi."), Message("user", "Hello.")], source="x.json row 3"
    )
    with pytest.raises(DataError, match=r"x\.json row 3 starts with an assistant turn"):
        encode_conversation(tiny_tokenizer, CHATML_JINJA, assistant_first, cutoff_len=64)


def test_generation_inputs_end_with_the_generation_prompt(tiny_tokenizer: Any) -> None:
    messages = [Message("user", "Hi!")]
    ids = generation_inputs(tiny_tokenizer, CHATML_JINJA, messages)
    assert tiny_tokenizer.decode(ids) == "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"
    assert generation_inputs(tiny_tokenizer, CHATML_JINJA, [{"role": "user", "content": "Hi!"}]) == ids


def test_stop_token_ids(tiny_tokenizer: Any) -> None:
    class Template:
        stop_words = ("<|eot_id|>", "<|im_end|>", "two tokens")

    eos = tiny_tokenizer.eos_token_id
    eot = tiny_tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert stop_token_ids(tiny_tokenizer, Template()) == [eos, eot]


def test_a_row_the_template_cannot_render_is_named_with_its_roles(tiny_tokenizer) -> None:
    no_system = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
    )
    conversation = Conversation(
        [Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Hello")],
        source="chat.json row 7",
    )
    with pytest.raises(DataError) as error:
        encode_conversation(tiny_tokenizer, no_system, conversation, cutoff_len=64)
    message = str(error.value)
    assert "chat.json row 7 (roles: system, user, assistant)" in message
    assert "System role not supported" in message and "remove the system prompt" in message


def test_a_template_that_drops_tool_calls_is_a_clear_error(tiny_tokenizer):
    conversation = Conversation(
        [
            Message("user", "Weather in Paris?"),
            Message(
                "assistant",
                "",
                tool_calls=[
                    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
                ],
            ),
            Message("tool", '{"temp": 20}'),
            Message("assistant", "It is 20 degrees."),
        ],
        source="tools.json row 1",
    )
    with pytest.raises(
        TemplateRenderError, match=r"tools.json row 1: .*does not render its tool calls.*'get_weather'"
    ):
        encode_conversation(tiny_tokenizer, CHATML_JINJA, conversation, cutoff_len=256)


# A reasoning template in the style of Qwen3 / DeepSeek-R1: reasoning is shown only for turns after the last user
# message (earlier turns lose it), so adding messages changes how earlier ones render.
THINKER = (
    "{%- set ns = namespace(last_user=0) %}{%- for m in messages %}{%- if m.role == 'user' %}"
    "{%- set ns.last_user = loop.index0 %}{%- endif %}{%- endfor %}"
    "{%- for m in messages %}{%- if m.role == 'assistant' %}{{ '<|im_start|>assistant\\n' }}"
    "{%- if loop.index0 > ns.last_user and m.reasoning_content %}{{ '<think>' + m.reasoning_content + '</think>' }}"
    "{%- endif %}{{ m.content + '<|im_end|>\\n' }}{%- else %}{{ '<|im_start|>' + m.role + '\\n' + m.content + "
    "'<|im_end|>\\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{%- if not thinking %}{{ '<think></think>' }}{%- endif %}{%- endif %}"
)


def reasoning_conversation() -> Conversation:
    return Conversation(
        [
            Message("user", "2+3?"),
            Message("assistant", "5.", reasoning="two and three"),
            Message("user", "times 4?"),
            Message("assistant", "20.", reasoning="five times four"),
        ],
        source="reasoning.json row 1",
    )


def test_a_template_that_rewrites_history_is_trained_turn_by_turn(tiny_tokenizer: Any) -> None:
    conversation = reasoning_conversation()
    with pytest.raises(TemplateMismatchError):
        encode_supervised(
            tiny_tokenizer, THINKER, conversation, cutoff_len=1024, template_kwargs={"thinking": True}
        )
    rows = encode_supervised(
        tiny_tokenizer,
        THINKER,
        conversation,
        prefix_stable=False,
        cutoff_len=1024,
        template_kwargs={"thinking": True},
    )
    assert len(rows) == 2
    for row, upto in zip(rows, (2, 4), strict=True):
        # Each row is the conversation up to that turn exactly as rendered whole (the turn last, with its reasoning),
        # and its prompt part is exactly what inference feeds the model.
        text = tiny_tokenizer.decode(row["input_ids"])
        whole = render(
            tiny_tokenizer, THINKER, conversation.messages[:upto], template_kwargs={"thinking": True}
        )
        prompt = render(
            tiny_tokenizer,
            THINKER,
            conversation.messages[: upto - 1],
            add_generation_prompt=True,
            template_kwargs={"thinking": True},
        )
        assert text == whole and whole.startswith(prompt)
        trained = tiny_tokenizer.decode([t for t in row["labels"] if t != IGNORE_INDEX])
        assert trained == whole[len(prompt) :]
    first_trained = tiny_tokenizer.decode([t for t in rows[0]["labels"] if t != IGNORE_INDEX])
    assert (
        first_trained == "<think>two and three</think>5.<|im_end|>\n"
    )  # its reasoning is trained in its own row
    assert "two and three" not in tiny_tokenizer.decode(rows[1]["input_ids"])  # history loses its reasoning


def test_mask_history_keeps_only_the_last_turns_row(tiny_tokenizer: Any) -> None:
    rows = encode_supervised(
        tiny_tokenizer,
        THINKER,
        reasoning_conversation(),
        prefix_stable=False,
        mask_history=True,
        cutoff_len=1024,
        template_kwargs={"thinking": True},
    )
    assert len(rows) == 1 and "five times four" in tiny_tokenizer.decode(rows[0]["input_ids"])


def test_template_kwargs_reach_the_template(tiny_tokenizer: Any) -> None:
    messages = [Message("user", "hi")]
    assert render(tiny_tokenizer, THINKER, messages, add_generation_prompt=True).endswith("<think></think>")
    thinking = render(
        tiny_tokenizer, THINKER, messages, add_generation_prompt=True, template_kwargs={"thinking": True}
    )
    assert thinking.endswith("<|im_start|>assistant\n")


# GLM / Baichuan style: no end marker after an answer; the model ends its turn by generating the next turn's marker.
GLM_LIKE = (
    "{% for m in messages %}{{ '<|' + m.role + '|>\\n' + m.content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


def test_templates_without_end_marker_train_the_next_turns_marker_and_eos() -> None:
    from ft_core.testing.tiny import DEFAULT_SPECIAL_TOKENS, tiny_tokenizer

    tokenizer = tiny_tokenizer(
        special_tokens=[*DEFAULT_SPECIAL_TOKENS, "<|user|>", "<|assistant|>", "<|system|>"]
    )
    stops = frozenset(tokenizer.convert_tokens_to_ids(["<|user|>", tokenizer.eos_token]))
    conversation = Conversation(
        [
            Message("user", "Hi"),
            Message("assistant", "Hello"),
            Message("user", "Bye"),
            Message("assistant", "Ciao"),
        ]
    )
    plain = encode_conversation(tokenizer, GLM_LIKE, conversation, cutoff_len=1024)
    row = encode_conversation(tokenizer, GLM_LIKE, conversation, cutoff_len=1024, next_turn_stops=stops)

    def trained(r: dict) -> list[str]:
        return [tokenizer.decode([t]) for t in r["labels"] if t != IGNORE_INDEX]

    assert "".join(trained(plain)) == "HelloCiao"  # nothing teaches the model to stop
    assert "".join(trained(row)) == "Hello<|user|>Ciao" + tokenizer.eos_token
    assert row["input_ids"] == plain["input_ids"] + [tokenizer.eos_token_id]
