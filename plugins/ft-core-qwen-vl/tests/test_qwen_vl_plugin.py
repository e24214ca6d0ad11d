"""The qwen2_vl family and template: registration, and the template renders exactly as Qwen2-VL's official one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ft_core_qwen_vl
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import check_official_template, render_template

OFFICIAL = (Path(__file__).parent / "official" / "qwen2_vl.jinja").read_text(encoding="utf-8")
IMAGE = {"type": "image"}


def text(value: str) -> dict[str, str]:
    return {"type": "text", "text": value}


#: Conversations with content parts, as ft-core passes conversations with images to a vision template.
IMAGE_CONVERSATIONS: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": [IMAGE, text("What is in the picture?")]},
     {"role": "assistant", "content": [text("a red circle")]}],
    [{"role": "system", "content": [text("Answer briefly.")]},
     {"role": "user", "content": [text("Compare "), IMAGE, text(" and "), IMAGE]},
     {"role": "assistant", "content": [text("Both are squares.")]},
     {"role": "user", "content": [text("Und die Farben? ")]},
     {"role": "assistant", "content": [text("Rot und blau — 红色和蓝色.")]}],
]  # fmt: skip


@pytest.fixture(name="plugins")
def _plugins(make_plugins: Any) -> Any:
    return make_plugins(ft_core_qwen_vl)


def test_registers_family_and_template(plugins: Any) -> None:
    family = plugins.get("model_family", "qwen2_vl")
    assert family.model_types == ("qwen2_vl", "qwen2_5_vl")
    assert family.default_template == "qwen2_vl" and family.templates == ("qwen2_vl",)
    assert family.vision is not None and family.vision.vision_modules == ("model.visual",)
    assert family.vision.projector_modules == ("model.visual.merger",)
    assert family.decoder_layers == "model.language_model.layers"
    template = plugins.get("chat_template", "qwen2_vl")
    assert template.image_token == "<|vision_start|><|image_pad|><|vision_end|>"
    assert template.stop_words == ("<|im_end|>",)


def test_import_light() -> None:
    check_import_light("ft_core_qwen_vl")


def test_renders_text_conversations_like_the_official_template(plugins: Any) -> None:
    check_official_template(plugins.get("chat_template", "qwen2_vl"), OFFICIAL, name="qwen2_vl")


@pytest.mark.parametrize("messages", IMAGE_CONVERSATIONS)
def test_renders_images_like_the_official_template(plugins: Any, messages: list[dict[str, Any]]) -> None:
    template = plugins.get("chat_template", "qwen2_vl")
    for end in range(1, len(messages) + 1):
        for prompt in (False, True):
            ours = render_template(template, messages[:end], add_generation_prompt=prompt)
            assert ours == render_template(OFFICIAL, messages[:end], add_generation_prompt=prompt)
    whole = render_template(template, messages)
    images = sum(part == IMAGE for m in messages for part in m["content"])
    assert whole.count(template.image_token) == images
