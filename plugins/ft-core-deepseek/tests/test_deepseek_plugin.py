"""Tests of the ft-core-deepseek plugin: registration, exactness against the official templates (and the tested,
deliberate differences), tool calls, R1 reasoning, and fine-tuning tiny DeepSeek-V2 / V3 models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ft_core_deepseek
from ft_core.api import IGNORE_INDEX, ChatTemplate, Conversation, Message, ModelFamily
from ft_core.testing import make_encoder, tiny_tokenizer
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import (
    check_official_template,
    golden_conversations,
    render_template,
    trained_texts,
)

OFFICIAL = Path(__file__).parent / "official"
EOS = ft_core_deepseek.EOS


def official(name: str) -> str:
    return (OFFICIAL / f"{name}.jinja").read_text(encoding="utf-8")


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_deepseek, distribution="ft-core-deepseek")


def template(plugins: Any, name: str) -> ChatTemplate:
    found = plugins.get("chat_template", name)
    assert isinstance(found, ChatTemplate)
    return found


def test_registers_family_and_templates(plugins: Any) -> None:
    family = plugins.get("model_family", "deepseek")
    assert isinstance(family, ModelFamily)
    assert family.model_types == ("deepseek_v2", "deepseek_v3")
    assert family.covers("other", ["DeepseekV3ForCausalLM"])
    assert not family.covers("llama", ["LlamaForCausalLM"])  # DeepSeek LLM / Coder are the llama family
    assert family.default_template == "deepseek3"
    assert plugins.names("chat_template") == ["deepseek", "deepseek3", "deepseekcoder", "deepseekr1"]
    assert set(family.templates) == set(plugins.names("chat_template"))
    assert template(plugins, "deepseekr1").prefix_stable is False
    assert template(plugins, "deepseek3").supports_tools
    assert template(plugins, "deepseekcoder").special_tokens["eos_token"] == "<|EOT|>"
    # The full-width special tokens are kept exactly (U+FF5C and U+2581).
    assert ft_core_deepseek.BOS == "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
    assert "<\uff5cUser\uff5c>" in template(plugins, "deepseek3").jinja


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_deepseek")


@pytest.mark.parametrize("name", ["deepseek", "deepseekcoder"])
def test_renders_like_the_official_template(plugins: Any, name: str) -> None:
    check_official_template(template(plugins, name), official(name), name=name)
    assert template(plugins, name).jinja == official(name)


def test_deepseekcoder_default_system_prompt(plugins: Any) -> None:
    chosen = template(plugins, "deepseekcoder")
    text = render_template(chosen, [Message("user", "Sort a list.")], add_generation_prompt=True)
    assert text == (
        f"{ft_core_deepseek.BOS}{ft_core_deepseek.CODER_SYSTEM}\n### Instruction:\nSort a list.\n### Response:\n"
    )


# --- deepseek3 ------------------------------------------------------------------------------------------------

_CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}


def _with_string_arguments(conversation: Conversation) -> Conversation:
    """The official templates concatenate ``arguments`` as text: give them the JSON string."""
    for message in conversation.messages:
        for call in message.tool_calls or []:
            call["function"]["arguments"] = json.dumps(call["function"]["arguments"])
    return conversation


def test_deepseek3_renders_like_the_official_template_without_tools(plugins: Any) -> None:
    check_official_template(
        template(plugins, "deepseek3"),
        official("deepseek3"),
        name="deepseek3",
        conversations=golden_conversations(),
    )


def test_deepseek3_tool_turns_follow_deepseeks_later_revision(plugins: Any) -> None:
    # Deliberate difference from the DeepSeek-V3 template as first published: there a tool-call turn renders only
    # when its content is None (ft-core's messages carry "" -> the call vanished), a single call never got its
    # <｜tool▁calls▁end｜><｜end▁of▁sentence｜> (so no end of turn would be trained), and dict arguments crashed.
    # ft-core's tool-call block is the one of DeepSeek's later revision of the same template (shipped today by
    # deepseek-ai/DeepSeek-R1, kept in tests/official/deepseek-r1-hub.jinja), which fixes the first two, plus
    # `tojson` for dict arguments. On the golden tool conversation the whole rendering equals that revision's.
    chosen = template(plugins, "deepseek3")
    [conversation] = [c for c in golden_conversations(tools=True) if c.tools]
    ours = render_template(chosen, conversation.messages, tools=conversation.tools)
    string_args = _with_string_arguments(conversation)
    assert ours == render_template(
        official("deepseek-r1-hub"), string_args.messages, special_tokens=chosen.special_tokens
    )
    assert ours == render_template(chosen, string_args.messages)  # string or dict arguments render alike
    assert (
        '<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{"city": "Paris"}'
        f"\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>{EOS}"
        '<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{"temperature": 21, "sky": "clear"}<｜tool▁output▁end｜>'
        f"<｜tool▁outputs▁end｜>It is 21 degrees and clear in Paris.{EOS}"
    ) in ours
    # Exactly the assistant turns are trained (the kit's span and token checks, on ft-core's rendering).
    check_official_template(
        chosen, chosen.jinja, name="deepseek3", conversations=golden_conversations(tools=True)
    )


def test_deepseek3_tool_calls_parse_back(plugins: Any) -> None:
    chosen = template(plugins, "deepseek3")
    assert chosen.parse_tool_calls is not None
    calls = [_CALL, {"type": "function", "function": {"name": "get_time", "arguments": {"zone": "CET"}}}]
    conversation = Conversation(
        [Message("user", "Weather and time?"), Message("assistant", "Checking.", tool_calls=calls)],
        tools=[
            {"type": "function", "function": {"name": n, "parameters": {}}}
            for n in ("get_weather", "get_time")
        ],
    )
    [(_, span)] = trained_texts(chosen, conversation)
    assert span.startswith("Checking.<｜tool▁calls▁begin｜>") and span.endswith(f"<｜tool▁calls▁end｜>{EOS}")
    content, parsed = chosen.parse_tool_calls(span)
    assert (content, parsed) == ("Checking.", calls)
    assert chosen.parse_tool_calls("Just text.") == ("Just text.", [])


# --- deepseekr1 -----------------------------------------------------------------------------------------------


def test_deepseekr1_prompts_match_the_official_template_and_turns_carry_reasoning(plugins: Any) -> None:
    # Deliberate difference: the official R1-distill template never renders reasoning (it drops everything up to
    # </think> from every assistant turn, and ignores `reasoning_content`), while its generation prompt opens a
    # <think> block the model then fills. So no rendering of a finished conversation starts with the generation
    # prompt, and training on it would teach answers without thinking. ft-core renders the *final* assistant turn
    # as the model generates it after that prompt ('<think>\n' reasoning '\n</think>\n\n' answer EOS, empty
    # reasoning as '<think>\n\n</think>\n\n'); earlier turns and every generation prompt are the official ones.
    chosen = template(plugins, "deepseekr1")
    for conversation in golden_conversations(reasoning=True):
        messages = conversation.messages
        for index, message in enumerate(messages):
            if message.role != "assistant":
                continue
            prompt = render_template(chosen, messages[:index], add_generation_prompt=True)
            assert prompt == render_template(
                official("deepseekr1"),
                messages[:index],
                add_generation_prompt=True,
                special_tokens=chosen.special_tokens,
            )
            assert prompt.endswith("<｜Assistant｜><think>\n")
            reasoning = (message.reasoning or "").strip("\n")
            turn = render_template(chosen, messages[: index + 1])
            assert turn == prompt + f"{reasoning}\n</think>\n\n{message.content}{EOS}"
        spans = [span for _, span in trained_texts(chosen, conversation)]
        answers = [m for m in messages if m.role == "assistant"]
        assert spans == [f"{(m.reasoning or '').strip()}\n</think>\n\n{m.content}{EOS}" for m in answers]


def test_deepseekr1_reasoning_inline_in_content(plugins: Any) -> None:
    # R1-style data often carries the thinking inside the answer: it renders the same as `reasoning`.
    chosen = template(plugins, "deepseekr1")
    inline = [Message("user", "2+2?"), Message("assistant", "<think>\nfour\n</think>\n\n4")]
    separate = [Message("user", "2+2?"), Message("assistant", "4", reasoning="four")]
    assert render_template(chosen, inline) == render_template(chosen, separate)


def test_deepseekr1_encoder_trains_each_turn_as_inference_shows_it(plugins: Any) -> None:
    chosen = template(plugins, "deepseekr1")
    tokenizer = tiny_tokenizer(
        special_tokens=[ft_core_deepseek.BOS, EOS, "<｜User｜>", "<｜Assistant｜>", "<unk>", "<pad>"],
        chat_template=chosen.jinja,
        bos_token=ft_core_deepseek.BOS,
        eos_token=EOS,
    )
    encoder = make_encoder(tokenizer, chosen.jinja, cutoff_len=4096, prefix_stable=False)
    messages = golden_conversations(reasoning=True)[-2].messages  # two turns, each with reasoning
    rows = encoder.encode_supervised(Conversation(messages))
    assert len(rows) == 2
    for row, index in zip(rows, (1, 3), strict=True):
        prompt = render_template(chosen, messages[:index], add_generation_prompt=True)
        trained = tokenizer.decode([t for t in row["labels"] if t != IGNORE_INDEX])
        assert tokenizer.decode(row["input_ids"]) == prompt + trained
        assert trained == f"{messages[index].reasoning}\n</think>\n\n{messages[index].content}{EOS}"
    assert messages[1].reasoning not in tokenizer.decode(rows[1]["input_ids"])


# --- a few fine-tuning steps per architecture -----------------------------------------------------------------


@pytest.mark.parametrize("model_type", ["deepseek_v3", "deepseek_v2"])
def test_family_finetunes(model_type: str, tmp_path: Path) -> None:
    # A tiny random-init model of each architecture: latent attention, one dense then MoE layers.
    from ft_core.testing.families import check_family_finetunes

    manifest = check_family_finetunes(
        ft_core_deepseek,
        "deepseek",
        model_type=model_type,
        tmp_path=tmp_path,
        template="deepseek3",
        # DeepSeek-V3's rotary embedding is sized by head_dim, which must equal qk_rope_head_dim.
        config_overrides={"head_dim": 4},  # = the kit's qk_rope_head_dim
    )
    assert manifest["model_family"]["name"] == "deepseek"
