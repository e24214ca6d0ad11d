"""Tests of the ft-core-qwen plugin: registration, exactness against the official templates, tool calls,
Qwen3 reasoning and a few fine-tuning steps on tiny random-init models of every Qwen architecture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ft_core_qwen
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


def official(name: str) -> str:
    return (OFFICIAL / f"{name}.jinja").read_text(encoding="utf-8")


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_qwen, distribution="ft-core-qwen")


def template(plugins: Any, name: str) -> ChatTemplate:
    found = plugins.get("chat_template", name)
    assert isinstance(found, ChatTemplate)
    return found


def test_registers_family_and_templates(plugins: Any) -> None:
    family = plugins.get("model_family", "qwen")
    assert isinstance(family, ModelFamily)
    assert family.model_types == ("qwen2", "qwen2_moe")
    assert family.covers("qwen2_moe") and family.covers("other", ["Qwen2ForCausalLM"])
    assert family.default_template == "qwen"
    qwen3 = plugins.get("model_family", "qwen3")
    assert qwen3.model_types == ("qwen3", "qwen3_moe") and qwen3.default_template == "qwen3"
    assert plugins.names("chat_template") == ["qwen", "qwen1.5", "qwen2", "qwen2.5", "qwen3"]
    assert set(family.templates) | set(qwen3.templates) == set(plugins.names("chat_template"))
    assert template(plugins, "qwen2.5") == template(plugins, "qwen")
    for name in plugins.names("chat_template"):
        assert template(plugins, name).stop_words == ("<|im_end|>",)
    assert template(plugins, "qwen3").prefix_stable is False
    assert template(plugins, "qwen3").template_kwargs == {"enable_thinking": True}
    assert template(plugins, "qwen").supports_tools and template(plugins, "qwen3").supports_tools
    assert not template(plugins, "qwen2").supports_tools


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_qwen")


# --- exactness against the official Jinja ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["qwen", "qwen2", "qwen3"])
def test_renders_like_the_official_template(plugins: Any, name: str) -> None:
    # ft-core's template is the official Jinja verbatim; this checks the golden conversations (system prompt or
    # none, multi-turn, non-ASCII, tools where the template has them, reasoning for qwen3) render identically,
    # whole and as generation prompts, and that exactly the assistant turns are trained.
    check_official_template(template(plugins, name), official(name), name=name)
    assert template(plugins, name).jinja == official(name)


def test_qwen3_without_thinking_renders_like_the_official_template(plugins: Any) -> None:
    # Without thinking the model never sees reasoning, so the conversations carry none.
    check_official_template(
        template(plugins, "qwen3"),
        official("qwen3"),
        name="qwen3",
        conversations=golden_conversations(tools=True),
        template_kwargs={"enable_thinking": False},
    )
    prompt = render_template(
        template(plugins, "qwen3"), [Message("user", "Hi")], add_generation_prompt=True, enable_thinking=False
    )
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def test_qwen3_tool_turns_render_like_the_official_template(plugins: Any) -> None:
    # Tools together with reasoning: a tool call after thinking, the tool result, the final answer.
    call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    conversation = Conversation(
        [
            Message("user", "Weather in Paris?"),
            Message("assistant", "", tool_calls=[call], reasoning="I should call the weather tool."),
            Message("tool", '{"sky": "clear"}'),
            Message("assistant", "Clear skies.", reasoning="The tool says clear."),
        ],
        tools=[golden_conversations(tools=True)[-1].tools[0]],  # type: ignore[index]
        source="qwen3:tools-with-reasoning",
    )
    check_official_template(
        template(plugins, "qwen3"), official("qwen3"), name="qwen3", conversations=[conversation]
    )


def test_qwen1_5_differs_only_by_closing_the_final_turn(plugins: Any) -> None:
    # Deliberate difference: Qwen1.5-Chat's official template leaves the final assistant turn of a finished
    # conversation without <|im_end|>, so a model trained on it would never learn to stop; ft-core closes that
    # turn like every earlier one. Generation prompts (what the model sees at inference) are identical.
    ours = template(plugins, "qwen1.5")
    for conversation in golden_conversations():
        messages = conversation.messages
        for index, message in enumerate(messages):
            if message.role == "assistant":
                assert render_template(ours, messages[:index], add_generation_prompt=True) == render_template(
                    official("qwen1.5"), messages[:index], add_generation_prompt=True
                )
        assert (
            render_template(ours, messages) == render_template(official("qwen1.5"), messages) + "<|im_end|>\n"
        )
        for _, span in trained_texts(ours, conversation):
            assert span.endswith("<|im_end|>\n")


@pytest.mark.parametrize(
    ("name", "system"),
    [
        ("qwen", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
        ("qwen2", "You are a helpful assistant."),
        ("qwen1.5", "You are a helpful assistant"),
    ],
)
def test_default_system_prompt_per_version(plugins: Any, name: str, system: str) -> None:
    # Qwen2 and Qwen2.5 differ in their default system prompt: each template inserts its own model's.
    chosen = template(plugins, name)
    assert chosen.default_system == system
    text = render_template(chosen, [Message("user", "Hi")], add_generation_prompt=True)
    assert (
        text
        == f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    explicit = render_template(chosen, [Message("system", "Be brief."), Message("user", "Hi")])
    assert system not in explicit and explicit.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


# --- tool calls ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["qwen", "qwen3"])
def test_tool_calls_parse_back(plugins: Any, name: str) -> None:
    chosen = template(plugins, name)
    assert chosen.parse_tool_calls is not None
    calls = [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"type": "function", "function": {"name": "get_time", "arguments": {"zone": "CET", "24h": True}}},
    ]
    conversation = Conversation(
        [
            Message("user", "Weather and time in Paris?"),
            Message("assistant", "Let me check.", tool_calls=calls),
        ],
        tools=[
            {"type": "function", "function": {"name": n, "parameters": {}}}
            for n in ("get_weather", "get_time")
        ],
    )
    [(_, span)] = trained_texts(chosen, conversation)
    content, parsed = chosen.parse_tool_calls(span.removesuffix("<|im_end|>\n").removesuffix("<|im_end|>"))
    assert parsed == calls
    assert content.endswith("Let me check.")


# --- Qwen3 reasoning: each assistant turn is one sample, as inference shows it --------------------------------


def test_qwen3_reasoning_trains_each_turn_as_inference_shows_it(plugins: Any) -> None:
    chosen = template(plugins, "qwen3")
    tokenizer = tiny_tokenizer(chat_template=chosen.jinja, eos_token="<|im_end|>")
    encoder = make_encoder(
        tokenizer,
        chosen.jinja,
        cutoff_len=4096,
        prefix_stable=chosen.prefix_stable,
        template_kwargs={"enable_thinking": True},
    )
    messages = [
        Message("user", "What is 2 + 3?"),
        Message("assistant", "5.", reasoning="2 plus 3 makes 5."),
        Message("user", "And times 4?"),
        Message("assistant", "20.", reasoning="5 times 4 is 20."),
    ]
    rows = encoder.encode_supervised(Conversation(messages))
    assert len(rows) == 2  # one sample per assistant turn
    for row, index in zip(rows, (1, 3), strict=True):
        prompt = render_template(chosen, messages[:index], add_generation_prompt=True)
        answer = messages[index]
        text = tokenizer.decode(row["input_ids"])
        trained = tokenizer.decode([t for t in row["labels"] if t != IGNORE_INDEX])
        # The sample is exactly the inference prompt followed by the turn the model should generate.
        assert text == prompt + trained
        assert trained == f"<think>\n{answer.reasoning}\n</think>\n\n{answer.content}<|im_end|>\n"
        assert all(label == IGNORE_INDEX for label in row["labels"][: len(tokenizer(prompt)["input_ids"])])
    # The second sample shows the first turn as inference does: its reasoning dropped.
    second = tokenizer.decode(rows[1]["input_ids"])
    assert "2 plus 3 makes 5." not in second
    assert "<|im_start|>assistant\n5.<|im_end|>\n" in second


# --- a few fine-tuning steps per architecture -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_type", "family", "template_name", "run_overrides", "kwargs"),
    [
        ("qwen2", "qwen", "qwen", (), {}),
        ("qwen2_moe", "qwen", "qwen2", (), {}),
        # `template.kwargs` from the config reaches the template (and overrides its default).
        ("qwen3", "qwen3", "qwen3", ("template.kwargs.enable_thinking=false",), {"enable_thinking": False}),
        ("qwen3_moe", "qwen3", "qwen3", (), {"enable_thinking": True}),
    ],
)
def test_family_finetunes(
    model_type: str,
    family: str,
    template_name: str,
    run_overrides: tuple[str, ...],
    kwargs: dict[str, Any],
    tmp_path: Path,
) -> None:
    # A tiny random-init model of each architecture (the kit shrinks the config, incl. the MoE sizes).
    from ft_core.testing.families import check_family_finetunes

    manifest = check_family_finetunes(
        ft_core_qwen,
        family,
        model_type=model_type,
        tmp_path=tmp_path,
        template=template_name,
        run_overrides=run_overrides,
    )
    assert manifest["model_family"]["name"] == family
    assert manifest["template"]["name"] == template_name
    assert manifest["template"]["template_kwargs"] == kwargs
