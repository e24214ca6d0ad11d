"""The ``dpo`` stage: Direct Preference Optimization on chosen / rejected answer pairs, with TRL's DPOTrainer.

Import-light: this module imports only the standard library and ``ft_core.api``; TRL, torch and PEFT are imported
inside the methods that train (``ft_core_dpo.trainer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

from ft_core.api import (
    DataKind,
    Encoder,
    OptionsError,
    RunConfig,
    RunContext,
    TrainingStage,
    did_you_mean,
)
from ft_core.api.preference import preference_rows

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
#: The loss types whose formula uses ``label_smoothing``: TRL 1.x's, and ``sigmoid`` (conservative DPO, which
#: ft-core's trainer adds: :mod:`ft_core_dpo.trainer`); every other one ignores it.
SMOOTHED_LOSS_TYPES: tuple[str, ...] = ("sigmoid", "robust", "exo_pair", "aot", "aot_unpaired")


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
    #: Probability that a pair's label is flipped: with ``sigmoid`` conservative DPO (cDPO, LLaMA-Factory's
    #: ``dpo_label_smoothing``: ``-(1-e) log s(b d) - e log s(-b d)``, in [0, 0.5)), ``robust`` (rDPO, an unbiased
    #: estimate instead: in [0, 0.5)), ``exo_pair`` (in (0, 1), paper: 1e-3), ``aot`` and ``aot_unpaired``; an
    #: error with the other loss types, which ignore it.
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
        if self.loss_type in ("sigmoid", "robust", "aot", "aot_unpaired") and not 0 <= smoothing < 0.5:
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
                f"{', '.join(SMOOTHED_LOSS_TYPES)} only (conservative DPO: loss_type sigmoid; robust DPO: loss_type "
                "robust), or set label_smoothing: 0."
            )

    def trl_arguments(self) -> dict[str, Any]:
        """The ``trl.DPOConfig`` fields these options set."""
        loss_types: list[str] = [self.loss_type]
        weights = [1.0]
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


class DpoStage(TrainingStage[DpoOptions]):
    """Direct Preference Optimization with TRL's ``DPOTrainer``.

    Rows are ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` rendered by the run's chat template (TRL's
    pre-tokenized preference form). The reference model is the policy with its adapter disabled when the
    adapter is LoRA-like (no second model in memory), else a frozen copy of the base model.
    """

    data_kind: ClassVar[DataKind] = "preference"
    sequences_per_row: ClassVar[int] = 2  # chosen and rejected, side by side
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
        return preference_rows(samples, encoder, "dpo", options.max_prompt_len)

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
