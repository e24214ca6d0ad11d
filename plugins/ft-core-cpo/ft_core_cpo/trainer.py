"""TRL's experimental ``CPOTrainer`` fed with ft-core's pre-tokenized rows (stages ``cpo`` and ``simpo``).

Heavy (imports TRL, torch): imported only when a cpo / simpo run builds its trainer.

TRL tokenizes ``prompt`` / ``chosen`` / ``rejected`` text in ``__init__`` (``tokenize_row``). ft-core's rows are
already ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` rendered by the run's chat template; ``tokenize_row``
leaves them as they are and :class:`PairCollator` builds the padded batch TRL's loss reads. Nothing else changes:
CPO's behaviour-cloning term (``cpo_alpha``) already covers the chosen answers only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

with warnings.catch_warnings():  # the stages say they are built on TRL's experimental trainer (README, docs)
    warnings.filterwarnings("ignore", message=".*trl.experimental")
    from trl.experimental.cpo import CPOConfig, CPOTrainer

__all__ = ["CPOConfig", "FtCpoTrainer", "PairCollator"]

#: The columns of ft-core's pre-tokenized preference rows.
TOKENIZED_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
IGNORE_INDEX = -100


@dataclass
class PairCollator:
    """Pads ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` rows into the batch TRL's CPO and ORPO trainers read:
    ``chosen_input_ids`` / ``chosen_attention_mask`` / ``chosen_labels`` (the prompt masked with -100), the same for
    ``rejected_*``, and the left-padded ``prompt_input_ids`` / ``prompt_attention_mask`` (what TRL's own tokenizer
    step and ``DPODataCollatorWithPadding`` produce)."""

    pad_token_id: int

    def features(self, row: dict[str, Any]) -> dict[str, list[int]]:
        prompt = list(row["prompt_ids"])
        feature: dict[str, list[int]] = {
            "prompt_input_ids": prompt,
            "prompt_attention_mask": [1] * len(prompt),
        }
        for side in ("chosen", "rejected"):
            answer = list(row[f"{side}_ids"])
            feature[f"{side}_input_ids"] = prompt + answer
            feature[f"{side}_attention_mask"] = [1] * (len(prompt) + len(answer))
            feature[f"{side}_labels"] = [IGNORE_INDEX] * len(prompt) + answer
        return feature

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        from trl.experimental.utils import DPODataCollatorWithPadding

        padder = DPODataCollatorWithPadding(pad_token_id=self.pad_token_id)
        return padder([self.features(row) for row in rows])


def is_tokenized_row(feature: dict[str, Any]) -> bool:
    """Whether a dataset row is one of ft-core's pre-tokenized preference rows."""
    return all(column in feature for column in TOKENIZED_COLUMNS)


class FtCpoTrainer(CPOTrainer):
    """``CPOTrainer`` that accepts pre-tokenized rows."""

    def tokenize_row(self, feature: dict[str, Any], model: Any = None) -> dict[str, Any]:
        if is_tokenized_row(feature):
            return {}  # PairCollator builds the batch from the rows as they are
        return dict(super().tokenize_row(feature, model))
