"""Supervised fine-tuning: conversations rendered by the chat template, loss on assistant tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from ft_core.api import IGNORE_INDEX, Conversation, DataKind, Encoder, NoOptions, RunContext, TrainingStage


class SftStage(TrainingStage[NoOptions]):
    """Supervised fine-tuning with the Hugging Face Trainer (the base class's default trainer)."""

    data_kind: ClassVar[DataKind] = "conversation"
    options_schema: ClassVar[type] = NoOptions
    description: ClassVar[str] = "supervised fine-tuning on conversations (loss on assistant turns)"
    #: ``data.packing``: the engine may pack these rows padding-free (its collator replaces :meth:`collator`).
    supports_packing: ClassVar[bool] = True
    #: A conversation's rows depend on it alone: the engine preprocesses batches of samples.
    rows_per_sample: ClassVar[bool] = True

    def preprocess(
        self, samples: list[Conversation], encoder: Encoder, options: NoOptions
    ) -> Sequence[dict[str, list[int]]]:
        """The supervised rows of each conversation (one; one per assistant turn for templates that rewrite earlier
        turns); rows with no trained token left after the cut to ``data.cutoff_len`` are dropped (the engine
        reports how many). The encoder tokenizes the batch together (``Encoder.encode_supervised_batch``)."""
        return encoder.encode_supervised_batch(samples)

    def collator(self, run: RunContext) -> Any:
        """Pads each batch to its longest row (labels with ``IGNORE_INDEX``); to a multiple of 8 on GPUs."""
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(
            run.tokenizer,
            label_pad_token_id=IGNORE_INDEX,
            pad_to_multiple_of=8 if run.uses_gpu else None,
        )
