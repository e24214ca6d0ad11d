"""Continued pretraining: documents + EOS, packed into ``cutoff_len`` blocks, loss on every token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.api import IGNORE_INDEX, DataKind, Encoder, RunContext, TrainingStage


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


class PtStage(TrainingStage[PtOptions]):
    """Causal language modelling on raw text with the Hugging Face Trainer (the base class's default trainer)."""

    data_kind: ClassVar[DataKind] = "text"
    options_schema: ClassVar[type] = PtOptions
    description: ClassVar[str] = "continued pretraining on plain text (packed blocks)"
    #: ``data.packing``: the engine may pack these rows padding-free (its collator replaces :meth:`collator`).
    supports_packing: ClassVar[bool] = True

    def preprocess(
        self, samples: list[str], encoder: Encoder, options: PtOptions
    ) -> list[dict[str, list[int]]]:
        """Rows of ``cutoff_len`` tokens (labels = inputs). Packing works within the chunk of documents a worker
        gets, so each chunk may end in one shorter block; rows of a single token (nothing to predict) are
        dropped."""
        documents = encoder.encode_text(samples)
        cutoff = encoder.cutoff_len
        blocks = pack(documents, cutoff) if options.packing else [d[:cutoff] for d in documents]
        return [
            {"input_ids": b, "labels": list(b), "attention_mask": [1] * len(b)} for b in blocks if len(b) > 1
        ]

    def collator(self, run: RunContext) -> Any:
        """Pads a batch of unpacked rows to its longest (labels with ``IGNORE_INDEX``); to a multiple of 8 on
        GPUs. Packed rows all have ``cutoff_len`` tokens but the last."""
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(
            run.tokenizer,
            label_pad_token_id=IGNORE_INDEX,
            pad_to_multiple_of=8 if run.uses_gpu else None,
        )
