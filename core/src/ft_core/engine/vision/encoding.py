"""Supervised rows of conversations with images, for vision-language models.

A conversation's ``<image>`` placeholders become content parts (``{"type": "image"}`` between the text parts) for
templates that render images themselves (:attr:`ChatTemplate.image_token`, e.g. the official Qwen2-VL template
writes ``<|vision_start|><|image_pad|><|vision_end|>``); for templates that don't, each placeholder becomes the
processor's image token in the text. ft-core's renderer renders the conversation and locates the assistant turns
as for text. Then every image token in the rendering is replaced by the processor's own expansion of that image
(``<|image_pad|>`` x the image's patch count, LLaVA's 576 ``<image>``, Gemma 3's
``\\n\\n<start_of_image>...<end_of_image>\\n\\n``) before tokenizing, so the ids are exactly the processor's, and
the trained spans move with the text. The row keeps the image paths (JSON, column ``images``); the collator loads
and processes the images of each batch (pixel tensors are not cached).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ft_core.api.context import IGNORE_INDEX
from ft_core.api.conversation import Conversation, Message
from ft_core.api.errors import DataError
from ft_core.engine.templates.render import (
    AssistantSpan,
    RenderedConversation,
    _labels,
    _tokenize,
    render_conversation,
    with_system,
)
from ft_core.engine.templates.truncation import truncate_turns, turns_of
from ft_core.engine.vision.processor import load_processor, open_images, process_images

#: The image placeholder of dataset text (LLaMA-Factory's).
PLACEHOLDER = "<image>"
#: Row column holding the JSON list of a row's image paths.
IMAGES_COLUMN = "images"
#: Row column of PaliGemma's prefix (0) / answer (1) token types (``token_type_ids`` in the batch).
PREFIX_TYPES_COLUMN = "prefix_token_types"
#: Model types whose attention is bidirectional over the prompt prefix and that need its token types.
PREFIX_LM_MODEL_TYPES = ("paligemma",)


@dataclass(frozen=True)
class VisionEncoding:
    """What encoding needs to know of a vision-language run (picklable: the processor loads lazily in each
    worker from ``model_folder``)."""

    model_folder: str
    model_type: str
    #: The template's text for one image part (``None``: the template takes ``<image>`` as plain text).
    template_image_token: str | None = None
    #: Digest of the processor's files in ``model_folder`` (part of the data cache key: they decide token counts).
    processor_digest: str = ""
    #: ``data.image_max_pixels`` / ``data.image_min_pixels``: images are scaled into this range when opened.
    image_max_pixels: int | None = None
    image_min_pixels: int | None = None

    def open_images(self, paths: list[str], source: str = "") -> list[Any]:
        """The images of a row, opened and scaled into the run's pixel range."""
        return open_images(paths, source, self.image_max_pixels, self.image_min_pixels)

    def processor(self) -> Any:
        return load_processor(self.model_folder, self.model_type)

    def encode_rows(self, encoder: Any, conversation: Conversation) -> list[dict[str, Any]]:
        """The supervised rows of ``conversation`` (see :func:`encode_vision_rows`)."""
        return encode_vision_rows(encoder, conversation)

    @property
    def prefix_lm(self) -> bool:
        return self.model_type in PREFIX_LM_MODEL_TYPES


def _parts(content: Any) -> Any:
    """Text with ``<image>`` placeholders as content parts (text parts, an image part per placeholder)."""
    if not isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for index, piece in enumerate(content.split(PLACEHOLDER)):
        if index:
            parts.append({"type": "image"})
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


def as_template_input(
    conversation: Conversation, vision: VisionEncoding, image_token: str, system: str | None
) -> Conversation:
    """The conversation as the template renders it: content parts (templates with an image token), or the
    processor's ``image_token`` in place of each placeholder (templates without)."""
    messages = with_system(conversation.messages, system)
    if vision.template_image_token is not None:
        converted = [Message(m.role, _parts(m.content), m.tool_calls, m.reasoning) for m in messages]
    else:
        converted = [
            Message(m.role, m.content.replace(PLACEHOLDER, image_token), m.tool_calls, m.reasoning)
            for m in messages
        ]
    return Conversation(
        converted, tools=conversation.tools, source=conversation.source, images=conversation.images
    )


def _expand(
    text: str,
    spans: list[AssistantSpan],
    token: str,
    replacements: list[str],
    source: str,
    template: str | None,
) -> tuple[str, list[AssistantSpan]]:
    """``text`` with the n-th ``token`` replaced by ``replacements[n]``, and ``spans`` moved with the text."""
    found = [m.start() for m in re.finditer(re.escape(token), text)]
    if len(found) != len(replacements):
        label = f"chat template {template!r}" if template else "the chat template"
        raise DataError(
            f"{source or 'a conversation'}: {label} rendered {len(found)} image token(s) {token!r} for "
            f"{len(replacements)} image(s); the template must render each image part once (is it this model's "
            "vision-language template?), and the text must not contain the image token itself"
        )
    pieces, shifts, last, delta = [], [], 0, 0
    for start, replacement in zip(found, replacements, strict=True):
        pieces += [text[last:start], replacement]
        last = start + len(token)
        delta += len(replacement) - len(token)
        shifts.append((start, delta))
    pieces.append(text[last:])

    def moved(position: int) -> int:
        shift = 0
        for start, total in shifts:
            if start < position:
                shift = total
        return position + shift

    return "".join(pieces), [AssistantSpan(s.index, moved(s.start), moved(s.end)) for s in spans]


def encode_vision_rows(encoder: Any, conversation: Conversation) -> list[dict[str, Any]]:
    """The supervised row of ``conversation`` for a vision-language run (``encoder`` is the run's
    :class:`~ft_core.engine.templates.encoder.TemplateEncoder`, whose ``vision`` is set); ``[]`` when no trained
    token survives ``cutoff_len``."""
    vision: VisionEncoding = encoder.vision
    source = conversation.source or "a conversation"
    processor = vision.processor()
    image_token = processor.image_token
    prepared = as_template_input(conversation, vision, image_token, encoder.system)
    rendered = render_conversation(
        encoder.tokenizer,
        encoder._template(),
        prepared,
        name=encoder.template_name,
        template_kwargs=encoder.template_kwargs,
    )
    text, spans = rendered.text, rendered.spans
    if conversation.images:
        _, replacements = process_images(processor, vision.open_images(list(conversation.images), source))
        text, spans = _expand(text, spans, image_token, replacements, source, encoder.template_name)
    elif image_token in text:
        raise DataError(f"{source}: the text holds the image token {image_token!r} but the row has no image")
    cuts = [edge for span in spans for edge in (span.start, span.end)]
    expanded = RenderedConversation(text, rendered.messages, spans, _tokenize(encoder.tokenizer, text, cuts))
    labels = _labels(expanded, train_on_prompt=encoder.train_on_prompt, mask_history=encoder.mask_history)
    input_ids = expanded.input_ids
    cutoff = encoder.cutoff_len
    turns = turns_of([expanded.token_range(span) for span in spans], len(input_ids))
    cut_ids, cut_labels, kept = truncate_turns(
        input_ids, labels, turns, cutoff, last_turn_first=encoder.mask_history
    )
    if len(cut_ids) < len(input_ids):
        image_ids = {i for i in getattr(processor, "image_token_ids", []) if i is not None}
        if sum(t in image_ids for t in cut_ids) != sum(t in image_ids for t in input_ids):
            raise DataError(
                f"{source}: its image tokens do not fit in data.cutoff_len={cutoff} (the row has {len(input_ids)} "
                "tokens with its images expanded); raise data.cutoff_len or lower data.image_max_pixels"
            )
    if all(label == IGNORE_INDEX for label in cut_labels):
        return []
    row: dict[str, Any] = {
        "input_ids": cut_ids,
        "labels": cut_labels,
        "attention_mask": [1] * len(cut_ids),
        IMAGES_COLUMN: json.dumps([str(p) for p in conversation.images]),
    }
    if vision.prefix_lm:  # the prompt prefix (images, question) is 0, the answers from the first one on are 1
        first = expanded.token_range(spans[0])[0] if spans else len(input_ids)
        row[PREFIX_TYPES_COLUMN] = [0 if i < first else 1 for lo, hi in kept for i in range(lo, hi)]
    return [row]
