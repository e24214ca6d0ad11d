"""Tests of the ft-core-qwen plugin: registration, the model family and template conformance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import ft_core_qwen
from ft_core.api import IGNORE_INDEX, Conversation, Message, ModelFamily
from ft_core.testing.conformance import check_chat_template
from ft_core.testing.import_light import check_import_light


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_qwen, distribution="ft-core-qwen")


def test_registers_family_and_template(plugins: Any) -> None:
    family = plugins.get("model_family", "qwen")
    assert isinstance(family, ModelFamily)
    assert family.model_types == ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe")
    assert family.default_template == "qwen"
    assert plugins.names("chat_template") == ["qwen"]
    assert plugins.get("chat_template", "qwen").stop_words == ("<|im_end|>",)


def test_template_conformance(plugins: Any, tiny_tokenizer: Any) -> None:
    check_chat_template(plugins.get("chat_template", "qwen"), tiny_tokenizer, "qwen")


def test_tool_call_turns_are_trained(plugins: Any, tiny_tokenizer: Any) -> None:
    # The run's encoder as the engine builds it around this template (stages see it as ``ft_core.api.Encoder``).
    from ft_core.engine.templates.encoder import TemplateEncoder

    call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    conversation = Conversation(
        [
            Message("user", "Weather in Paris?"),
            Message("assistant", "", tool_calls=[call]),
            Message("tool", "sunny"),
            Message("assistant", "Sunny."),
        ],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
    )
    encoder = TemplateEncoder(tiny_tokenizer, plugins.get("chat_template", "qwen").jinja, cutoff_len=4096)
    encoded = encoder.encode_conversation(conversation)
    assert encoded is not None
    # The generation prompt `<|im_start|>assistant\n` is a prefix of the tool-call turn, so its newline is prompt.
    trained = tiny_tokenizer.decode([t for t in encoded["labels"] if t != IGNORE_INDEX])
    assert (
        trained
        == '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'
        + "Sunny.<|im_end|>\n"
    )


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_qwen")
