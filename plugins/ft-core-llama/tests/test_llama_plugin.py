"""Tests of the ft-core-llama plugin: registration, the model family and template conformance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import ft_core_llama
from ft_core.components import ChatTemplate, ModelFamily
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
    from ft_core.templates import stop_token_ids

    ids = stop_token_ids(tiny_tokenizer, plugins.get("chat_template", "llama3"))
    assert tiny_tokenizer.convert_tokens_to_ids("<|eot_id|>") in ids


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_llama")
