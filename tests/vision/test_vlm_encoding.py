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


def test_a_template_without_image_support_keeps_the_placeholder_as_the_image_token(tmp_path: Path) -> None:
    """LLaMA-Factory trains LLaVA-1.5 with the generic ``vicuna`` template: ``<image>`` stays in the text."""
    from ft_core_templates_generic.templates import VICUNA

    folder = tiny_vlm.llava(tmp_path / "llava", ft_core_llava.LLAVA)
    enc = encoder(folder, "llava", VICUNA, None)
    sample = conversation()
    (row,) = enc.encode_supervised(sample)
    text = render(enc.tokenizer, VICUNA, [m.to_hf() for m in sample.messages])
    assert "<image>What is in the picture?" in text
    processor = load_processor(str(folder), "llava")
    expected = processor(text=[text], images=pil(sample.images), add_special_tokens=False)
    assert row["input_ids"] == list(expected["input_ids"][0])
    assert trained(row, enc.tokenizer) == " a red circle</s>"


def test_an_image_in_a_later_turn_moves_the_trained_spans_after_it(tmp_path: Path) -> None:
    folder, jinja, image_token, _ = CASES["qwen2_vl"](tmp_path / "qwen")
    enc = encoder(folder, "qwen2_vl", jinja, image_token)
    files = [str(f) for f in sorted(SHAPES.glob("*.png"))[:2]]
    sample = Conversation(
        [
            Message("user", "<image>What is this?"),
            Message("assistant", "a blue circle"),
            Message("user", "And this one? <image>"),
            Message("assistant", "a blue square"),
        ],
        images=files,
        source="demo.json row 2",
    )
    (row,) = enc.encode_supervised(sample)
    assert trained(row, enc.tokenizer) == "a blue circle<|im_end|>\na blue square<|im_end|>\n"
    processor = load_processor(str(folder), "qwen2_vl")
    parts = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a blue circle"}]},
        {"role": "user", "content": [{"type": "text", "text": "And this one? "}, {"type": "image"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a blue square"}]},
    ]
    text = render(enc.tokenizer, jinja, parts)
    expected = processor(text=[text], images=pil(files), add_special_tokens=False)
    assert row["input_ids"] == list(expected["input_ids"][0])


def test_the_collator_batches_images_and_refuses_stale_token_counts(tmp_path: Path) -> None:
    import json

    from transformers import DataCollatorForSeq2Seq

    from ft_core.engine.vision.collator import VisionCollator

    folder, jinja, image_token, _ = CASES["qwen2_vl"](tmp_path / "qwen")
    enc = encoder(folder, "qwen2_vl", jinja, image_token)
    rows = [enc.encode_supervised(conversation())[0], enc.encode_supervised(conversation(images=1))[0]]
    collate = VisionCollator(
        DataCollatorForSeq2Seq(enc.tokenizer, label_pad_token_id=IGNORE_INDEX), enc.vision
    )
    batch = collate(rows)
    assert batch["input_ids"].shape[0] == 2 and tuple(batch["image_grid_thw"].shape) == (2, 3)
    assert (
        batch["mm_token_type_ids"].sum().item()
        == (batch["input_ids"] == enc.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum().item()
    )
    stale = dict(rows[0], images=json.dumps(json.loads(rows[0]["images"]) * 2))  # two images, tokens for one
    with pytest.raises(Exception, match=r"data\.overwrite_cache: true"):
        collate([stale])
