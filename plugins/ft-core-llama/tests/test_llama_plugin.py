"""Tests of ft-core-llama: registration, exactness of every template against the official Jinja, the Llama 3.1+
tool-call format, deterministic dates, import-lightness and a tiny fine-tune."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ft_core_llama
from ft_core.api import ChatTemplate, Conversation, Message, ModelFamily
from ft_core.testing.conformance import check_chat_template
from ft_core.testing.families import check_family_finetunes
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import (
    check_official_template,
    golden_conversations,
    render_template,
    trained_texts,
)
from ft_core.testing.tiny import DEFAULT_SPECIAL_TOKENS, tiny_tokenizer
from ft_core_llama import parse_llama3_tool_calls

OFFICIAL = Path(__file__).parent / "official"
TEMPLATES = ("llama2", "llama3", "llama3.1", "llama3.2")


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_llama, distribution="ft-core-llama")


def _official(name: str) -> str:
    return (OFFICIAL / f"{name}.jinja").read_text(encoding="utf-8")


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


#: Llama-specific conversations: contents the templates trim, a longer exchange.
EXTRA = [
    Conversation(
        [
            Message("system", "  Answer briefly.\n"),
            Message("user", "  padded question \n"),
            Message("assistant", "\n padded answer  "),
        ],
        source="llama:trimmed",
    ),
    Conversation(
        [
            Message("user", "1"),
            Message("assistant", "one"),
            Message("user", "2"),
            Message("assistant", "two"),
            Message("user", "3"),
            Message("assistant", "three"),
        ],
        source="llama:three-turns",
    ),
]

_SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a word up.",
        "parameters": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
    },
}

#: Tool conversations beyond the golden one: a system prompt with tools, two calls in a row, non-ASCII arguments.
TOOL_EXTRA = [
    Conversation(
        [
            Message("system", "You are a dictionary bot."),
            Message("user", "Look up « Straße »."),
            Message("assistant", "", tool_calls=[_call("lookup", {"word": "Straße"})]),
            Message("tool", "street"),
            Message("user", "And 你好?"),
            Message("assistant", "", tool_calls=[_call("lookup", {"word": "你好"})]),
            Message("tool", '{"meaning": "hello"}'),
            Message("assistant", "« Straße » is street, 你好 is hello."),
        ],
        tools=[_SEARCH_TOOL],
        source="llama:two-calls",
    )
]

#: A built-in tool call (Llama 3.1 ``builtin_tools``): ``<|python_tag|>brave_search.call(query="...")<|eom_id|>``.
BUILTIN = Conversation(
    [
        Message("system", "You may search the web."),
        Message("user", "Who won the 2024 Tour de France?"),
        Message("assistant", "", tool_calls=[_call("brave_search", {"query": "2024 Tour de France winner"})]),
        Message("tool", "Tadej Pogačar won the 2024 Tour de France."),
        Message("assistant", "Tadej Pogačar."),
    ],
    source="llama:builtin-search",
)


def test_registers_family_and_templates(plugins: Any) -> None:
    family = plugins.get("model_family", "llama")
    assert isinstance(family, ModelFamily)
    assert family.model_types == ("llama",)
    assert family.covers("llama") and family.covers("unknown", ["LlamaForCausalLM"])
    assert family.default_template == "llama3" and family.templates == TEMPLATES
    assert family.decoder_layers == "model.layers"
    assert family.lora_targets == (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
    assert family.patches == ("liger",) and not family.trust_remote_code
    assert "meta-llama/Llama-3.3-70B-Instruct" in family.models
    assert plugins.names("chat_template") == sorted(TEMPLATES)
    assert plugins.registration("chat_template", "llama3.1").distribution == "ft-core-llama"
    for name in TEMPLATES:
        template = plugins.get("chat_template", name)
        assert isinstance(template, ChatTemplate) and not template.tokenizer_template_may_differ
        assert template.prefix_stable and template.source and template.description
    assert plugins.get("chat_template", "llama2").special_tokens == {"bos_token": "<s>", "eos_token": "</s>"}
    assert not plugins.get("chat_template", "llama2").supports_tools
    assert not plugins.get("chat_template", "llama3").supports_tools
    assert plugins.get("chat_template", "llama3").stop_words == ("<|eot_id|>",)
    for name in ("llama3.1", "llama3.2"):
        template = plugins.get("chat_template", name)
        assert template.supports_tools and template.stop_words == ("<|eot_id|>", "<|eom_id|>")
        assert template.special_tokens == {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
        assert template.template_kwargs == {"date_string": "26 Jul 2024"}
    assert "3.3" in plugins.get("chat_template", "llama3.1").description


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_is_the_official_one(plugins: Any, name: str) -> None:
    official = _official(name)
    template = plugins.get("chat_template", name)
    assert template.jinja == official  # verbatim
    extra = TOOL_EXTRA if template.supports_tools else []
    conversations = [*golden_conversations(tools=template.supports_tools), *EXTRA, *extra]
    check_official_template(template, official, name=name, conversations=conversations)


def test_llama3_3_uses_the_llama3_1_template(plugins: Any) -> None:
    """Llama-3.3-70B-Instruct publishes the very template of Llama-3.1-8B-Instruct: `llama3.1` covers it."""
    assert _official("llama3.3") == _official("llama3.1") == plugins.get("chat_template", "llama3.1").jinja


def test_llama3_1_tools_in_the_system_prompt(plugins: Any) -> None:
    """`tools_in_user_message: false` (a template kwarg) moves the tool list into the system header."""
    template = plugins.get("chat_template", "llama3.1")
    check_official_template(
        template,
        _official("llama3.1"),
        name="llama3.1",
        conversations=[*golden_conversations(tools=True), *TOOL_EXTRA],
        template_kwargs={"tools_in_user_message": False},
    )
    conversation = golden_conversations(tools=True)[-1]
    text = render_template(
        template, conversation.messages, tools=conversation.tools, tools_in_user_message=False
    )
    system = text.split("<|eot_id|>")[0]
    assert "You have access to the following functions" in system and '"get_weather"' in system


def test_llama3_1_builtin_tools(plugins: Any) -> None:
    """Built-in tools (`builtin_tools` kwarg) render as `<|python_tag|>name.call(...)<|eom_id|>`, trained with the
    `<|eom_id|>` marker, and parse back to the call."""
    template = plugins.get("chat_template", "llama3.1")
    kwargs = {"builtin_tools": ["brave_search", "wolfram_alpha"]}
    check_official_template(
        template, _official("llama3.1"), name="llama3.1", conversations=[BUILTIN], template_kwargs=kwargs
    )
    spans = [span for _, span in trained_texts(template, BUILTIN, **kwargs)]
    assert spans[0] == '<|python_tag|>brave_search.call(query="2024 Tour de France winner")<|eom_id|>'
    assert parse_llama3_tool_calls(spans[0]) == ("", BUILTIN.messages[2].tool_calls)
    text = render_template(template, BUILTIN.messages[:2], add_generation_prompt=True, **kwargs)
    assert "Environment: ipython\nTools: brave_search, wolfram_alpha\n\n" in text


@pytest.mark.parametrize("name", ["llama3.1", "llama3.2"])
def test_the_date_is_deterministic_and_settable(plugins: Any, name: str) -> None:
    template = plugins.get("chat_template", name)
    messages = [Message("user", "Hi")]
    assert "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" in render_template(
        template, messages
    )
    assert "Today Date: 01 Jan 2025\n" in render_template(template, messages, date_string="01 Jan 2025")


def test_official_llama3_2_without_a_date_uses_today(plugins: Any) -> None:
    """Why ft-core gives `date_string`: without it the official 3.2 template renders the current date."""
    official = _official("llama3.2")
    before = datetime.datetime.now().strftime("%d %b %Y")
    text = render_template(
        official, [Message("user", "Hi")], special_tokens={"bos_token": "<|begin_of_text|>"}
    )
    after = datetime.datetime.now().strftime("%d %b %Y")
    assert f"Today Date: {before}\n" in text or f"Today Date: {after}\n" in text


@pytest.mark.parametrize("name", ["llama3.1", "llama3.2"])
def test_tool_calls_parse_back_from_the_trained_span(plugins: Any, name: str) -> None:
    template = plugins.get("chat_template", name)
    for conversation in [golden_conversations(tools=True)[-1], *TOOL_EXTRA]:
        spans = [span for _, span in trained_texts(template, conversation)]
        turns = [m for m in conversation.messages if m.role == "assistant"]
        assert len(spans) == len(turns)
        for span, turn in zip(spans, turns, strict=True):
            content, calls = parse_llama3_tool_calls(span)
            if turn.tool_calls:
                assert (content, calls) == ("", turn.tool_calls), span
            else:
                assert (content, calls) == (turn.content, []), span


def test_tool_call_parser_spellings() -> None:
    weather = [_call("get_weather", {"city": "Paris"})]
    assert parse_llama3_tool_calls('{"name": "get_weather", "parameters": {"city": "Paris"}}') == (
        "",
        weather,
    )
    assert parse_llama3_tool_calls(
        '<|python_tag|>{"name": "get_weather", "arguments": {"city": "Paris"}}<|eom_id|>'
    ) == ("", weather)
    two = '{"name": "get_weather", "parameters": {"city": "Paris"}}; {"name": "lookup", "parameters": {"word": "x"}}'
    assert parse_llama3_tool_calls(two) == ("", [*weather, _call("lookup", {"word": "x"})])
    assert parse_llama3_tool_calls(
        'Let me check.<|python_tag|>wolfram_alpha.call(query="2+2")<|eom_id|>'
    ) == (
        "Let me check.",
        [_call("wolfram_alpha", {"query": "2+2"})],
    )
    # Text that is not a call stays content, nothing is lost.
    assert parse_llama3_tool_calls("It is sunny.<|eot_id|>") == ("It is sunny.", [])
    assert parse_llama3_tool_calls('{"city": "Paris"}') == ('{"city": "Paris"}', [])
    assert parse_llama3_tool_calls("<|python_tag|>print(1)") == ("<|python_tag|>print(1)", [])


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_conformance_with_a_tokenizer(plugins: Any, name: str) -> None:
    """Trained tokens are exactly the assistant turns, and the stop words are single tokens."""
    tokenizer = tiny_tokenizer(special_tokens=[*DEFAULT_SPECIAL_TOKENS, "<|eom_id|>", "<|python_tag|>"])
    check_chat_template(plugins.get("chat_template", name), tokenizer, name)


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_llama")


def test_llama_finetunes(tmp_path: Path) -> None:
    # The Llama 3.1 system header (dates) alone is ~64 tokens of the tiny tokenizer: a longer cutoff.
    manifest = check_family_finetunes(
        ft_core_llama,
        "llama",
        model_type="llama",
        template="llama3.1",
        tmp_path=tmp_path,
        run_overrides=("data.cutoff_len=256",),
    )
    assert manifest["model_family"]["name"] == "llama"
