"""The ``cpo`` and ``simpo`` stages: reference-free preference optimization on chosen / rejected answer pairs with
TRL's experimental ``CPOTrainer`` (Contrastive Preference Optimization; SimPO is its ``loss_type="simpo"`` with the
behaviour-cloning term off, as TRL documents it).

Import-light: this module imports only the standard library and ``ft_core.api``; TRL and torch are imported inside
the methods that train (``ft_core_cpo.trainer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar, get_args

from ft_core.api import DataKind, Encoder, OptionsError, RunConfig, RunContext, TrainingStage, did_you_mean
from ft_core.api.preference import preference_rows
from ft_core_cpo.compat import trl_problem

#: CPOTrainer's pairwise losses offered by the ``cpo`` stage (``simpo`` is its own stage).
CpoLossType = Literal["sigmoid", "hinge", "ipo"]
CPO_LOSS_TYPES: tuple[str, ...] = get_args(CpoLossType)


def _check_common(beta: float, label_smoothing: float, max_prompt_len: int | None) -> None:
    if not beta > 0:
        raise OptionsError(f"beta must be > 0, got {beta}")
    if not 0 <= label_smoothing < 0.5:
        raise OptionsError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    if max_prompt_len is not None and max_prompt_len < 1:
        raise OptionsError(f"max_prompt_len must be >= 1 or null, got {max_prompt_len}")


@dataclass(frozen=True)
class CpoOptions:
    """Options of ``stage.name: cpo``."""

    #: Temperature of the preference loss (CPO's beta; tau for ``ipo``).
    beta: float = 0.1
    #: ``sigmoid`` (CPO), ``hinge`` (SLiC) or ``ipo`` (length-normalised), as TRL's CPOTrainer computes them.
    loss_type: CpoLossType = "sigmoid"
    #: Weight of CPO's behaviour-cloning term: the negative log-likelihood of the chosen answers' tokens.
    cpo_alpha: float = 1.0
    #: Probability that a pair's label is flipped (conservative loss), in [0, 0.5); ``sigmoid`` only.
    label_smoothing: float = 0.0
    #: Longest prompt in tokens: longer prompts lose their *first* tokens (a leading BOS is kept) before the pair
    #: is fitted into ``data.cutoff_len``; ``null`` = only ``data.cutoff_len`` limits it.
    max_prompt_len: int | None = None

    def __post_init__(self) -> None:
        if self.loss_type not in CPO_LOSS_TYPES:
            hint = " Use stage.name: simpo for SimPO." if self.loss_type == "simpo" else ""
            raise OptionsError(
                f"loss_type: unknown loss {self.loss_type!r}; one of {', '.join(CPO_LOSS_TYPES)}."
                f"{hint or did_you_mean(self.loss_type, CPO_LOSS_TYPES)}"
            )
        _check_common(self.beta, self.label_smoothing, self.max_prompt_len)
        if not self.cpo_alpha >= 0:
            raise OptionsError(
                f"cpo_alpha must be >= 0 (0 turns the behaviour-cloning term off), got {self.cpo_alpha}"
            )
        if self.label_smoothing and self.loss_type != "sigmoid":
            raise OptionsError(
                f"label_smoothing ({self.label_smoothing}) has no effect with loss_type {self.loss_type}: only "
                "sigmoid uses it; set label_smoothing: 0"
            )

    def trl_arguments(self) -> dict[str, Any]:
        """The ``CPOConfig`` fields these options set."""
        return {
            "loss_type": self.loss_type,
            "beta": self.beta,
            "cpo_alpha": self.cpo_alpha,
            "label_smoothing": self.label_smoothing,
            "max_length": None,  # rows are cut to data.cutoff_len in preprocess()
        }


@dataclass(frozen=True)
class SimpoOptions:
    """Options of ``stage.name: simpo`` (LLaMA-Factory: ``stage: dpo`` with ``pref_loss: simpo``, ``pref_beta``,
    ``simpo_gamma``, ``pref_ftx``)."""

    #: Scale of the reward, beta times the answer's *average* token log-probability (SimPO's beta; the paper uses
    #: 2.0 to 2.5). LLaMA-Factory: ``pref_beta`` (default 0.1 there).
    beta: float = 2.0
    #: Target reward margin between chosen and rejected answers (SimPO's gamma; the paper uses gamma / beta around
    #: 0.5). LLaMA-Factory: ``simpo_gamma`` (default 0.5 there).
    simpo_gamma: float = 1.0
    #: Weight of an extra supervised loss (NLL of the chosen answers' tokens), TRL's ``cpo_alpha``; 0 is plain
    #: SimPO. LLaMA-Factory: ``pref_ftx``.
    ftx: float = 0.0
    #: Probability that a pair's label is flipped (conservative loss), in [0, 0.5).
    label_smoothing: float = 0.0
    #: Longest prompt in tokens: longer prompts lose their *first* tokens (a leading BOS is kept) before the pair
    #: is fitted into ``data.cutoff_len``; ``null`` = only ``data.cutoff_len`` limits it.
    max_prompt_len: int | None = None

    def __post_init__(self) -> None:
        _check_common(self.beta, self.label_smoothing, self.max_prompt_len)
        if not self.simpo_gamma >= 0:
            raise OptionsError(f"simpo_gamma must be >= 0, got {self.simpo_gamma}")
        if not self.ftx >= 0:
            raise OptionsError(f"ftx must be >= 0 (0 turns the SFT term off), got {self.ftx}")

    def trl_arguments(self) -> dict[str, Any]:
        """The ``CPOConfig`` fields these options set: TRL's SimPO recipe (``loss_type="simpo"``, ``cpo_alpha=0``
        unless ``ftx`` adds the supervised term)."""
        return {
            "loss_type": "simpo",
            "beta": self.beta,
            "simpo_gamma": self.simpo_gamma,
            "cpo_alpha": self.ftx,
            "label_smoothing": self.label_smoothing,
            "max_length": None,  # rows are cut to data.cutoff_len in preprocess()
        }


OptionsT = TypeVar("OptionsT", CpoOptions, SimpoOptions)


class _CpoTrainerStage(TrainingStage[OptionsT], Generic[OptionsT]):
    """What ``cpo`` and ``simpo`` share: preference rows as the dpo stage makes them, no reference model, TRL's
    experimental CPOTrainer."""

    data_kind: ClassVar[DataKind] = "preference"
    sequences_per_row: ClassVar[int] = 2  # chosen and rejected, side by side
    #: ``data.packing``: TRL's padded chosen / rejected batch runs padding-free; the engine restores the padded
    #: logits TRL's loss reads.
    packs_padded_batches: ClassVar[bool] = True
    model_roles: ClassVar[tuple[str, ...]] = ("policy",)
    stage_name: ClassVar[str] = ""

    def validate(self, options: OptionsT, config: RunConfig) -> list[str]:
        problems = []
        problem = trl_problem(self.stage_name)
        if problem:
            problems.append(f"stage.name: {problem}")
        cutoff_len = config.data.cutoff_len
        if options.max_prompt_len is not None and options.max_prompt_len >= cutoff_len:
            problems.append(
                f"stage.max_prompt_len: {options.max_prompt_len} leaves no room for the answers within "
                f"data.cutoff_len ({cutoff_len}); make it smaller than data.cutoff_len or null"
            )
        return problems

    def preprocess(self, samples: list[Any], encoder: Encoder, options: OptionsT) -> list[dict[str, Any]]:
        return preference_rows(samples, encoder, self.stage_name, options.max_prompt_len)

    def arguments_class(self) -> type:
        from ft_core_cpo.trainer import CPOConfig

        return CPOConfig

    def collator(self, run: RunContext) -> Any:
        from ft_core_cpo.trainer import PairCollator

        return PairCollator(pad_token_id=run.tokenizer.pad_token_id)

    def build_trainer(self, run: RunContext, train_dataset: Any, eval_dataset: Any) -> Any:
        from ft_core_cpo.trainer import FtCpoTrainer

        options: OptionsT = run.config.stage.options
        arguments = options.trl_arguments()
        run.record(
            f"{self.stage_name}.trl_loss",
            {k: arguments[k] for k in ("loss_type", "cpo_alpha")},
            "stage options",
        )
        return run.build_trainer(
            model=run.load_model("policy"),
            args=run.training_arguments(self.arguments_class(), **arguments),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=self.collator(run),
            trainer_class=FtCpoTrainer,
        )


class CpoStage(_CpoTrainerStage[CpoOptions]):
    """Contrastive Preference Optimization with TRL's ``trl.experimental.cpo.CPOTrainer``: no reference model."""

    stage_name: ClassVar[str] = "cpo"
    options_schema: ClassVar[type] = CpoOptions
    description: ClassVar[str] = (
        "Contrastive Preference Optimization, reference-free (TRL experimental CPOTrainer)"
    )


class SimpoStage(_CpoTrainerStage[SimpoOptions]):
    """SimPO (length-normalised reward with a target margin) with TRL's CPOTrainer: no reference model."""

    stage_name: ClassVar[str] = "simpo"
    options_schema: ClassVar[type] = SimpoOptions
    description: ClassVar[str] = (
        "SimPO: simple reference-free preference optimization (TRL experimental CPOTrainer)"
    )
