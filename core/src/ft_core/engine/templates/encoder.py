"""The run's :class:`~ft_core.api.context.Encoder`: samples to token ids with the tokenizer and chat template."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import SimpleNamespace
from typing import Any

from ft_core.api.context import Encoder
from ft_core.api.conversation import Conversation, Message
from ft_core.api.errors import DataError, FtCoreError
from ft_core.engine.templates.batch import encode_supervised_batch
from ft_core.engine.templates.render import (
    encode_completion,
    encode_conversation,
    encode_supervised,
    generation_inputs,
    stop_token_ids,
)
from ft_core.engine.templates.thinking import apply_thinking_rules, without_reasoning


@dataclass
class TemplateEncoder(Encoder):
    """Encodes with ``tokenizer`` and the Jinja template ``jinja`` (``None`` for text-only stages).

    Picklable (plain fields), so stages use it in preprocessing worker processes.
    """

    tokenizer: Any
    jinja: str | None
    cutoff_len: int
    train_on_prompt: bool = False
    mask_history: bool = False
    system: str | None = None
    template_name: str | None = None
    prefix_stable: bool = True
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    #: Set for templates that end answers with the next turn's marker: the template's stop words.
    next_turn_stop_words: tuple[str, ...] | None = None
    #: Vision-language runs: a ``ft_core.engine.vision.VisionEncoding`` (conversations with images are then
    #: encoded by ``ft_core.engine.vision``); ``None`` for text models.
    vision: Any = None
    #: ``data.preserve_thinking``: keep earlier turns' reasoning under ``mask_history`` (see
    #: :mod:`ft_core.engine.templates.thinking`).
    preserve_thinking: bool = False

    def _prepared(self, conversation: Conversation) -> Conversation:
        """``conversation`` with reasoning removed where ``enable_thinking: false`` or ``mask_history`` say so."""
        return apply_thinking_rules(
            conversation,
            enable_thinking=self.template_kwargs.get("enable_thinking"),
            mask_history=self.mask_history,
            preserve_thinking=self.preserve_thinking,
        )

    @cached_property
    def _next_turn_stops(self) -> frozenset[int] | None:
        """Token ids of the next-turn stop words (tokenized once, not per conversation)."""
        if self.next_turn_stop_words is None:
            return None
        words = SimpleNamespace(stop_words=self.next_turn_stop_words)
        return frozenset(stop_token_ids(self.tokenizer, words))

    def _supervision(self) -> dict[str, Any]:
        """The ``data`` / ``template`` options every supervised encoding takes."""
        return dict(
            train_on_prompt=self.train_on_prompt,
            mask_history=self.mask_history,
            cutoff_len=self.cutoff_len,
            system=self.system,
            name=self.template_name,
            template_kwargs=self.template_kwargs,
            next_turn_stops=self._next_turn_stops,
        )

    def _vision_rows(self, conversation: Conversation) -> list[dict[str, Any]] | None:
        """The rows of a vision-language run (``None``: encode as text)."""
        if self.vision is not None:
            return self.vision.encode_rows(self, conversation)
        if conversation.images:
            raise DataError(
                f"{conversation.source or 'a conversation'}: the row has {len(conversation.images)} image(s), but the "
                "model is not a vision-language model ft-core knows (no installed model family with vision support "
                "covers it). Train a vision-language model (LLaVA, PaliGemma, Qwen2-VL, Gemma 3, ...) or use a "
                "dataset without images"
            )
        return None

    def _template(self) -> str:
        if self.jinja is None:
            raise FtCoreError(
                "this stage encodes plain text: it has no chat template to render conversations"
            )
        return self.jinja

    def encode_conversation(self, conversation: Conversation) -> dict[str, list[int]] | None:
        conversation = self._prepared(conversation)
        if (rows := self._vision_rows(conversation)) is not None:
            return rows[0] if rows else None
        return encode_conversation(self.tokenizer, self._template(), conversation, **self._supervision())

    def encode_supervised(self, conversation: Conversation) -> list[dict[str, list[int]]]:
        conversation = self._prepared(conversation)
        if (rows := self._vision_rows(conversation)) is not None:
            return rows
        return encode_supervised(
            self.tokenizer,
            self._template(),
            conversation,
            prefix_stable=self.prefix_stable,
            **self._supervision(),
        )

    def encode_supervised_batch(
        self, conversations: Sequence[Conversation]
    ) -> Sequence[dict[str, list[int]]]:
        """The rows of :meth:`encode_supervised` of each conversation, tokenized in one call (text models)."""
        if self.vision is not None:
            return super().encode_supervised_batch(conversations)
        return encode_supervised_batch(
            self.tokenizer,
            self._template(),
            (self._text_only(self._prepared(conversation)) for conversation in conversations),
            prefix_stable=self.prefix_stable,
            **self._supervision(),
        )

    def _text_only(self, conversation: Conversation) -> Conversation:
        """``conversation``, checked to carry no image (this encoder has no vision settings)."""
        self._vision_rows(conversation)
        return conversation

    def encode_completion(
        self, conversation: Conversation, answer: Message | None = None
    ) -> tuple[list[int], list[int]]:
        conversation = self._prepared(conversation)
        if answer is not None and self.template_kwargs.get("enable_thinking") is False:
            answer = without_reasoning(answer)
        if conversation.images:
            raise DataError(
                f"{conversation.source or 'a conversation'}: rows with images train with the sft stage only (this "
                "stage encodes prompt / completion pairs, which do not carry images yet)"
            )
        return encode_completion(
            self.tokenizer,
            self._template(),
            conversation,
            answer,
            system=self.system,
            name=self.template_name,
            template_kwargs=self.template_kwargs,
        )

    def encode_prompt(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> list[int]:
        return generation_inputs(
            self.tokenizer, self._template(), list(messages), tools, template_kwargs=self.template_kwargs
        )

    def encode_text(self, texts: list[str]) -> list[list[int]]:
        eos = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        return [ids + eos for ids in self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
