"""Continued pretraining: documents + EOS, packed into ``cutoff_len`` blocks, loss on every token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.components import TrainingStage
from ft_core.run.context import RunContext


@dataclass(frozen=True)
class PtOptions:
    """Options of the ``pt`` stage."""

    #: Concatenate documents and cut into blocks of ``data.cutoff_len`` (no padding); else one row per
    #: document, truncated to ``cutoff_len``.
    packing: bool = True


def pack(documents: list[list[int]], block: int) -> list[list[int]]:
    """Concatenate token lists and cut them into blocks of ``block`` tokens (the last may be shorter)."""
    stream = [token for document in documents for token in document]
    return [stream[i : i + block] for i in range(0, len(stream), block)]


class PtStage(TrainingStage):
    """Causal language modelling on raw text with the Hugging Face Trainer."""

    data_kind: ClassVar[str] = "text"
    options_schema: ClassVar[type] = PtOptions
    description: ClassVar[str] = "continued pretraining on plain text (packed blocks)"

    def tokenize(self, ctx: RunContext, samples: list[str]) -> list[dict[str, list[int]]]:
        tokenizer, cutoff = ctx.tokenizer, ctx.config.data.cutoff_len
        options: PtOptions = ctx.config.stage.options
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        documents = [ids + eos for ids in tokenizer(samples, add_special_tokens=True)["input_ids"]]
        blocks = pack(documents, cutoff) if options.packing else [d[:cutoff] for d in documents]
        return [
            {"input_ids": b, "labels": list(b), "attention_mask": [1] * len(b)} for b in blocks if len(b) > 1
        ]

    def build_trainer(self, ctx: RunContext, train_dataset: Any, eval_dataset: Any, callbacks: list) -> Any:
        from transformers import DataCollatorForSeq2Seq

        from ft_core.run.trainer import build_hf_trainer

        collator = DataCollatorForSeq2Seq(ctx.tokenizer, label_pad_token_id=-100)
        return build_hf_trainer(ctx, train_dataset, eval_dataset, callbacks, collator)
