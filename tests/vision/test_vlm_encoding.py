"""Conversations with images encode to exactly the ids the model's own processor produces (image tokens expanded
to its count per image), with exactly the assistant answers trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tiny_vlm
from PIL import Image

import ft_core_gemma
import ft_core_llava
import ft_core_paligemma
import ft_core_qwen_vl
from ft_core.api import IGNORE_INDEX, Conversation, Message
from ft_core.engine.templates.render import render
from ft_core.engine.vision.encoding import VisionEncoding
from ft_core.engine.vision.processor import load_processor
from ft_core.testing import make_encoder

SHAPES = Path(__file__).resolve().parents[2] / "core" / "src" / "ft_core" / "demo_data" / "shapes"


def conversation(question: str = "<image>What is in the picture?", images: int = 1) -> Conversation:
    files = sorted(SHAPES.glob("*.png"))[:images]
    return Conversation(
        [Message("user", question), Message("assistant", "a red circle")],
        images=[str(f) for f in files],
        source="demo.json row 1",
    )


def encoder(folder: Path, model_type: str, jinja: str, image_token: str | None, **options: Any) -> Any:
    from transformers import AutoTokenizer

    encoding = make_encoder(AutoTokenizer.from_pretrained(folder), jinja, **options)
    encoding.vision = VisionEncoding(str(folder), model_type, image_token)
    return encoding


def trained(encoded: dict[str, Any], tokenizer: Any) -> str:
    return tokenizer.decode([t for t in encoded["labels"] if t != IGNORE_INDEX])


def pil(paths: list[str]) -> list[Any]:
    return [Image.open(p).convert("RGB") for p in paths]


CASES = {
    "qwen2_vl": lambda d: (
        tiny_vlm.qwen2_vl(d, ft_core_qwen_vl.QWEN2_VL),
        ft_core_qwen_vl.QWEN2_VL,
        "<|vision_start|><|image_pad|><|vision_end|>",
        "a red circle<|im_end|>\n",
    ),
    "llava": lambda d: (
        tiny_vlm.llava(d, ft_core_llava.LLAVA),
        ft_core_llava.LLAVA,
        "<image>\n",
        " a red circle ",
    ),
    "gemma3": lambda d: (
        tiny_vlm.gemma3(d, ft_core_gemma.GEMMA3),
        ft_core_gemma.GEMMA3,
        "<start_of_image>",
        "a red circle<end_of_turn>\n",
    ),
}


@pytest.mark.parametrize("model_type", sorted(CASES))
@pytest.mark.parametrize("images", [1, 2])
def test_ids_are_the_processors(tmp_path: Path, model_type: str, images: int) -> None:
    folder, jinja, image_token, answer = CASES[model_type](tmp_path / model_type)
    enc = encoder(folder, model_type, jinja, image_token)
    question = "<image>" * images + "What is in the picture?"
    sample = conversation(question, images)
    (row,) = enc.encode_supervised(sample)
    processor = load_processor(str(folder), model_type)
    parts = [{"type": "image"}] * images + [{"type": "text", "text": "What is in the picture?"}]
    messages = [
        {"role": "user", "content": parts},
        {"role": "assistant", "content": [{"type": "text", "text": "a red circle"}]},
    ]
    text = render(enc.tokenizer, jinja, messages)
    expected = processor(text=[text], images=pil(sample.images), add_special_tokens=False)
    assert row["input_ids"] == list(expected["input_ids"][0])
    image_ids = {i for i in processor.image_token_ids if i is not None}
    assert sum(t in image_ids for t in row["input_ids"]) > images  # expanded, not one token per image
    assert trained(row, enc.tokenizer) == answer


def test_paligemma_matches_its_processor_with_suffix(tmp_path: Path) -> None:
    folder = tiny_vlm.paligemma(tmp_path / "paligemma")
    enc = encoder(folder, "paligemma", ft_core_paligemma.PALIGEMMA, "<image>")
    sample = conversation("<image>caption en")
    (row,) = enc.encode_supervised(sample)
    processor = load_processor(str(folder), "paligemma")
    expected = processor(text=["<image>caption en"], images=pil(sample.images), suffix=["a red circle"])
    assert row["input_ids"] == list(expected["input_ids"][0])
    assert row["prefix_token_types"] == list(expected["token_type_ids"][0])
    assert trained(row, enc.tokenizer) == "a red circle<eos>"


def test_text_only_rows_of_a_vision_run(tmp_path: Path) -> None:
    folder, jinja, image_token, _ = CASES["llava"](tmp_path / "llava")
    enc = encoder(folder, "llava", jinja, image_token)
    (row,) = enc.encode_supervised(Conversation([Message("user", "Hi"), Message("assistant", "Hello")]))
    assert enc.tokenizer.decode(row["input_ids"]) == "USER: Hi ASSISTANT: Hello "
    assert row["images"] == "[]"


def test_image_tokens_that_do_not_fit_cutoff_len(tmp_path: Path) -> None:
    folder, jinja, image_token, _ = CASES["llava"](tmp_path / "llava")
    enc = encoder(folder, "llava", jinja, image_token, cutoff_len=8)
    with pytest.raises(
        Exception, match=r"demo\.json row 1: its image tokens do not fit in data\.cutoff_len=8"
    ):
        enc.encode_supervised(conversation())


def test_images_for_a_text_model_are_an_error(tiny_tokenizer: Any) -> None:
    enc = make_encoder(tiny_tokenizer)
    with pytest.raises(Exception, match=r"demo\.json row 1: the row has 1 image\(s\), but the model is not"):
        enc.encode_supervised(conversation())
