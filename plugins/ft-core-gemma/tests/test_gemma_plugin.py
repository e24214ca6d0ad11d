"""Tests of ft-core-gemma: registration, exactness of `gemma` / `gemma3` against the official Jinja, import-lightness."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ft_core_gemma
from ft_core.api import ChatTemplate, Conversation, DataError, Message, ModelFamily, VisionSpec
from ft_core.testing.families import check_family_finetunes
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import check_official_template, golden_conversations, render_template

OFFICIAL = Path(__file__).parent / "official"


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_gemma, distribution="ft-core-gemma")


def _template(plugins: Any, name: str) -> ChatTemplate:
    return plugins.get("chat_template", name)


#: Gemma-specific conversations: contents the templates trim, and a long multi-turn exchange.
EXTRA = [
    Conversation(
        [Message("user", "  padded question \n"), Message("assistant", "\n padded answer  ")],
        source="gemma:trimmed",
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
        source="gemma:three-turns",
    ),
]


def test_registers_families_and_templates(plugins: Any) -> None:
    gemma = plugins.get("model_family", "gemma")
    assert isinstance(gemma, ModelFamily)
    assert gemma.model_types == ("gemma", "gemma2", "gemma3_text")
    assert gemma.covers("unknown", ["Gemma2ForCausalLM"])
    assert gemma.default_template == "gemma"
    assert gemma.templates == ("gemma", "gemma3")
    assert gemma.decoder_layers == "model.layers"
    assert gemma.vision is None
    gemma3 = plugins.get("model_family", "gemma3")
    assert gemma3.model_types == ("gemma3",)
    assert gemma3.covers("gemma3") and not gemma3.covers("gemma3_text")
    assert not gemma.covers("gemma3", ["Gemma3ForConditionalGeneration"])
    assert gemma3.default_template == "gemma3"
    assert gemma3.vision == VisionSpec(
        vision_modules=("model.vision_tower",),
        projector_modules=("model.multi_modal_projector",),
        auto_class="AutoModelForImageTextToText",
        language_layers="model.language_model.layers",
    )
    assert gemma3.decoder_layers == "model.language_model.layers"
    assert plugins.names("chat_template") == ["gemma", "gemma3"]
    for name in ("gemma", "gemma3"):
        template = _template(plugins, name)
        assert template.stop_words == ("<end_of_turn>",)
        assert template.special_tokens == {"bos_token": "<bos>", "eos_token": "<eos>"}
        assert not template.supports_tools
        assert template.source
    assert _template(plugins, "gemma").image_token is None
    assert _template(plugins, "gemma3").image_token == "<start_of_image>"


def test_gemma3_vision_paths_exist_in_transformers() -> None:
    """The VisionSpec module paths are those of transformers' Gemma3ForConditionalGeneration."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    config = Gemma3Config(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "vocab_size": 300,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
        },
        mm_tokens_per_image=4,
    )
    model = Gemma3ForConditionalGeneration(config)
    spec = ft_core_gemma.GEMMA3_FAMILY.vision
    assert spec is not None
    modules = dict(model.named_modules())
    for path in (*spec.vision_modules, *spec.projector_modules, spec.language_layers):
        assert path in modules, path
    assert len(modules[spec.language_layers]) == 2


@pytest.mark.parametrize("name", ["gemma", "gemma3"])
def test_template_is_the_official_one(plugins: Any, name: str) -> None:
    official = (OFFICIAL / f"{name}.jinja").read_text()
    template = _template(plugins, name)
    assert template.jinja == official  # verbatim
    check_official_template(template, official, name=name, conversations=[*golden_conversations(), *EXTRA])


def test_gemma_refuses_a_system_prompt_like_the_official_template(plugins: Any) -> None:
    messages = [Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Hello")]
    with pytest.raises(DataError, match="System role not supported"):
        render_template(_template(plugins, "gemma"), messages)
    with pytest.raises(DataError, match="System role not supported"):
        render_template(
            (OFFICIAL / "gemma.jinja").read_text(), messages, special_tokens={"bos_token": "<bos>"}
        )


def test_gemma3_folds_the_system_prompt_into_the_first_user_turn(plugins: Any) -> None:
    messages = [Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Hello")]
    assert render_template(_template(plugins, "gemma3"), messages) == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
    )
    assert render_template(_template(plugins, "gemma3"), messages[:2], add_generation_prompt=True).endswith(
        "Hi<end_of_turn>\n<start_of_turn>model\n"
    )


def test_gemma3_renders_image_parts_as_its_image_token(plugins: Any) -> None:
    template = _template(plugins, "gemma3")
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
    ]
    expected = (
        "<bos><start_of_turn>user\n<start_of_image>What is this?<end_of_turn>\n"
        "<start_of_turn>model\nA cat.<end_of_turn>\n"
    )
    assert render_template(template, messages) == expected
    official = (OFFICIAL / "gemma3.jinja").read_text()
    assert render_template(official, messages, special_tokens=template.special_tokens) == expected
    assert template.image_token is not None and template.image_token in expected


@pytest.mark.parametrize(
    ("model_type", "template"), [("gemma", "gemma"), ("gemma2", "gemma"), ("gemma3_text", "gemma3")]
)
def test_family_finetunes_a_tiny_model(tmp_path: Path, model_type: str, template: str) -> None:
    """3 LoRA steps on a tiny random-init Gemma / Gemma 2 / Gemma 3 text model: detected as `gemma`, and
    `targets: all` is exactly the family's projections."""
    manifest = check_family_finetunes(
        ft_core_gemma, "gemma", model_type=model_type, tmp_path=tmp_path, template=template
    )
    assert manifest["template"]["name"] == template
    adapter = json.loads(next((tmp_path / f"run-{model_type}").rglob("adapter_config.json")).read_text())
    assert set(adapter["target_modules"]) == set(ft_core_gemma.GEMMA_FAMILY.lora_targets or ())


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_gemma")
