"""Tests of the ft-core-llama plugin: registration, the model family and template conformance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import ft_core_llama
from ft_core.api import ChatTemplate, ModelFamily
from ft_core.testing.conformance import check_chat_template
from ft_core.testing.import_light import check_import_light


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_llama, distribution="ft-core-llama")


def test_registers_family_and_templates(plugins: Any) -> None:
    assert "llama" in plugins.names("model_family")
    assert {"llama2", "llama3"} <= set(plugins.names("chat_template"))
    family = plugins.get("model_family", "llama")
    assert isinstance(family, ModelFamily)
    assert family.model_types == ("llama",)
    assert family.default_template == "llama3" and family.decoder_layers == "model.layers"
    assert plugins.registration("chat_template", "llama3").distribution == "ft-core-llama"


@pytest.mark.parametrize("name", ["llama2", "llama3"])
def test_template_conformance(name: str, plugins: Any, tiny_tokenizer: Any) -> None:
    template = plugins.get("chat_template", name)
    assert isinstance(template, ChatTemplate) and not template.tokenizer_template_may_differ
    check_chat_template(template, tiny_tokenizer, name)


def test_llama3_stops_on_end_of_turn(plugins: Any, tiny_tokenizer: Any) -> None:
    template = plugins.get("chat_template", "llama3")
    assert template.stop_words == ("<|eot_id|>",)
    # A stop word must be one token of the run's tokenizer (checked at start-up).
    eot = tiny_tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert eot != tiny_tokenizer.unk_token_id
    assert tiny_tokenizer.encode("<|eot_id|>", add_special_tokens=False) == [eot]
    # Every assistant turn ends with it.
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    text = tiny_tokenizer.apply_chat_template(messages, chat_template=template.jinja, tokenize=False)
    assert text.endswith("Hello.<|eot_id|>")


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_llama")
