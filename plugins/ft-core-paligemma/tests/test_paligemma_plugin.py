"""The paligemma family and template. PaliGemma has no chat template: the reference is the prompt its processor
builds (transformers' ``PaliGemmaProcessor``: ``<image>`` x images, ``<bos>``, the prefix, ``\\n``; then the suffix
and ``<eos>``), re-implemented below as :func:`reference`."""

from __future__ import annotations

from typing import Any

import pytest

import ft_core_paligemma
from ft_core.testing.import_light import check_import_light
from ft_core.testing.templates import render_template

IMAGE = {"type": "image"}


def text(value: str) -> dict[str, str]:
    return {"type": "text", "text": value}


def reference(prefix: str, images: int, suffix: str | None, bos: str = "<bos>", eos: str = "<eos>") -> str:
    """``PaliGemmaProcessor(text=prefix, images=[...] * images, suffix=suffix)`` as text (its
    ``prepare_inputs_layout`` with the placeholders in front, then the suffix with EOS)."""
    return "<image>" * images + bos + prefix + "\n" + (suffix + eos if suffix is not None else "")


@pytest.fixture(name="plugins")
def _plugins(make_plugins: Any) -> Any:
    return make_plugins(ft_core_paligemma)


def test_registers_family_and_template(plugins: Any) -> None:
    family = plugins.get("model_family", "paligemma")
    assert family.model_types == ("paligemma",) and family.default_template == "paligemma"
    assert family.vision is not None and family.vision.projector_modules == ("model.multi_modal_projector",)
    assert plugins.get("chat_template", "paligemma").image_token == "<image>"


def test_import_light() -> None:
    check_import_light("ft_core_paligemma")


@pytest.mark.parametrize("images", [0, 1, 2])
@pytest.mark.parametrize("prefix", ["caption en", "What colour is the shape? ", "Was ist das? 这是什么?"])
def test_renders_the_processor_prompt(plugins: Any, images: int, prefix: str) -> None:
    template = plugins.get("chat_template", "paligemma")
    user = {"role": "user", "content": [IMAGE] * images + [text(prefix)]}
    answer = {"role": "assistant", "content": [text("a red circle")]}
    assert render_template(template, [user], add_generation_prompt=True) == reference(prefix, images, None)
    assert render_template(template, [user, answer]) == reference(prefix, images, "a red circle")


def test_placeholders_inside_the_text_move_in_front_of_bos(plugins: Any) -> None:
    """As LLaMA-Factory's PaliGemma plugin does: the image tokens always open the sequence."""
    template = plugins.get("chat_template", "paligemma")
    user = {"role": "user", "content": [text("What shape? "), IMAGE]}
    assert render_template(template, [user], add_generation_prompt=True) == "<image><bos>What shape? \n"


def test_multi_turn_and_string_contents(plugins: Any) -> None:
    template = plugins.get("chat_template", "paligemma")
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye"},
    ]
    assert render_template(template, messages) == "<bos>Hi\nHello<eos>Bye\nGoodbye<eos>"
    assert render_template(template, messages[:3], add_generation_prompt=True) == "<bos>Hi\nHello<eos>Bye\n"


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "no system role"),
        (
            [
                {"role": "user", "content": [IMAGE, text("a")]},
                {"role": "assistant", "content": [text("b")]},
                {"role": "user", "content": [IMAGE, text("c")]},
            ],
            "images in the first user turn only",
        ),
    ],
)
def test_refuses_what_paligemma_cannot_take(plugins: Any, messages: list[dict[str, Any]], error: str) -> None:
    with pytest.raises(Exception, match=error):
        render_template(plugins.get("chat_template", "paligemma"), messages)
