"""A small random-init Qwen2-VL built offline, to try vision-language training without downloading a model.

``model.name_or_path: tiny-qwen2-vl`` (what ``configs/vlm_lora_demo.yaml`` trains on the ``vlm_shapes_demo`` set)
builds it once into the model cache (``<cache>/models/tiny-qwen2-vl-v1``); ``python -m ft_core.engine.vision.tiny
FOLDER`` writes it anywhere. It is the model, a byte-level BPE tokenizer with Qwen2-VL's special tokens (trained on
the demo captions) and an image processor for 32 px images, as a Hugging Face folder.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>")  # fmt: skip
_CORPUS = (
    "system user assistant You are a helpful assistant.",
    "What is in the picture? Describe the image. What shape do you see?",
    "a red circle, a green square, a blue triangle, a yellow circle",
)


def _tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(_CORPUS) * 8, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<|im_end|>", "<|endoftext|>")],
    )


def write(folder: str | Path, hidden_size: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """Write the model folder; returns it."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, Qwen2VLImageProcessor

    folder = Path(folder)
    tokenizer = _tokenizer()
    ids = {
        key: tokenizer.convert_tokens_to_ids(token)
        for key, token in (
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        )
    }
    config = AutoConfig.for_model(
        "qwen2_vl",
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            depth=1,
            embed_dim=32,
            hidden_size=hidden_size,
            num_heads=2,
            patch_size=4,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        **ids,
    )
    torch.manual_seed(seed)
    AutoModelForImageTextToText.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    Qwen2VLImageProcessor(
        min_pixels=32 * 32, max_pixels=32 * 32, patch_size=4, merge_size=2, temporal_patch_size=2
    ).save_pretrained(folder)
    return folder


#: The ``model.name_or_path`` alias of the model built on first use (``ft_core.engine.models.embedded``).
NAME = "tiny-qwen2-vl"
_VERSION = "v1"


def cached(cache_dir: str | os.PathLike[str] | None = None) -> str:
    """The folder of the :data:`NAME` model in the model cache (``cache_dir``, else ``<ft-core cache>/models``),
    built on first use."""
    import shutil
    import tempfile

    from ft_core.engine.storage import cache_root

    root = Path(cache_dir) if cache_dir else cache_root() / "models"
    folder = root / f"{NAME}-{_VERSION}"
    if not (folder / "config.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=root))
        try:
            write(staging)
            os.replace(staging, folder)  # complete or absent, also with concurrent first runs
        except OSError:
            if not (folder / "config.json").is_file():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return str(folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args(argv)
    print(write(args.folder, args.hidden_size, args.layers))


if __name__ == "__main__":
    main()
