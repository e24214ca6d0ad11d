"""Tests of the ft-core-templates-generic plugin: registration and template conformance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import ft_core_templates_generic
from ft_core.testing.conformance import check_chat_template
from ft_core.testing.import_light import check_import_light

GENERIC = ("default", "alpaca", "vicuna", "empty")


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_templates_generic, distribution="ft-core-templates-generic")


def test_registers_templates(plugins: Any) -> None:
    assert plugins.names("chat_template") == sorted([*GENERIC, "chatml"])
    for name in GENERIC:
        assert plugins.get("chat_template", name).tokenizer_template_may_differ
    assert not plugins.get("chat_template", "chatml").tokenizer_template_may_differ


@pytest.mark.parametrize("name", [*GENERIC, "chatml"])
def test_template_conformance(name: str, plugins: Any, tiny_tokenizer: Any) -> None:
    check_chat_template(plugins.get("chat_template", name), tiny_tokenizer, name)


CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
    [
        {"role": "system", "content": "You are Nova."},
        {"role": "user", "content": "Who are you?"},
        {"role": "assistant", "content": "Nova."},
        {"role": "user", "content": "And?"},
        {"role": "assistant", "content": "Just Nova."},
    ],
]


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=["one-turn", "system-multi-turn"])
def test_chatml_matches_a_chatml_tokenizer(plugins: Any, tiny_tokenizer: Any, conversation: Any) -> None:
    """``chatml`` renders exactly like a tokenizer carrying the ChatML template (the start-up check passes)."""
    template = plugins.get("chat_template", "chatml")
    assert plugins.registration("chat_template", "chatml").distribution == "ft-core-templates-generic"
    for messages, generation in ((conversation, False), (conversation[:-1], True)):
        own = tiny_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
        ours = tiny_tokenizer.apply_chat_template(
            messages, chat_template=template.jinja, tokenize=False, add_generation_prompt=generation
        )
        assert ours == own


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_templates_generic")
