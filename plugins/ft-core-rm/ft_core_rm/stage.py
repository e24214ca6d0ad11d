"""The ``rm`` stage: a pairwise reward model (one score per sequence) trained on chosen / rejected answers with
TRL's ``RewardTrainer`` (Bradley-Terry loss ``-log sigmoid(r_chosen - r_rejected)``).

Import-light: this module imports only the standard library and ``ft_core.api``; TRL and torch are imported inside
the methods that train.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.api import (
    Conversation,
    DataError,
    DataKind,
    Encoder,
    Message,
    ModelRole,
    OptionsError,
    RunConfig,
    RunContext,
    TrainingStage,
)
from ft_core.api.preference import keep_prompt_end
from ft_core_rm.compat import trl_problem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RmOptions:
    """Options of ``stage.name: rm``."""

    #: Weight of an extra loss ``mean((r_chosen + r_rejected)^2)`` that keeps the scores centred on zero
    #: (TRL's ``center_rewards_coefficient``; the RLHF literature uses 0.01); ``null`` = off.
    center_rewards_coefficient: float | None = None
    #: Longest prompt in tokens: longer prompts lose their *first* tokens (a leading BOS is kept) before each
    #: answer is fitted into ``data.cutoff_len``; ``null`` = only ``data.cutoff_len`` limits it.
    max_prompt_len: int | None = None

    def __post_init__(self) -> None:
        if self.center_rewards_coefficient is not None and self.center_rewards_coefficient < 0:
            raise OptionsError(
                f"center_rewards_coefficient must be >= 0 or null, got {self.center_rewards_coefficient}"
            )
        if self.max_prompt_len is not None and self.max_prompt_len < 1:
            raise OptionsError(f"max_prompt_len must be >= 1 or null, got {self.max_prompt_len}")

    def trl_arguments(self) -> dict[str, Any]:
        """The ``trl.RewardConfig`` fields these options set."""
        return {
            "center_rewards_coefficient": self.center_rewards_coefficient,
            # Rows are cut to data.cutoff_len in preprocess(); TRL would drop longer rows instead.
            "max_length": None,
        }


def fit_pair(
    prompt_ids: list[int],
    chosen_ids: list[int],
    rejected_ids: list[int],
    cutoff_len: int,
    max_prompt_len: int | None = None,
    bos_token_id: int | None = None,
) -> tuple[list[int], list[int]]:
    """``(chosen_sequence, rejected_sequence)``: the prompt followed by each answer, each at most ``cutoff_len``
    tokens. The prompt keeps its end and its leading BOS; it keeps at least half of ``cutoff_len`` when the
    longer answer needs more, and the answers then lose their last tokens (the score is read at the last token, so
    both sequences stay whole where they fit)."""
    if max_prompt_len is not None:
        prompt_ids = keep_prompt_end(prompt_ids, max_prompt_len, bos_token_id)
    longest = max(len(chosen_ids), len(rejected_ids))
    room = max(cutoff_len - longest, min(len(prompt_ids), cutoff_len // 2))
    prompt = keep_prompt_end(prompt_ids, room, bos_token_id)
    answer_room = cutoff_len - len(prompt)
    return prompt + list(chosen_ids[:answer_room]), prompt + list(rejected_ids[:answer_room])


def encode_pair(conversation: Conversation, encoder: Encoder) -> tuple[list[int], list[int], list[int]]:
    """``(prompt_ids, chosen_ids, rejected_ids)`` of a preference sample as the chat template renders them."""
    where = conversation.source or "a preference sample"
    rejected = conversation.extra.get("rejected")
    if not isinstance(rejected, Message):
        raise DataError(
            f"{where}: no rejected answer; the rm stage needs preference data (ranking: true with chosen / "
            "rejected columns in dataset_info.json)"
        )
    prompt_ids, chosen_ids = encoder.encode_completion(conversation)
    rejected_prompt_ids, rejected_ids = encoder.encode_completion(conversation, rejected)
    if list(rejected_prompt_ids) != list(prompt_ids):
        raise DataError(f"{where}: the prompt encodes differently before the chosen and the rejected answer")
    if not chosen_ids or not rejected_ids:
        raise DataError(f"{where}: empty {'chosen' if not chosen_ids else 'rejected'} answer")
    return list(prompt_ids), list(chosen_ids), list(rejected_ids)


class RmStage(TrainingStage[RmOptions]):
    """A pairwise reward model with TRL's ``RewardTrainer``.

    The policy role loads with a ``sequence_classification`` head (one score per sequence, read at its last
    non-padding token): LoRA then uses PEFT's ``SEQ_CLS`` task type (the ``score`` layer trains and is saved with
    the adapter), full and freeze tuning train the score layer with the model. Rows are ``chosen_ids`` /
    ``rejected_ids``: the prompt rendered by the run's chat template followed by each answer.
    """

    data_kind: ClassVar[DataKind] = "preference"
    sequences_per_row: ClassVar[int] = 2  # chosen and rejected, side by side
    model_roles: ClassVar[tuple[str, ...]] = ("policy",)
    options_schema: ClassVar[type] = RmOptions
    description: ClassVar[str] = "pairwise reward model: one score per answer, chosen above rejected (TRL)"

    def roles(self, options: RmOptions) -> tuple[ModelRole, ...]:
        return (ModelRole("policy", head="sequence_classification"),)

    def validate(self, options: RmOptions, config: RunConfig) -> list[str]:
        problems = []
        problem = trl_problem("rm")
        if problem:
            problems.append(f"stage.name: {problem}")
        cutoff_len = config.data.cutoff_len
        if options.max_prompt_len is not None and options.max_prompt_len >= cutoff_len:
            problems.append(
                f"stage.max_prompt_len: {options.max_prompt_len} leaves no room for the answers within "
                f"data.cutoff_len ({cutoff_len}); make it smaller than data.cutoff_len or null"
            )
        return problems

    def preprocess(self, samples: list[Any], encoder: Encoder, options: RmOptions) -> list[dict[str, Any]]:
        bos_token_id = getattr(encoder.tokenizer, "bos_token_id", None)
        rows = []
        for conversation in samples:
            prompt_ids, chosen_ids, rejected_ids = encode_pair(conversation, encoder)
            chosen, rejected = fit_pair(
                prompt_ids, chosen_ids, rejected_ids, encoder.cutoff_len, options.max_prompt_len, bos_token_id
            )
            if chosen == rejected:
                continue  # identical answers (or identical after the cut): nothing to rank
            rows.append({"chosen_ids": chosen, "rejected_ids": rejected})
        return rows

    def arguments_class(self) -> type:
        from trl import RewardConfig

        return RewardConfig

    def collator(self, run: RunContext) -> Any:
        from trl.trainer.reward_trainer import DataCollatorForPreference

        # Chosen sequences first, then rejected ones, right-padded: RewardTrainer splits the scores in halves.
        return DataCollatorForPreference(pad_token_id=run.tokenizer.pad_token_id)

    def next_steps(self, run_dir: str, options: RmOptions | None = None) -> list[str]:
        return [
            f"results in {run_dir}: a reward model (a sequence-classification head: one score per text; it does "
            "not chat)",
            f"score with it in Python: model, tokenizer = ft_core.bootstrap.load_trained_model({str(run_dir)!r}); "
            "scores = model(**tokenizer(texts, return_tensors='pt', padding=True)).logits[:, 0] "
            "(render each prompt + answer with the run's chat template first, as in training)",
            "the saved model loads with transformers' AutoModelForSequenceClassification (full / freeze), or "
            "peft's AutoPeftModelForSequenceClassification (LoRA)",
        ]

    def build_trainer(self, run: RunContext, train_dataset: Any, eval_dataset: Any) -> Any:
        from trl import RewardTrainer

        options: RmOptions = run.config.stage.options
        return run.build_trainer(
            model=run.load_model("policy"),
            args=run.training_arguments(self.arguments_class(), **options.trl_arguments()),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=self.collator(run),
            trainer_class=RewardTrainer,
        )
