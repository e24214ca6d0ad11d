"""Images in chat requests for vision-language targets: the request's images opened, its messages rendered with
the run's chat template and each image expanded to the processor's own tokens, and the processed image tensors
for ``generate`` -- the same processor and expansion that training uses (:mod:`ft_core.engine.vision`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ft_core.api.errors import FtCoreError
from ft_core.api.inference import IMAGE_PLACEHOLDER, ChatRequest, VisionTarget, count_image_placeholders


def open_image(image: Any, index: int) -> Any:
    """Image ``index`` of a request (a path, the encoded file's bytes or a PIL image) as an RGB PIL image."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    try:
        if isinstance(image, bytes | bytearray | memoryview):
            with Image.open(io.BytesIO(bytes(image))) as opened:
                return opened.convert("RGB")
        if isinstance(image, str | os.PathLike):
            with Image.open(image) as opened:
                return opened.convert("RGB")
    except Exception as exc:  # OSError, UnidentifiedImageError, ...
        what = image if isinstance(image, str | os.PathLike) else f"({len(bytes(image))} bytes)"
        raise FtCoreError(f"image {index + 1} of the request: cannot read image {what}: {exc}") from None
    raise FtCoreError(
        f"image {index + 1} of the request: expected a path, bytes or a PIL image, got {type(image).__name__}"
    )


def refuse_images(request: ChatRequest, description: str) -> None:
    """A text-only model's refusal of a request with images."""
    if request.images:
        raise FtCoreError(
            f"{description} reads text only: the request carries {len(request.images)} image(s); images need a "
            "run (or model) of a vision-language model family"
        )


def _parts(content: Any) -> Any:
    """Text with ``<image>`` placeholders as content parts (text parts, an image part per placeholder)."""
    from ft_core.engine.vision.encoding import _parts as parts

    if isinstance(content, list):  # text parts: their placeholders become image parts too
        converted: list[Any] = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                converted.extend(parts(part["text"]))
            else:
                converted.append(part)
        return converted
    return parts(content)


def _replace_text(content: Any, token: str) -> Any:
    if isinstance(content, str):
        return content.replace(IMAGE_PLACEHOLDER, token)
    if isinstance(content, list):
        return [
            {**part, "text": part["text"].replace(IMAGE_PLACEHOLDER, token)}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    return content


@dataclass
class VisionPrompter:
    """Renders requests with images for one vision-language target."""

    vision: VisionTarget
    tokenizer: Any
    template_kwargs: dict[str, Any]

    def processor(self) -> Any:
        from ft_core.engine.vision.processor import load_processor

        return load_processor(self.vision.processor_path, self.vision.model_type)

    def prompt(self, request: ChatRequest) -> tuple[list[int], list[Any]]:
        """The prompt's token ids (each image expanded as the processor does) and its opened images."""
        from ft_core.engine.vision.encoding import _expand
        from ft_core.engine.vision.processor import process_images

        wanted = count_image_placeholders(request.messages)
        if wanted != len(request.images):
            raise FtCoreError(
                f"the request has {len(request.images)} image(s) but its messages hold {wanted} "
                f"{IMAGE_PLACEHOLDER} placeholder(s): put one {IMAGE_PLACEHOLDER} in the text where each image goes"
            )
        images = [open_image(image, index) for index, image in enumerate(request.images)]
        processor = self.processor()
        token = processor.image_token
        if self.vision.template_image_token is not None:
            messages = [{**m, "content": _parts(m.get("content"))} for m in request.messages]
        else:
            messages = [{**m, "content": _replace_text(m.get("content"), token)} for m in request.messages]
        text = self.tokenizer.apply_chat_template(
            messages,
            tools=list(request.tools) if request.tools is not None else None,
            add_generation_prompt=True,
            tokenize=False,
            **self.template_kwargs,
        )
        if images:
            _, replacements = process_images(processor, images)
            text, _ = _expand(text, [], token, replacements, "the request", None)
        elif token in text:
            raise FtCoreError(
                f"the request's text holds the image token {token!r} but the request has no image"
            )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]), images

    def inputs(self, images: Sequence[Any], input_ids: Any, dtype: Any) -> dict[str, Any]:
        """The ``generate`` keyword arguments of a batch's images (all rows' images, in row order) besides the
        token ids: the processed pixels (in the model's dtype) and the token types the model needs."""
        import numpy
        import torch

        from ft_core.engine.vision.collator import _mm_types_name
        from ft_core.engine.vision.processor import process_images

        processor = self.processor()
        extra: dict[str, Any] = {}
        if images:
            features, _ = process_images(processor, list(images))
            for key, value in features.items():
                tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(numpy.asarray(value))
                if tensor.is_floating_point():
                    tensor = tensor.to(dtype)
                extra[key] = tensor.to(input_ids.device)
        name = _mm_types_name(processor)
        if name is not None and (images or name == "token_type_ids"):
            types = processor.create_mm_token_type_ids(input_ids.tolist())
            extra[name] = torch.as_tensor(types, dtype=torch.long, device=input_ids.device)
        return extra
