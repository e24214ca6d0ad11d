"""The ``orpo`` stage: Odds Ratio Preference Optimization (reference-free) on chosen / rejected answer pairs, with
TRL's experimental ``ORPOTrainer``.

Import-light: this module imports only the standard library and ``ft_core.api``; TRL and torch are imported inside
the methods that train (``ft_core_orpo.trainer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.api import DataKind, Encoder, OptionsError, RunConfig, RunContext, TrainingStage
from ft_core.api.preference import preference_rows
from ft_core_orpo.compat import trl_problem


@dataclass(frozen=True)
class OrpoOptions:
    """Options of ``stage.name: orpo`` (LLaMA-Factory: ``stage: dpo`` with ``pref_loss: orpo``, ``pref_beta``)."""

    #: Weight of the odds-ratio term against the supervised (NLL) term on the chosen answers (ORPO's lambda).
    #: LLaMA-Factory: ``pref_beta``.
    beta: float = 0.1
    #: Longest prompt in tokens: longer prompts lose their *first* tokens (a leading BOS is kept) before the pair
    #: is fitted into ``data.cutoff_len``; ``null`` = only ``data.cutoff_len`` limits it.
    max_prompt_len: int | None = None

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise OptionsError(f"beta must be > 0, got {self.beta}")
        if self.max_prompt_len is not None and self.max_prompt_len < 1:
            raise OptionsError(f"max_prompt_len must be >= 1 or null, got {self.max_prompt_len}")

    def trl_arguments(self) -> dict[str, Any]:
        """The ``ORPOConfig`` fields these options set."""
        # Rows are cut to data.cutoff_len in preprocess(); TRL's tokenizer step does not run on them.
        return {"beta": self.beta, "max_length": None}


class OrpoStage(TrainingStage[OrpoOptions]):
    """ORPO with TRL's ``trl.experimental.orpo.ORPOTrainer``: no reference model.

    Rows are ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` rendered by the run's chat template, as the dpo
    stage makes them.
    """

    data_kind: ClassVar[DataKind] = "preference"
    sequences_per_row: ClassVar[int] = 2  # chosen and rejected, side by side
    #: ``data.packing``: TRL's padded chosen / rejected batch runs padding-free; the engine restores the padded
    #: logits TRL's loss reads.
    packs_padded_batches: ClassVar[bool] = True
    model_roles: ClassVar[tuple[str, ...]] = ("policy",)
    options_schema: ClassVar[type] = OrpoOptions
    description: ClassVar[str] = (
        "Odds Ratio Preference Optimization, reference-free (TRL experimental ORPOTrainer)"
    )

    def validate(self, options: OrpoOptions, config: RunConfig) -> list[str]:
        problems = []
        problem = trl_problem("orpo")
        if problem:
            problems.append(f"stage.name: {problem}")
        cutoff_len = config.data.cutoff_len
        if options.max_prompt_len is not None and options.max_prompt_len >= cutoff_len:
            problems.append(
                f"stage.max_prompt_len: {options.max_prompt_len} leaves no room for the answers within "
                f"data.cutoff_len ({cutoff_len}); make it smaller than data.cutoff_len or null"
            )
        return problems

    def preprocess(self, samples: list[Any], encoder: Encoder, options: OrpoOptions) -> list[dict[str, Any]]:
        return preference_rows(samples, encoder, "orpo", options.max_prompt_len)

    def arguments_class(self) -> type:
        from ft_core_orpo.trainer import ORPOConfig

        return ORPOConfig

    def collator(self, run: RunContext) -> Any:
        from ft_core_orpo.trainer import PairCollator

        return PairCollator(pad_token_id=run.tokenizer.pad_token_id)

    def build_trainer(self, run: RunContext, train_dataset: Any, eval_dataset: Any) -> Any:
        from ft_core_orpo.trainer import FtOrpoTrainer

        options: OrpoOptions = run.config.stage.options
        run.record(
            "orpo.nll_tokens",
            "chosen answer tokens",
            "ORPO's supervised term as in its paper and LLaMA-Factory (TRL 1.16 averages over the prompt too)",
        )
        return run.build_trainer(
            model=run.load_model("policy"),
            args=run.training_arguments(self.arguments_class(), **options.trl_arguments()),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=self.collator(run),
            trainer_class=FtOrpoTrainer,
        )
