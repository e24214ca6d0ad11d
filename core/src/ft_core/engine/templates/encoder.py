"""The run's :class:`~ft_core.api.context.Encoder`: samples to token ids with the tokenizer and chat template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ft_core.api.context import Encoder
from ft_core.api.conversation import Conversation, Message
from ft_core.api.errors import FtCoreError
from ft_core.engine.templates.render import encode_completion, encode_conversation, generation_inputs


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

    def _template(self) -> str:
        if self.jinja is None:
            raise FtCoreError(
                "this stage encodes plain text: it has no chat template to render conversations"
            )
        return self.jinja

    def encode_conversation(self, conversation: Conversation) -> dict[str, list[int]] | None:
        return encode_conversation(
            self.tokenizer,
            self._template(),
            conversation,
            train_on_prompt=self.train_on_prompt,
            mask_history=self.mask_history,
            cutoff_len=self.cutoff_len,
            system=self.system,
            name=self.template_name,
        )

    def encode_completion(
        self, conversation: Conversation, answer: Message | None = None
    ) -> tuple[list[int], list[int]]:
        return encode_completion(
            self.tokenizer,
            self._template(),
            conversation,
            answer,
            system=self.system,
            name=self.template_name,
        )

    def encode_prompt(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> list[int]:
        return generation_inputs(self.tokenizer, self._template(), list(messages), tools)

    def encode_text(self, texts: list[str]) -> list[list[int]]:
        eos = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        return [ids + eos for ids in self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
