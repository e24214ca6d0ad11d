"""Vision-language models: images in conversations, the model's processor, batching and freezing.

- :mod:`.encoding`: supervised rows of conversations with images (image tokens expanded as the processor does).
- :mod:`.collator`: batches with the processed images.
- :mod:`.model`: the auto class of a vision family, freezing of the vision tower and projector.

Only :func:`vision_encoding` is needed at run start; the rest is imported where used.
"""

from __future__ import annotations

from typing import Any

from ft_core.engine.vision.encoding import VisionEncoding


def vision_encoding(run: Any, folder: str) -> VisionEncoding | None:
    """The vision settings of an engine run (its model in ``folder``; its ``config.data`` gives the image pixel
    range) whose model family has vision support, else ``None``."""
    family = run.family
    if family is None or family.vision is None or run.template is None:
        return None
    image_token = None
    names = [run.template.name] if not run.template.derived_from_tokenizer else []
    if family.default_template:
        names.append(
            family.default_template
        )  # the tokenizer's own template: the family's chat template's token
    for name in names:
        try:
            image_token = run.plugins.get("chat_template", name).image_token
        except Exception:  # not registered (ComponentNotFoundError)
            continue
        break
    model_type = family.model_types[0]
    try:
        from transformers import AutoConfig

        model_type = AutoConfig.from_pretrained(folder).model_type
    except Exception:  # the family's first type is a fine fallback for picking the processor class
        pass
    data = getattr(getattr(run, "config", None), "data", None)
    return VisionEncoding(
        folder,
        model_type,
        image_token,
        processor_digest(folder),
        image_max_pixels=getattr(data, "image_max_pixels", None),
        image_min_pixels=getattr(data, "image_min_pixels", None),
    )


#: Files of a model folder that decide how images become tokens.
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "image_processor_config.json")


def processor_digest(folder: str) -> str:
    """sha256 over the processor files present in ``folder``."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256()
    for name in PROCESSOR_FILES:
        path = Path(folder) / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


__all__ = ["VisionEncoding", "processor_digest", "vision_encoding", "wrap_collator"]


def wrap_collator(run: Any, collator: Any, folder: str, *, packed: bool) -> Any:
    """``collator`` with the images of each batch added, for a vision-language run with its model in ``folder``
    (unchanged otherwise)."""
    family = run.family
    if family is None or family.vision is None:
        return collator
    from ft_core.api.errors import FtCoreError

    if packed:
        raise FtCoreError(
            "data.packing: vision-language models train on padded batches (each row keeps its own images); "
            "set data.packing: false"
        )
    encoding = vision_encoding(run, folder)
    if encoding is None:
        return collator
    from ft_core.engine.vision.collator import VisionCollator

    return VisionCollator(collator, encoding, getattr(run.tokenizer, "padding_side", "right"))
