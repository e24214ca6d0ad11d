"""The ``kto`` stage: Kahneman-Tversky Optimization on unpaired answers labelled desirable or undesirable, with
TRL's ``KTOTrainer``.

Import-light: this module imports only the standard library and ``ft_core.api``; TRL, torch and PEFT are imported
inside the methods that train (``ft_core_kto.trainer``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

from ft_core.api import (
    Conversation,
    DataError,
    DataKind,
    Encoder,
    ModelRole,
    OptionsError,
    RunConfig,
    RunContext,
    TrainingStage,
    did_you_mean,
)
from ft_core.api.preference import fit_lengths, keep_prompt_end
from ft_core_kto.compat import trl_problem

logger = logging.getLogger(__name__)

#: TRL's unpaired losses: ``kto`` (the KTO paper, with the KL estimate) and ``apo_zero_unpaired`` (APO-zero, no KL).
LossType = Literal["kto", "apo_zero_unpaired"]
LOSS_TYPES: tuple[str, ...] = get_args(LossType)


@dataclass(frozen=True)
class KtoOptions:
    """Options of ``stage.name: kto`` (LLaMA-Factory: ``pref_beta``, ``kto_chosen_weight``,
    ``kto_rejected_weight``)."""

    #: Strength of the pull towards the reference model (KTO's beta): higher keeps the policy closer to it.
    beta: float = 0.1
    #: Weight of the loss of desirable answers (``kto_tag: true``). LLaMA-Factory: ``kto_chosen_weight``.
    desirable_weight: float = 1.0
    #: Weight of the loss of undesirable answers (``kto_tag: false``). LLaMA-Factory: ``kto_rejected_weight``.
    undesirable_weight: float = 1.0
    #: ``kto`` (the paper's loss, with the batch's KL estimate as reference point) or ``apo_zero_unpaired``.
    loss_type: LossType = "kto"
    #: Longest prompt in tokens: longer prompts lose their *first* tokens (a leading BOS is kept) before the row
    #: is fitted into ``data.cutoff_len``; ``null`` = only ``data.cutoff_len`` limits it.
    max_prompt_len: int | None = None

    def __post_init__(self) -> None:
        if self.loss_type not in LOSS_TYPES:
            raise OptionsError(
                f"loss_type: unknown loss {self.loss_type!r}; one of {', '.join(LOSS_TYPES)}."
                f"{did_you_mean(self.loss_type, LOSS_TYPES)}"
            )
        if not self.beta > 0:
            raise OptionsError(f"beta must be > 0, got {self.beta}")
        for name in ("desirable_weight", "undesirable_weight"):
            if not getattr(self, name) > 0:
                raise OptionsError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_prompt_len is not None and self.max_prompt_len < 1:
            raise OptionsError(f"max_prompt_len must be >= 1 or null, got {self.max_prompt_len}")

    @property
    def uses_kl(self) -> bool:
        """Whether the loss estimates the KL term from mismatched prompt / answer pairs of the batch."""
        return self.loss_type == "kto"

    def trl_arguments(self) -> dict[str, Any]:
        """The ``trl.KTOConfig`` fields these options set."""
        return {
            "beta": self.beta,
            "desirable_weight": self.desirable_weight,
            "undesirable_weight": self.undesirable_weight,
            "loss_type": self.loss_type,
            # Rows are cut to data.cutoff_len in preprocess(); the collator cuts the KL sequences to it.
            "max_length": None,
            "precompute_ref_log_probs": False,
            # TRL pairs each row's prompt with its batch neighbour's answer for the KL estimate, so the batches must
            # be the dataset's consecutive rows (ft-core shuffles the rows once, with training.seed, instead).
            "train_sampling_strategy": "sequential",
        }


def fit_row(
    prompt_ids: list[int],
    completion_ids: list[int],
    cutoff_len: int,
    max_prompt_len: int | None = None,
    bos_token_id: int | None = None,
) -> tuple[list[int], list[int]]:
    """Cut a prompt and its answer so that both fit ``cutoff_len``: the prompt keeps its end, the answer its start."""
    if max_prompt_len is not None:
        prompt_ids = keep_prompt_end(prompt_ids, max_prompt_len, bos_token_id)
    source_len, target_len = fit_lengths(len(prompt_ids), len(completion_ids), cutoff_len)
    prompt = keep_prompt_end(prompt_ids, source_len, bos_token_id) if source_len else []
    return prompt, list(completion_ids[:target_len])


def kto_label(conversation: Conversation) -> bool:
    """The row's desirable (``True``) / undesirable (``False``) tag, or a DataError naming the row."""
    where = conversation.source or "a kto sample"
    if "kto_tag" not in conversation.extra:
        raise DataError(
            f"{where}: no kto_tag; the kto stage needs rows labelled desirable or undesirable (a boolean column "
            'named in dataset_info.json, e.g. "columns": {"kto_tag": "label"})'
        )
    tag = conversation.extra["kto_tag"]
    if not isinstance(tag, bool):
        raise DataError(f"{where}: kto_tag must be true or false, got {tag!r}")
    return tag


class KtoStage(TrainingStage[KtoOptions]):
    """Kahneman-Tversky Optimization with TRL's ``KTOTrainer``.

    Rows are ``prompt_ids`` / ``completion_ids`` rendered by the run's chat template and a boolean ``label``. The
    reference model is the policy with its adapter disabled when the adapter is LoRA-like (no second model in
    memory), else a frozen copy of the base model.
    """

    data_kind: ClassVar[DataKind] = "kto"
    model_roles: ClassVar[tuple[str, ...]] = ("policy", "reference")
    options_schema: ClassVar[type] = KtoOptions
    description: ClassVar[str] = (
        "Kahneman-Tversky Optimization on answers tagged desirable / undesirable (TRL)"
    )
    #: ``data.packing``: TRL's right-padded batches (the rows and their KL pairs, policy and reference passes) run
    #: padding-free; the engine restores the padded per-token outputs TRL's loss reads.
    packs_padded_batches: ClassVar[bool] = True

    def roles(self, options: KtoOptions) -> tuple[ModelRole, ...]:
        return (ModelRole("policy"), ModelRole("reference", trainable=False))

    def validate(self, options: KtoOptions, config: RunConfig) -> list[str]:
        problems = []
        problem = trl_problem("kto")
        if problem:
            problems.append(f"stage.name: {problem}")
        cutoff_len = config.data.cutoff_len
        if options.max_prompt_len is not None and options.max_prompt_len >= cutoff_len:
            problems.append(
                f"stage.max_prompt_len: {options.max_prompt_len} leaves no room for the answer within "
                f"data.cutoff_len ({cutoff_len}); make it smaller than data.cutoff_len or null"
            )
        batch_size = config.training.per_device_train_batch_size
        if options.uses_kl and batch_size < 2:
            problems.append(
                f"training.per_device_train_batch_size: the kto loss estimates its KL term from the other rows of "
                f"a batch, so it needs at least 2 rows per device (got {batch_size}); raise it, or use "
                "stage.loss_type: apo_zero_unpaired (no KL term)"
            )
        return problems

    def preprocess(self, samples: list[Any], encoder: Encoder, options: KtoOptions) -> list[dict[str, Any]]:
        bos_token_id = getattr(encoder.tokenizer, "bos_token_id", None)
        rows = []
        for conversation in samples:
            label = kto_label(conversation)
            prompt_ids, completion_ids = encoder.encode_completion(conversation)
            if not completion_ids:
                raise DataError(f"{conversation.source or 'a kto sample'}: empty answer")
            prompt_ids, completion_ids = fit_row(
                list(prompt_ids),
                list(completion_ids),
                encoder.cutoff_len,
                options.max_prompt_len,
                bos_token_id,
            )
            if not completion_ids:
                continue  # nothing of the answer survives the cut
            rows.append({"prompt_ids": prompt_ids, "completion_ids": completion_ids, "label": label})
        return rows

    def arguments_class(self) -> type:
        from trl import KTOConfig

        return KTOConfig

    def collator(self, run: RunContext) -> Any:
        from trl.trainer.kto_trainer import DataCollatorForUnpairedPreference

        # Cuts the KL sequences (a prompt with its neighbour's answer) to data.cutoff_len like the rows.
        return DataCollatorForUnpairedPreference(
            pad_token_id=run.tokenizer.pad_token_id, max_length=run.config.data.cutoff_len
        )

    def build_trainer(self, run: RunContext, train_dataset: Any, eval_dataset: Any) -> Any:
        from ft_core_kto.trainer import FtKtoTrainer, is_adapter_model, label_counts

        options: KtoOptions = run.config.stage.options
        desirable, undesirable = label_counts(train_dataset)
        run.record(
            "kto.labels", {"desirable": desirable, "undesirable": undesirable}, "rows of the training set"
        )
        if desirable == 0 or undesirable == 0:
            logger.warning(
                "kto: the training set has %d desirable and %d undesirable rows; KTO learns from both kinds",
                desirable,
                undesirable,
            )
        if options.uses_kl and hasattr(train_dataset, "shuffle"):
            # TRL reads the rows in order (its KL pairs are batch neighbours): shuffle them once, reproducibly.
            train_dataset = train_dataset.shuffle(seed=run.config.training.seed)
            run.record(
                "kto.row_order",
                f"shuffled once with seed {run.config.training.seed}, then read in order",
                "TRL's KTO loss pairs each prompt with its batch neighbour's answer for the KL estimate",
            )
        policy = run.load_model("policy")
        adapter = is_adapter_model(policy)
        # LoRA-like adapters: the reference is the policy with its adapter disabled (TRL's ref_model=None path).
        reference = None if adapter else run.load_model("reference", trainable=False)
        run.record(
            "kto.reference",
            "policy with the adapter disabled" if adapter else "frozen copy of the base model",
            "the policy trains through an adapter" if adapter else "the policy trains its own weights",
        )
        return run.build_trainer(
            model=policy,
            args=run.training_arguments(self.arguments_class(), **options.trl_arguments()),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=self.collator(run),
            trainer_class=FtKtoTrainer,
            ref_model=reference,
        )
