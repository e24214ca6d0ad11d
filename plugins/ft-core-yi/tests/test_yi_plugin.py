"""Tests of the ft-core-yi plugin: registration and exactness of the ``yi`` template against the official one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ft_core_yi
from ft_core.api import ChatTemplate, Message, ModelFamily
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
    return make_plugins(ft_core_yi, distribution="ft-core-yi")


@pytest.fixture
def yi(plugins: Any) -> ChatTemplate:
    found = plugins.get("chat_template", "yi")
    assert isinstance(found, ChatTemplate)
    return found


def test_registers_family_and_template(plugins: Any, yi: ChatTemplate) -> None:
    family = plugins.get("model_family", "yi")
    assert isinstance(family, ModelFamily)
    assert family.covers("Yi", ["YiForCausalLM"]) and family.trust_remote_code
    assert not family.covers("llama", ["LlamaForCausalLM"])  # today's Yi checkpoints are the llama family
    assert family.default_template == "yi" and family.templates == ("yi",)
    assert plugins.names("chat_template") == ["yi"]
    assert yi.stop_words == ("<|im_end|>",) and not yi.supports_tools and yi.prefix_stable


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_yi")


def test_renders_like_the_official_template(yi: ChatTemplate) -> None:
    check_official_template(yi, official("yi"), name="yi")
    assert yi.jinja == official("yi")


def test_system_prompt_is_plain_text_and_prompt_opens_the_assistant_turn(yi: ChatTemplate) -> None:
    # The official template writes the system prompt bare (no <|im_start|>system turn) and opens the assistant
    # turn after every user turn, with or without add_generation_prompt.
    messages = [Message("system", "Be brief."), Message("user", "Hi")]
    expected = "Be brief.<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert render_template(yi, messages) == expected
    assert render_template(yi, messages, add_generation_prompt=True) == expected
    conversation = golden_conversations()[0]
    spans = [span for _, span in trained_texts(yi, conversation)]
    assert spans == ["The capital of France is Paris.<|im_end|>\n", "Rome.<|im_end|>\n"]


def test_yi_coder_template_differs(yi: ChatTemplate) -> None:
    # Yi-Coder-*-Chat wraps the system prompt in a ChatML system turn: it is not the `yi` template (Yi-Coder
    # checkpoints carry their template in the tokenizer; use `template: auto`).
    messages = [Message("system", "Be brief."), Message("user", "Hi")]
    assert render_template(official("yi-coder"), messages) != render_template(yi, messages)
