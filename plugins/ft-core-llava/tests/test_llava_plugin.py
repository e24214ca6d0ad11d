"""The llava family and template: registration, and the template renders exactly as llava-hf's official one.

The official template reads content parts only (``message['content'] | selectattr('type', ...)``): ft-core gives a
vision template's conversations as content parts, so the golden conversations are checked in that form here (the
text kit's golden conversations carry plain-string contents, which this template renders as nothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ft_core_llava
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import golden_conversations, render_template

OFFICIAL = (Path(__file__).parent / "official" / "llava.jinja").read_text(encoding="utf-8")
IMAGE = {"type": "image"}


def as_parts(messages: list[Any]) -> list[dict[str, Any]]:
    return [{"role": m.role, "content": [{"type": "text", "text": m.content}]} for m in messages]


def text(value: str) -> dict[str, str]:
    return {"type": "text", "text": value}


IMAGE_CONVERSATIONS: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": [IMAGE, text("What is in the picture?")]},
     {"role": "assistant", "content": [text("a red circle")]}],
    [{"role": "system", "content": [text("Answer briefly.")]},
     {"role": "user", "content": [text("Compare "), IMAGE, text(" and "), IMAGE]},
     {"role": "assistant", "content": [text("Both are squares.")]},
     {"role": "user", "content": [text("Und die Farben? ")]},
     {"role": "assistant", "content": [text("Rot und blau — 红色和蓝色.")]}],
] + [as_parts(c.messages) for c in golden_conversations()]  # fmt: skip


@pytest.fixture(name="plugins")
def _plugins(make_plugins: Any) -> Any:
    return make_plugins(ft_core_llava)


def test_registers_family_and_template(plugins: Any) -> None:
    family = plugins.get("model_family", "llava")
    assert family.model_types == ("llava",) and family.default_template == "llava"
    assert family.vision is not None
    assert family.vision.vision_modules == ("model.vision_tower",)
    assert family.vision.projector_modules == ("model.multi_modal_projector",)
    assert plugins.get("chat_template", "llava").image_token == "<image>\n"


def test_import_light() -> None:
    check_import_light("ft_core_llava")


@pytest.mark.parametrize("messages", IMAGE_CONVERSATIONS)
def test_renders_like_the_official_template(plugins: Any, messages: list[dict[str, Any]]) -> None:
    template = plugins.get("chat_template", "llava")
    for end in range(1, len(messages) + 1):
        for prompt in (False, True):
            ours = render_template(template, messages[:end], add_generation_prompt=prompt)
            assert ours == render_template(OFFICIAL, messages[:end], add_generation_prompt=prompt)


def test_answers_are_the_text_after_the_generation_prompt(plugins: Any) -> None:
    """Prefix-stable: the generation prompt is a prefix of the answered turn, so ft-core trains ' answer '."""
    template = plugins.get("chat_template", "llava")
    messages = IMAGE_CONVERSATIONS[0]
    prompt = render_template(template, messages[:1], add_generation_prompt=True)
    whole = render_template(template, messages)
    assert prompt == "USER: <image>\nWhat is in the picture? ASSISTANT:"
    assert whole == prompt + " a red circle "
