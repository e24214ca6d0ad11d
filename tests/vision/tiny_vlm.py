"""Tiny random-init vision-language models with their processors, built offline (no downloads) for tests.

Each builder writes a Hugging Face folder (config, weights, tokenizer with the model's special tokens and chat
template, image processor with tiny image sizes, processor config) and returns its path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ft_core.testing.tiny import tiny_tokenizer

TEXT = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)


def _ids(tokenizer: Any, **tokens: str) -> dict[str, int]:
    return {key: tokenizer.convert_tokens_to_ids(token) for key, token in tokens.items()}


def _save(path: Path, model: Any, tokenizer: Any, processor: Any = None, image_processor: Any = None) -> Path:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if processor is not None:
        processor.save_pretrained(path)
    if image_processor is not None:
        image_processor.save_pretrained(path)
    return path


def qwen2_vl(path: Path, chat_template: str, model_type: str = "qwen2_vl") -> Path:
    """Qwen2-VL (or Qwen2.5-VL with ``model_type="qwen2_5_vl"``): 32 px images of 4 px patches, merged 2x2."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, Qwen2VLImageProcessor

    specials = [
        "<unk>",
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ]
    tokenizer = tiny_tokenizer(
        special_tokens=specials,
        chat_template=chat_template,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    vision: dict[str, Any] = dict(
        depth=1,
        hidden_size=32,
        num_heads=2,
        patch_size=4,
        spatial_merge_size=2,
        temporal_patch_size=2,
        in_channels=3,
    )
    if model_type == "qwen2_vl":
        vision.update(embed_dim=32)
    else:
        vision.update(intermediate_size=64, out_hidden_size=32, window_size=16, fullatt_block_indexes=[0])
    config = AutoConfig.for_model(
        model_type,
        text_config=dict(
            vocab_size=len(tokenizer),
            **TEXT,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]},
            bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=vision,
        **_ids(
            tokenizer,
            image_token_id="<|image_pad|>",
            video_token_id="<|video_pad|>",
            vision_start_token_id="<|vision_start|>",
            vision_end_token_id="<|vision_end|>",
        ),
    )
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(config)
    # Saved alone: Qwen2-VL's processor also wants a video processor (torchvision); ft-core builds it without one.
    image_processor = Qwen2VLImageProcessor(
        min_pixels=16 * 16, max_pixels=32 * 32, patch_size=4, merge_size=2, temporal_patch_size=2
    )
    return _save(path, model, tokenizer, image_processor=image_processor)


def _text_config(model_type: str, vocab_size: int, tokenizer: Any, **overrides: Any) -> dict[str, Any]:
    from ft_core.testing.families import tiny_config

    config = tiny_config(
        model_type,
        vocab_size,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **overrides,
    )
    return config.to_dict()


def _vision_config(model_type: str, **overrides: Any) -> dict[str, Any]:
    return dict(model_type=model_type, **VISION, image_size=16, patch_size=4, **overrides)


def llava(path: Path, chat_template: str) -> Path:
    """LLaVA-1.5: a CLIP tower on 16 px images of 4 px patches (16 image tokens), a Llama language model."""
    import torch
    from transformers import AutoModelForImageTextToText, CLIPImageProcessor, LlavaConfig, LlavaProcessor

    tokenizer = tiny_tokenizer(
        special_tokens=["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        chat_template=chat_template,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    image_processor = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=4,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template,
    )
    config = LlavaConfig(
        vision_config=_vision_config("clip_vision_model", projection_dim=32),
        text_config=_text_config("llama", len(tokenizer), tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=16,
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    return _save(path, AutoModelForImageTextToText.from_config(config), tokenizer, processor)


def paligemma(path: Path) -> Path:
    """PaliGemma: a SigLIP tower on 16 px images of 4 px patches (16 image tokens), a Gemma language model."""
    import torch
    from transformers import (
        AutoModelForImageTextToText,
        PaliGemmaConfig,
        PaliGemmaProcessor,
        SiglipImageProcessor,
    )

    tokenizer = tiny_tokenizer(
        special_tokens=["<unk>", "<bos>", "<eos>", "<pad>", "<image>"],
        chat_template=None,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
    )
    image_processor = SiglipImageProcessor(size={"height": 16, "width": 16})
    image_processor.image_seq_length = 16
    processor = PaliGemmaProcessor(
        image_processor=image_processor, tokenizer=tokenizer
    )  # adds <loc>/<seg> tokens
    text = _text_config("gemma", len(tokenizer), tokenizer)
    config = PaliGemmaConfig(
        vision_config=_vision_config("siglip_vision_model", projection_dim=text["hidden_size"]),
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        projection_dim=text["hidden_size"],
    )
    torch.manual_seed(0)
    return _save(path, AutoModelForImageTextToText.from_config(config), tokenizer, processor)


def gemma3(path: Path, chat_template: str) -> Path:
    """Gemma 3: a SigLIP tower on 16 px images of 4 px patches pooled to 4 image tokens, a Gemma 3 language model."""
    import torch
    from transformers import (
        AutoModelForImageTextToText,
        AutoTokenizer,
        Gemma3Config,
        Gemma3ImageProcessor,
        Gemma3Processor,
    )

    specials = [
        "<unk>",
        "<bos>",
        "<eos>",
        "<pad>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<start_of_image>",
        "<end_of_image>",
        "<image_soft_token>",
    ]
    tokenizer = tiny_tokenizer(
        special_tokens=specials,
        chat_template=chat_template,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
    )
    tokenizer.save_pretrained(path)
    config_file = path / "tokenizer_config.json"
    settings = json.loads(config_file.read_text())
    settings["extra_special_tokens"] = {
        "boi_token": "<start_of_image>",
        "eoi_token": "<end_of_image>",
        "image_token": "<image_soft_token>",
    }
    config_file.write_text(json.dumps(settings))
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = Gemma3ImageProcessor(size={"height": 16, "width": 16}, do_pan_and_scan=False)
    processor = Gemma3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_length=4, chat_template=chat_template
    )
    ids = _ids(
        tokenizer,
        boi_token_index="<start_of_image>",
        eoi_token_index="<end_of_image>",
        image_token_index="<image_soft_token>",
    )
    config = Gemma3Config(
        text_config=_text_config("gemma3_text", len(tokenizer), tokenizer),
        vision_config=_vision_config("siglip_vision_model"),
        mm_tokens_per_image=4,
        **ids,
    )
    torch.manual_seed(0)
    return _save(path, AutoModelForImageTextToText.from_config(config), tokenizer, processor)
