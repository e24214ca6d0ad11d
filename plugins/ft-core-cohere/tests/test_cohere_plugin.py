"""Tests of ft-core-cohere: registration, exactness of `cohere` against the official Jinja, tiny fine-tunes of
Cohere and Cohere2, import-lightness."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ft_core_cohere
from ft_core.api import ChatTemplate, Conversation, Message, ModelFamily
from ft_core.testing.families import check_family_finetunes
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import check_official_template, golden_conversations, render_template

OFFICIAL = (Path(__file__).parent / "official" / "cohere.jinja").read_text()


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_cohere, distribution="ft-core-cohere")


def _template(plugins: Any) -> ChatTemplate:
    return plugins.get("chat_template", "cohere")


def test_registers_family_and_template(plugins: Any) -> None:
    family = plugins.get("model_family", "cohere")
    assert isinstance(family, ModelFamily)
    assert family.model_types == ("cohere", "cohere2")
    assert family.covers("x", ["Cohere2ForCausalLM"])
    assert family.default_template == "cohere" and family.templates == ("cohere",)
    assert plugins.names("chat_template") == ["cohere"]
    template = _template(plugins)
    assert template.special_tokens == {"bos_token": "<BOS_TOKEN>", "eos_token": "<|END_OF_TURN_TOKEN|>"}
    assert not template.supports_tools  # the tokenizer's `tool_use` template is not registered


def test_template_is_the_official_one(plugins: Any) -> None:
    template = _template(plugins)
    assert template.jinja == OFFICIAL  # verbatim
    extra = [
        Conversation(
            [
                Message("user", "  spaced  "),
                Message("assistant", " answer \n"),
                Message("user", "more"),
                Message("assistant", "ok"),
            ],
            source="cohere:stripped",
        ),
        Conversation(
            [Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Hello")],
            source="cohere:short-system",
        ),
    ]
    check_official_template(
        template, OFFICIAL, name="cohere", conversations=[*golden_conversations(), *extra]
    )


def test_system_prompt_is_a_system_turn_and_there_is_no_default_preamble(plugins: Any) -> None:
    template = _template(plugins)
    with_system = render_template(template, [Message("system", "Be brief."), Message("user", "Hi")])
    assert with_system == (
        "<BOS_TOKEN><|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>Be brief.<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hi<|END_OF_TURN_TOKEN|>"
    )
    without = render_template(template, [Message("user", "Hi")], add_generation_prompt=True)
    assert without == (
        "<BOS_TOKEN><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hi<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
    )


@pytest.mark.parametrize("model_type", ["cohere", "cohere2"])
def test_family_finetunes_a_tiny_model(tmp_path: Path, model_type: str) -> None:
    """3 LoRA steps on a tiny random-init Command R / R7B model. The Cohere turn markers are long strings of the
    tiny tokenizer (not single tokens), hence the longer cutoff."""
    manifest = check_family_finetunes(
        ft_core_cohere,
        "cohere",
        model_type=model_type,
        tmp_path=tmp_path,
        template="cohere",
        run_overrides=("data.cutoff_len=256",),
    )
    assert manifest["template"]["name"] == "cohere"
    adapter = json.loads(next((tmp_path / f"run-{model_type}").rglob("adapter_config.json")).read_text())
    assert set(adapter["target_modules"]) == set(ft_core_cohere.COHERE_FAMILY.lora_targets or ())


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_cohere")
