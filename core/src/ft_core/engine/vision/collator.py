"""Batches of a vision-language run: the stage's text collator, plus the images of the batch processed by the
model's own processor (``pixel_values`` and what goes with them) and the token types the model needs."""

from __future__ import annotations

import json
from typing import Any

from ft_core.api.errors import FtCoreError
from ft_core.engine.vision.encoding import IMAGES_COLUMN, PREFIX_TYPES_COLUMN, VisionEncoding
from ft_core.engine.vision.processor import process_images


def _mm_types_name(processor: Any) -> str | None:
    """The model input naming which tokens are image tokens, when the model takes one: ``mm_token_type_ids``
    (Qwen2-VL's M-RoPE) or ``token_type_ids`` (Gemma 3's bidirectional image attention)."""
    if not getattr(processor, "return_mm_token_type_ids", False):
        return None
    names = list(getattr(processor, "model_input_names", []) or [])
    return (
        "mm_token_type_ids"
        if "mm_token_type_ids" in names or "token_type_ids" not in names
        else "token_type_ids"
    )


class VisionCollator:
    """Wraps a text collator (e.g. ``DataCollatorForSeq2Seq``): takes the ``images`` column (JSON paths) and the
    prefix token types out of each row, lets the text collator pad the rest, then adds the processed images."""

    def __init__(self, text_collator: Any, vision: VisionEncoding, padding_side: str = "right") -> None:
        self.text_collator = text_collator
        self.vision = vision
        self.padding_side = padding_side

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        import numpy
        import torch

        rows = [dict(f) for f in features]
        paths = [json.loads(row.pop(IMAGES_COLUMN, None) or "[]") for row in rows]
        prefix_types = [row.pop(PREFIX_TYPES_COLUMN, None) for row in rows]
        batch = self.text_collator(rows)
        input_ids = batch["input_ids"]
        if any(types is not None for types in prefix_types):
            batch["token_type_ids"] = self._pad([list(t or []) for t in prefix_types], input_ids.shape[1])
        processor = self.vision.processor()
        flat = [path for row_paths in paths for path in row_paths]
        if flat:
            features_, replacements = process_images(processor, self.vision.open_images(flat))
            self._check_counts(processor, input_ids, replacements)
            for key, value in features_.items():
                batch[key] = (
                    value if isinstance(value, torch.Tensor) else torch.as_tensor(numpy.asarray(value))
                )
        name = _mm_types_name(processor)
        if name is not None and (flat or name == "token_type_ids") and name not in batch:
            types = processor.create_mm_token_type_ids(input_ids.tolist())
            batch[name] = torch.as_tensor(types, dtype=torch.long)
        return batch

    def _pad(self, rows: list[list[int]], length: int) -> Any:
        import torch

        padded = [
            (r + [0] * (length - len(r))) if self.padding_side == "right" else ([0] * (length - len(r)) + r)
            for r in rows
        ]
        return torch.as_tensor(padded, dtype=torch.long)

    @staticmethod
    def _check_counts(processor: Any, input_ids: Any, replacements: list[str]) -> None:
        """The batch's image tokens must be what the processor expands its images to now; they differ when the
        data was prepared (and cached) with another image processor configuration."""
        ids = [i for i in getattr(processor, "image_token_ids", []) if i is not None]
        if not ids:
            return
        tokenizer = processor.tokenizer
        expected = sum(
            sum(1 for t in tokenizer(r, add_special_tokens=False)["input_ids"] if t in ids)
            for r in replacements
        )
        found = int(sum((input_ids == i).sum().item() for i in ids))
        if found != expected:
            raise FtCoreError(
                f"the batch holds {found} image tokens but its images expand to {expected} with the model's "
                "processor: the data was prepared with another image processor configuration. Prepare it again "
                "(data.overwrite_cache: true)"
            )
