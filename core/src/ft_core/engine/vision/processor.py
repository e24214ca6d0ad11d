"""The model's own processor: how many image tokens each image expands to, and the image tensors.

The processor is loaded from the model folder (``AutoProcessor``). Where transformers cannot build it because an
optional part is missing (Qwen2-VL's processor insists on a video processor, which needs torchvision), it is built
from its image processor and tokenizer without that part: images are all ft-core trains on.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ft_core.api.errors import FtCoreError


def _processor_class(folder: Path, model_type: str) -> type[Any]:
    import transformers

    name = None
    config = folder / "processor_config.json"
    if config.is_file():
        name = json.loads(config.read_text(encoding="utf-8")).get("processor_class")
    if name is None:
        from transformers.models.auto import auto_mappings

        name = auto_mappings.PROCESSOR_MAPPING_NAMES.get(model_type)
    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    if cls is None:
        raise FtCoreError(f"no processor class is known for model_type {model_type!r} in {folder}")
    return cls


def _without_video(folder: Path, model_type: str) -> Any:
    """The processor built from the folder's image processor and tokenizer alone (no video processor)."""
    import inspect

    from transformers import AutoImageProcessor, AutoTokenizer

    cls = _processor_class(folder, model_type)

    class ImagesOnly(cls):  # type: ignore[misc, valid-type]
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> None:
            if argument is not None:
                super().check_argument_for_proper_class(argument_name, argument)

    extra: dict[str, Any] = {}
    config = folder / "processor_config.json"
    if config.is_file():
        accepted = inspect.signature(cls.__init__).parameters
        extra = {k: v for k, v in json.loads(config.read_text(encoding="utf-8")).items() if k in accepted}
    arguments = {
        "image_processor": AutoImageProcessor.from_pretrained(folder),
        "tokenizer": AutoTokenizer.from_pretrained(folder),
    }
    if "video_processor" in inspect.signature(cls.__init__).parameters:
        arguments["video_processor"] = None
    processor = ImagesOnly(**arguments, **extra)
    processor.__class__ = cls  # behaves as the model's processor; only construction was relaxed
    return processor


@lru_cache(maxsize=4)
def load_processor(folder: str, model_type: str) -> Any:
    """The processor of the model in ``folder`` (cached per process)."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(folder)
    except ImportError:  # an optional part (video processor) needs a library that is not installed
        return _without_video(Path(folder), model_type)
    except (OSError, ValueError, KeyError) as exc:
        raise FtCoreError(
            f"cannot load the image processor of the vision-language model in {folder!r}: {exc}. The model folder "
            "needs its processor files (preprocessor_config.json, and processor_config.json where the model has one)"
        ) from exc


def fit_pixels(image: Any, max_pixels: int | None, min_pixels: int | None) -> Any:
    """``image`` scaled (aspect kept) to at most ``max_pixels`` and at least ``min_pixels`` pixels, as
    LLaMA-Factory does (``image_max_pixels`` / ``image_min_pixels``); unchanged when within them."""
    import math

    area = image.width * image.height
    factor = 1.0
    if max_pixels is not None and area > max_pixels:
        factor = math.sqrt(max_pixels / area)
    elif min_pixels is not None and area < min_pixels:
        factor = math.sqrt(min_pixels / area)
    if factor == 1.0:
        return image
    return image.resize((max(1, int(image.width * factor)), max(1, int(image.height * factor))))


def open_images(
    paths: list[str], source: str = "", max_pixels: int | None = None, min_pixels: int | None = None
) -> list[Any]:
    """The images as RGB PIL images, scaled into ``[min_pixels, max_pixels]`` (:func:`fit_pixels`); an unreadable
    file is a :class:`FtCoreError` naming it (and the row)."""
    from PIL import Image

    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(fit_pixels(image.convert("RGB"), max_pixels, min_pixels))
        except Exception as exc:  # OSError, UnidentifiedImageError, ...
            where = f"{source}: " if source else ""
            raise FtCoreError(f"{where}cannot read image {path}: {exc}") from None
    return images


def process_images(processor: Any, images: list[Any]) -> tuple[dict[str, Any], list[str]]:
    """``(features, replacements)``: the image processor's output for ``images`` (``pixel_values`` and what the
    model needs with them, e.g. ``image_grid_thw``) and, per image, the text the processor puts in place of its
    image token (the image's expanded token sequence), exactly as ``processor(text=..., images=...)`` does."""
    merged = processor._merge_kwargs(
        tokenizer_init_kwargs=getattr(processor.tokenizer, "init_kwargs", {}),
    )
    features, replacements = processor._process_images(images, **merged["images_kwargs"])
    unused = set(getattr(processor, "unused_input_names", []) or [])
    return {k: v for k, v in dict(features).items() if k not in unused}, list(replacements)
