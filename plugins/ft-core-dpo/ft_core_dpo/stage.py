"""The ``dpo`` stage: Direct Preference Optimization on chosen / rejected answer pairs, with TRL's DPOTrainer.

Import-light: this module imports only the standard library and ``ft_core.api``; TRL, torch and PEFT are imported
inside the methods that train (``ft_core_dpo.trainer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

from ft_core.api import (
    Conversation,
    DataError,
    DataKind,
    Encoder,
    Message,
    OptionsError,
    RunConfig,
    RunContext,
    TrainingStage,
    did_you_mean,
)

#: TRL's pairwise preference losses offered by ``loss_type`` (TRL's ``sft`` is ``ftx``, not a loss type here).
LossType = Literal[
    "sigmoid",
    "hinge",
    "ipo",
    "robust",
    "exo_pair",
    "nca_pair",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sigmoid_norm",
]
LOSS_TYPES: tuple[str, ...] = get_args(LossType)
#: The loss types whose formula uses ``label_smoothing`` (TRL 1.x); every other one ignores it.
SMOOTHED_LOSS_TYPES: tuple[str, ...] = ("robust", "exo_pair", "aot", "aot_unpaired")


@dataclass(frozen=True)
class DpoOptions:
    """Options of ``stage.name: dpo`` (LLaMA-Factory: ``pref_beta``, ``pref_loss``, ``dpo_label_smoothing``,
    ``pref_ftx``)."""

    #: Strength of the pull towards the reference model (the beta of the DPO paper; tau for ``ipo``): higher
    #: keeps the policy closer to the reference.
    beta: float = 0.1
    #: Preference loss: ``sigmoid`` (DPO), ``hinge`` (SLiC), ``ipo``, ``robust`` (rDPO), ``exo_pair``,
    #: ``nca_pair``, ``bco_pair``, ``sppo_hard``, ``aot``, ``aot_unpaired``, ``apo_zero``, ``apo_down``,
    #: ``discopop``, ``sigmoid_norm`` (length-normalised DPO), as TRL's DPOTrainer implements them.
    loss_type: LossType = "sigmoid"
    #: Probability that a pair's label is flipped: used by ``robust`` (in [0, 0.5)), ``exo_pair`` (in (0, 1),
    #: paper: 1e-3), ``aot`` and ``aot_unpaired``; an error with the other loss types, which ignore it.
    label_smoothing: float = 0.0
    #: Weight of an extra supervised (negative log-likelihood) loss on the chosen answers, added to the
    #: preference loss (LLaMA-Factory's ``pref_ftx``, RPO); 0 turns it off.
    ftx: float = 0.0
    #: Longest prompt in tokens: longer prompts lose their *first* tokens (a leading BOS is kept) before the pair
    #: is fitted into ``data.cutoff_len``; ``null`` = only ``data.cutoff_len`` limits it.
    max_prompt_len: int | None = None

    def __post_init__(self) -> None:
        if self.loss_type not in LOSS_TYPES:
            hint = (
                " Use ftx for an SFT term."
                if self.loss_type == "sft"
                else did_you_mean(self.loss_type, LOSS_TYPES)
            )
            raise OptionsError(
                f"loss_type: unknown loss {self.loss_type!r}; one of {', '.join(LOSS_TYPES)}.{hint}"
            )
        if not self.beta > 0:
            raise OptionsError(f"beta must be > 0, got {self.beta}")
        if not self.ftx >= 0:
            raise OptionsError(f"ftx must be >= 0 (0 turns the SFT term off), got {self.ftx}")
        if self.max_prompt_len is not None and self.max_prompt_len < 1:
            raise OptionsError(f"max_prompt_len must be >= 1 or null, got {self.max_prompt_len}")
        smoothing = self.label_smoothing
        if self.loss_type in ("robust", "aot", "aot_unpaired") and not 0 <= smoothing < 0.5:
            raise OptionsError(
                f"label_smoothing must be in [0, 0.5) for loss_type {self.loss_type}, got {smoothing}"
            )
        if self.loss_type == "exo_pair" and not 0 < smoothing < 1:
            raise OptionsError(
                f"loss_type exo_pair needs label_smoothing in (0, 1) (the paper uses 1e-3), got {smoothing}"
            )
        if smoothing != 0 and self.loss_type not in SMOOTHED_LOSS_TYPES:
            raise OptionsError(
                f"label_smoothing ({smoothing}) has no effect with loss_type {self.loss_type}: it is used by "
                f"{', '.join(SMOOTHED_LOSS_TYPES)} only. For conservative / robust DPO use loss_type: robust, "
                "or set label_smoothing: 0."
            )

    def trl_arguments(self) -> dict[str, Any]:
        """The ``trl.DPOConfig`` fields these options set."""
        loss_types, weights = [self.loss_type], [1.0]
        if self.ftx > 0:
            loss_types.append("sft")
            weights.append(self.ftx)
        return {
            "beta": self.beta,
            "loss_type": loss_types,
            "loss_weights": weights,
            "label_smoothing": self.label_smoothing,
            # Rows are cut to data.cutoff_len in preprocess(); the collator must not cut again.
            "max_length": None,
            "precompute_ref_log_probs": False,
        }


def fit_lengths(source_len: int, target_len: int, cutoff_len: int) -> tuple[int, int]:
    """How many prompt and answer tokens to keep so that ``prompt + answer <= cutoff_len`` (LLaMA-Factory's
    ``infer_seqlen``): a short answer is kept whole and the prompt cut; else a short prompt is kept whole and the
    answer cut; else both are cut in proportion to their lengths."""
    if target_len * 2 < cutoff_len:
        max_target_len = cutoff_len
    elif source_len * 2 < cutoff_len:
        max_target_len = cutoff_len - source_len
    else:
        max_target_len = int(cutoff_len * (target_len / (source_len + target_len)))
    new_target_len = min(max_target_len, target_len)
    new_source_len = min(max(cutoff_len - new_target_len, 0), source_len)
    return new_source_len, new_target_len


def keep_prompt_end(prompt_ids: list[int], length: int, bos_token_id: int | None) -> list[int]:
    """The last ``length`` tokens of the prompt (the question and the generation prompt), with a leading BOS
    kept in front when the prompt starts with one."""
    if len(prompt_ids) <= length:
        return list(prompt_ids)
    if length > 1 and bos_token_id is not None and prompt_ids[0] == bos_token_id:
        return [prompt_ids[0], *prompt_ids[len(prompt_ids) - length + 1 :]]
    return list(prompt_ids[len(prompt_ids) - length :])


def fit_pair(
    prompt_ids: list[int],
    chosen_ids: list[int],
    rejected_ids: list[int],
    cutoff_len: int,
    max_prompt_len: int | None = None,
    bos_token_id: int | None = None,
) -> tuple[list[int], list[int], list[int]]:
    """Cut a preference pair so that prompt + either answer fits ``cutoff_len``: the prompt keeps its end
    (:func:`keep_prompt_end`), the answers keep their start; both answers get the same budget."""
    if max_prompt_len is not None:
        prompt_ids = keep_prompt_end(prompt_ids, max_prompt_len, bos_token_id)
    source_len, target_len = fit_lengths(len(prompt_ids), max(len(chosen_ids), len(rejected_ids)), cutoff_len)
    return (
        keep_prompt_end(prompt_ids, source_len, bos_token_id) if source_len else [],
        list(chosen_ids[:target_len]),
        list(rejected_ids[:target_len]),
    )


class DpoStage(TrainingStage[DpoOptions]):
    """Direct Preference Optimization with TRL's ``DPOTrainer``.

    Rows are ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` rendered by the run's chat template (TRL's
    pre-tokenized preference form). The reference model is the policy with its adapter disabled when the
    adapter is LoRA-like (no second model in memory), else a frozen copy of the base model.
    """

    data_kind: ClassVar[DataKind] = "preference"
    model_roles: ClassVar[tuple[str, ...]] = ("policy", "reference")
    options_schema: ClassVar[type] = DpoOptions
    description: ClassVar[str] = "Direct Preference Optimization on chosen / rejected pairs (TRL DPOTrainer)"
    #: ``data.packing``: TRL's padded chosen / rejected batches run padding-free (TRL 1.16 turned its own
    #: ``padding_free`` off); the engine restores the padded outputs TRL's loss reads.
    packs_padded_batches: ClassVar[bool] = True

    def validate(self, options: DpoOptions, config: RunConfig) -> list[str]:
        problems = []
        cutoff_len = config.data.cutoff_len
        if options.max_prompt_len is not None and options.max_prompt_len >= cutoff_len:
            problems.append(
                f"stage.max_prompt_len: {options.max_prompt_len} leaves no room for the answers within "
                f"data.cutoff_len ({cutoff_len}); make it smaller than data.cutoff_len or null"
            )
        return problems

    def preprocess(self, samples: list[Any], encoder: Encoder, options: DpoOptions) -> list[dict[str, Any]]:
        bos_token_id = getattr(encoder.tokenizer, "bos_token_id", None)
        rows = []
        for conversation in samples:
            prompt_ids, chosen_ids, rejected_ids = encode_pair(conversation, encoder)
            prompt_ids, chosen_ids, rejected_ids = fit_pair(
                prompt_ids, chosen_ids, rejected_ids, encoder.cutoff_len, options.max_prompt_len, bos_token_id
            )
            if not chosen_ids or not rejected_ids or chosen_ids == rejected_ids:
                continue  # no preference left to learn (identical answers, or nothing survives the cut)
            rows.append({"prompt_ids": prompt_ids, "chosen_ids": chosen_ids, "rejected_ids": rejected_ids})
        return rows

    def arguments_class(self) -> type:
        from trl import DPOConfig

        return DPOConfig

    def collator(self, run: RunContext) -> Any:
        from trl.trainer.dpo_trainer import DataCollatorForPreference

        return DataCollatorForPreference(pad_token_id=run.tokenizer.pad_token_id)

    def build_trainer(self, run: RunContext, train_dataset: Any, eval_dataset: Any) -> Any:
        from ft_core_dpo.trainer import FtDpoTrainer, is_adapter_model

        options: DpoOptions = run.config.stage.options
        policy = run.load_model("policy")
        # LoRA-like adapters: the reference is the policy with its adapter disabled (TRL's ref_model=None path).
        reference = None if is_adapter_model(policy) else run.load_model("reference", trainable=False)
        return run.build_trainer(
            model=policy,
            args=run.training_arguments(self.arguments_class(), **options.trl_arguments()),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=self.collator(run),
            trainer_class=FtDpoTrainer,
            ref_model=reference,
        )


def encode_pair(conversation: Conversation, encoder: Encoder) -> tuple[list[int], list[int], list[int]]:
    """``(prompt_ids, chosen_ids, rejected_ids)`` of a preference sample, exactly as the chat template renders
    them (untruncated)."""
    rejected = conversation.extra.get("rejected")
    where = conversation.source or "a preference sample"
    if not isinstance(rejected, Message):
        raise DataError(
            f"{where}: no rejected answer; the dpo stage needs preference data (ranking: true with chosen / "
            "rejected columns in dataset_info.json)"
        )
    prompt_ids, chosen_ids = encoder.encode_completion(conversation)
    rejected_prompt_ids, rejected_ids = encoder.encode_completion(conversation, rejected)
    if rejected_prompt_ids != prompt_ids:  # the prompt is the same messages; anything else is an encoder bug
        raise DataError(f"{where}: the prompt encodes differently before the chosen and the rejected answer")
    return list(prompt_ids), list(chosen_ids), list(rejected_ids)
