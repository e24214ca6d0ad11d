"""Tests of ft-core-olmo: registration, exactness of `olmo` against the official Jinja, tiny fine-tunes of OLMo and
OLMo 2, import-lightness."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ft_core_olmo
from ft_core.api import ChatTemplate, Message, ModelFamily
from ft_core.testing.families import check_family_finetunes
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import (
    check_official_template,
    golden_conversations,
    render_template,
    trained_texts,
)

OFFICIAL = (Path(__file__).parent / "official" / "olmo.jinja").read_text()


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_olmo, distribution="ft-core-olmo")


def _template(plugins: Any) -> ChatTemplate:
    return plugins.get("chat_template", "olmo")


def test_registers_family_and_template(plugins: Any) -> None:
    family = plugins.get("model_family", "olmo")
    assert isinstance(family, ModelFamily)
    assert family.model_types == ("olmo", "olmo2")
    assert family.covers("x", ["Olmo2ForCausalLM"])
    assert family.default_template == "olmo" and family.templates == ("olmo",)
    assert plugins.names("chat_template") == ["olmo"]
    template = _template(plugins)
    assert template.special_tokens == {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}
    assert not template.supports_tools


def test_template_is_the_official_one(plugins: Any) -> None:
    template = _template(plugins)
    assert template.jinja == OFFICIAL  # verbatim
    check_official_template(template, OFFICIAL, name="olmo")


def test_each_assistant_turn_trains_its_eos_but_not_the_newline_after_it(plugins: Any) -> None:
    """A non-final assistant turn renders ``answer<eos>\\n``; the trained span is ``answer<eos>`` (the newline
    belongs to the next turn's prompt), as the model generates it."""
    template = _template(plugins)
    [conversation] = [c for c in golden_conversations() if c.source == "golden:no-system"]
    text = render_template(template, conversation.messages)
    assert "I am a helpful assistant.<|endoftext|>\n<|user|>\n" in text
    assert text.endswith("Hello world!<|endoftext|>")
    spans = [span for _, span in trained_texts(template, conversation)]
    assert spans == ["I am a helpful assistant.<|endoftext|>", "Hello world!<|endoftext|>"]
    assert render_template(template, [Message("user", "Hi")], add_generation_prompt=True) == (
        "<|endoftext|><|user|>\nHi\n<|assistant|>\n"
    )


@pytest.mark.parametrize("model_type", ["olmo", "olmo2"])
def test_family_finetunes_a_tiny_model(tmp_path: Path, model_type: str) -> None:
    manifest = check_family_finetunes(
        ft_core_olmo, "olmo", model_type=model_type, tmp_path=tmp_path, template="olmo"
    )
    assert manifest["template"]["name"] == "olmo"
    adapter = json.loads(next((tmp_path / f"run-{model_type}").rglob("adapter_config.json")).read_text())
    assert set(adapter["target_modules"]) == set(ft_core_olmo.OLMO_FAMILY.lora_targets or ())


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_olmo")
