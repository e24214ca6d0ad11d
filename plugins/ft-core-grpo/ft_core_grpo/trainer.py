"""TRL's ``GRPOTrainer`` generating from ft-core's prompt tokens.

Heavy (imports TRL, torch): imported only when a grpo run builds its trainer.

TRL tokenizes each batch's ``prompt`` texts itself (or applies the tokenizer's chat template to messages). ft-core's
rows carry the prompt rendered by the run's chat template as ``prompt_ids`` beside its text; this trainer generates
from those ids, so the prompt is token for token what SFT trained on and what inference renders.
"""

from __future__ import annotations

import logging
from typing import Any

from accelerate.utils import is_peft_model
from trl import GRPOTrainer

logger = logging.getLogger(__name__)


def is_adapter_model(model: Any) -> bool:
    """Whether ``model`` trains through a PEFT adapter (then TRL's reference is the model with it disabled)."""
    return bool(is_peft_model(model))


def prompt_token_map(*datasets: Any) -> dict[str, list[int]]:
    """``{prompt text: prompt_ids}`` over the rows of ``datasets`` (``None`` and datasets without the columns
    skipped)."""
    mapping: dict[str, list[int]] = {}
    for dataset in datasets:
        if dataset is None or isinstance(dataset, dict):
            continue
        names = getattr(dataset, "column_names", None) or []
        if "prompt" in names and "prompt_ids" in names:
            mapping.update(zip(dataset["prompt"], (list(ids) for ids in dataset["prompt_ids"]), strict=True))
    return mapping


def row_batch(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GRPO's collator: the rows as they are."""
    return list(rows)


class FtGrpoTrainer(GRPOTrainer):
    """``trl.GRPOTrainer`` that generates from the rows' ``prompt_ids`` (the run's chat template)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data_collator = row_batch  # type: ignore[assignment]
        self.ft_prompt_ids = prompt_token_map(self.train_dataset, self.eval_dataset)

    def _tokenize_prompts(self, prompts: list[Any]) -> tuple[list[list[int]], Any, dict[str, Any]]:
        if not all(isinstance(prompt, str) and prompt in self.ft_prompt_ids for prompt in prompts):
            missing = next(p for p in prompts if not isinstance(p, str) or p not in self.ft_prompt_ids)
            if not isinstance(missing, str):
                return super()._tokenize_prompts(prompts)  # type: ignore[no-any-return]
            logger.debug("grpo: a prompt without its tokens, tokenized as text: %r", missing[:80])
        tokenizer: Any = getattr(self.processing_class, "tokenizer", self.processing_class)
        prompt_ids = [
            self.ft_prompt_ids.get(prompt) or tokenizer(prompt, add_special_tokens=False)["input_ids"]
            for prompt in prompts
        ]
        return prompt_ids, None, {}
