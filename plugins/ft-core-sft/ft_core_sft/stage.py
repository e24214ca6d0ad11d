"""Supervised fine-tuning: conversations rendered by the chat template, loss on assistant tokens."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from ft_core.components import TrainingStage
from ft_core.data.conversation import Conversation
from ft_core.run.context import RunContext


class SftStage(TrainingStage):
    """Supervised fine-tuning with the Hugging Face Trainer."""

    data_kind: ClassVar[str] = "conversation"
    description: ClassVar[str] = "supervised fine-tuning on conversations (loss on assistant turns)"

    def tokenize(self, ctx: RunContext, samples: list[Conversation]) -> list[dict[str, list[int]]]:
        from tqdm.auto import tqdm

        from ft_core.templates.render import encode_conversation

        data, system = ctx.config.data, ctx.config.template.system
        rows, skipped = [], 0
        for conversation in tqdm(samples, desc="tokenizing", unit="rows", disable=len(samples) < 5000):
            encoded = encode_conversation(
                ctx.tokenizer,
                ctx.template.jinja,
                conversation,
                train_on_prompt=data.train_on_prompt,
                mask_history=data.mask_history,
                cutoff_len=data.cutoff_len,
                system=system,
            )
            if encoded is None:
                skipped += 1
                continue
            rows.append(encoded)
        if skipped:
            print(
                f"[ft-core] sft: skipped {skipped} of {len(samples)} samples with no trainable token left "
                f"after cutting to data.cutoff_len={data.cutoff_len}",
                file=sys.stderr,
            )
        return rows

    def build_trainer(self, ctx: RunContext, train_dataset: Any, eval_dataset: Any, callbacks: list) -> Any:
        from transformers import DataCollatorForSeq2Seq

        from ft_core.run.arguments import uses_cpu
        from ft_core.run.trainer import build_hf_trainer

        collator = DataCollatorForSeq2Seq(
            ctx.tokenizer,
            label_pad_token_id=-100,
            pad_to_multiple_of=None if uses_cpu(ctx.config.training) else 8,
        )
        return build_hf_trainer(ctx, train_dataset, eval_dataset, callbacks, collator)
