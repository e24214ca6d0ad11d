"""TRL's experimental ``ORPOTrainer`` fed with ft-core's pre-tokenized rows.

Heavy (imports TRL, torch): imported only when an orpo run builds its trainer.

Differences from ``trl.experimental.orpo.ORPOTrainer``:

* TRL tokenizes ``prompt`` / ``chosen`` / ``rejected`` text in ``__init__`` (``tokenize_row``). ft-core's rows are
  already ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` rendered by the run's chat template; ``tokenize_row``
  leaves them as they are and :class:`PairCollator` builds the padded batch TRL's loss reads.
* The supervised (NLL) term of ORPO's loss is computed on the chosen *answer* tokens, as LLaMA-Factory and ORPO's
  paper define it; TRL 1.16 averages it over the prompt tokens too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

with warnings.catch_warnings():  # the stage says it is built on TRL's experimental trainer (README, docs)
    warnings.filterwarnings("ignore", message=".*trl.experimental")
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

__all__ = ["FtOrpoTrainer", "ORPOConfig", "PairCollator", "answer_nll"]

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


def answer_nll(chosen_logits: torch.Tensor, chosen_labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the chosen answers' tokens: ``chosen_logits`` are the logits of positions
    ``0 .. L-2`` (TRL's ``all_logits[:n, :-1]``) and ``chosen_labels`` the labels (-100 off the answer), padded to any
    length up to ``L``."""
    length = chosen_logits.shape[1] + 1
    labels = chosen_labels[:, 1:length]
    if labels.shape[1] < length - 1:
        labels = torch.nn.functional.pad(labels, (0, length - 1 - labels.shape[1]), value=IGNORE_INDEX)
    return torch.nn.functional.cross_entropy(
        chosen_logits.reshape(-1, chosen_logits.shape[-1]).float(),
        labels.reshape(-1).to(chosen_logits.device),
        ignore_index=IGNORE_INDEX,
    )


class FtOrpoTrainer(ORPOTrainer):
    """``ORPOTrainer`` that accepts pre-tokenized rows and trains the NLL term on the chosen answers only."""

    def tokenize_row(self, feature: dict[str, Any], model: Any = None) -> dict[str, Any]:
        if is_tokenized_row(feature):
            return {}  # PairCollator builds the batch from the rows as they are
        return dict(super().tokenize_row(feature, model))

    def concatenated_forward(self, model: Any, batch: dict[str, Any]) -> tuple[Any, ...]:
        outputs = super().concatenated_forward(model, batch)
        chosen_logits = outputs[2]
        nll = answer_nll(chosen_logits, batch["chosen_labels"])
        return (*outputs[:4], nll, *outputs[5:])
