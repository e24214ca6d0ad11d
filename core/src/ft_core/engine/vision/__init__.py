"""Vision-language models: images in conversations, the model's processor, batching and freezing.

- :mod:`.encoding`: supervised rows of conversations with images (image tokens expanded as the processor does).
- :mod:`.collator`: batches with the processed images.
- :mod:`.model`: the auto class of a vision family, freezing of the vision tower and projector.

Only :func:`vision_encoding` is needed at run start; the rest is imported where used.
"""

from __future__ import annotations

from typing import Any

from ft_core.engine.vision.encoding import VisionEncoding


def vision_encoding(run: Any) -> VisionEncoding | None:
    """The vision settings of an engine run whose model family has vision support, else ``None``."""
    family = run.family
    if family is None or family.vision is None or run.template is None:
        return None
    from ft_core.engine.models.loader import model_folder

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

        model_type = AutoConfig.from_pretrained(model_folder(run.config.model)).model_type
    except Exception:  # the family's first type is a fine fallback for picking the processor class
        pass
    return VisionEncoding(model_folder(run.config.model), model_type, image_token)


__all__ = ["VisionEncoding", "vision_encoding", "wrap_collator"]


def wrap_collator(run: Any, collator: Any, *, packed: bool) -> Any:
    """``collator`` with the images of each batch added, for a vision-language run (unchanged otherwise)."""
    family = run.family
    if family is None or family.vision is None:
        return collator
    from ft_core.api.errors import FtCoreError

    if packed:
        raise FtCoreError(
            "data.packing: vision-language models train on padded batches (each row keeps its own images); "
            "set data.packing: false"
        )
    encoding = vision_encoding(run)
    if encoding is None:
        return collator
    from ft_core.engine.vision.collator import VisionCollator

    return VisionCollator(collator, encoding, getattr(run.tokenizer, "padding_side", "right"))
