"""The ``grpo`` stage: Group Relative Policy Optimization, online RL with TRL's ``GRPOTrainer``.

For each prompt the policy generates ``num_generations`` answers; reward functions score them (built-ins
``exact_match`` / ``format`` / ``length``, or Python callables named ``module:function``), and each answer's
advantage is its reward against its group's mean. Prompts come from ``prompt`` datasets: chat rows whose last
assistant turn is the reference answer that reward functions read as ``answer``.

Import-light: this module imports only the standard library and ``ft_core.api``; TRL and torch are imported inside
the methods that train.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
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
from ft_core.api.preference import keep_prompt_end
from ft_core.api.rewards import (
    BUILTIN_REWARDS,
    build_reward_functions,
    import_callable,
    reward_function_problems,
)
from ft_core_grpo.compat import trl_problem

logger = logging.getLogger(__name__)

#: TRL's GRPO loss aggregations offered here (``dapo``: TRL's default, token-level, no length bias).
LossType = Literal["dapo", "grpo", "dr_grpo", "bnpo"]
LOSS_TYPES: tuple[str, ...] = get_args(LossType)
ScaleRewards = Literal["group", "batch", "none"]
SCALE_REWARDS: tuple[str, ...] = get_args(ScaleRewards)


@dataclass(frozen=True)
class GrpoOptions:
    """Options of ``stage.name: grpo``."""

    #: The reward functions, summed (weighted by ``reward_weights``): built-ins ``exact_match`` (1 when the answer
    #: equals the row's reference answer, case and spacing aside), ``format`` (1 when the whole answer matches
    #: ``format_pattern``), ``length`` (1 at ``length_target`` characters), or a Python callable
    #: ``package.module:function`` called as ``f(prompts, completions, answer, **columns) -> list[float]``.
    reward_functions: list[str] = field(default_factory=lambda: ["exact_match"])
    #: One weight per reward function; ``null`` = all 1.
    reward_weights: list[float] | None = None
    #: The regular expression of the ``format`` reward (matched against the whole stripped answer, ``.`` matching
    #: newlines too).
    format_pattern: str = r"<answer>.*</answer>"
    #: The answer length in characters the ``length`` reward prefers.
    length_target: int = 100
    #: Answers generated per prompt (the group); at least 2. The per-device batch (in answers) times the gradient
    #: accumulation steps must be a multiple of it.
    num_generations: int = 4
    #: Longest generated answer in tokens.
    max_completion_length: int = 64
    #: Sampling temperature of the generations.
    temperature: float = 1.0
    #: Nucleus-sampling probability mass of the generations (1 = off).
    top_p: float = 1.0
    #: Weight of the KL penalty against the reference model (the adapter-disabled model with LoRA, else a frozen
    #: copy of the base model); 0 = no penalty and no reference model (TRL's default).
    beta: float = 0.0
    #: Clipping range of the policy ratio (PPO's epsilon).
    epsilon: float = 0.2
    #: How token losses are averaged: ``dapo`` (over the accumulated batch's tokens), ``grpo`` (per answer, then
    #: over answers), ``dr_grpo`` (by a constant), ``bnpo`` (over the local batch's tokens).
    loss_type: LossType = "dapo"
    #: Advantages divided by the reward standard deviation of the ``group``, of the ``batch``, or ``none``.
    scale_rewards: ScaleRewards = "group"

    def __post_init__(self) -> None:
        object.__setattr__(self, "reward_functions", list(self.reward_functions))
        if not self.reward_functions:
            raise OptionsError("reward_functions: name at least one reward function")
        for problem in reward_function_problems(
            "reward_functions", self.reward_functions, self.reward_weights, self.length_target
        ):
            raise OptionsError(problem)
        if self.num_generations < 2:
            raise OptionsError(
                f"num_generations must be >= 2 (advantages compare each answer with its group), got {self.num_generations}"
            )
        if self.max_completion_length < 1:
            raise OptionsError(f"max_completion_length must be >= 1, got {self.max_completion_length}")
        if not self.temperature > 0:
            raise OptionsError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise OptionsError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.beta < 0:
            raise OptionsError(f"beta must be >= 0, got {self.beta}")
        if not self.epsilon > 0:
            raise OptionsError(f"epsilon must be > 0, got {self.epsilon}")
        if self.loss_type not in LOSS_TYPES:
            raise OptionsError(
                f"loss_type: unknown loss {self.loss_type!r}; one of {', '.join(LOSS_TYPES)}."
                f"{did_you_mean(self.loss_type, LOSS_TYPES)}"
            )
        if self.scale_rewards not in SCALE_REWARDS:
            raise OptionsError(
                f"scale_rewards: {self.scale_rewards!r} is not one of {', '.join(SCALE_REWARDS)}"
            )

    def trl_arguments(self) -> dict[str, Any]:
        """The ``trl.GRPOConfig`` fields these options set."""
        return {
            "num_generations": self.num_generations,
            "max_completion_length": self.max_completion_length,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "beta": self.beta,
            "epsilon": self.epsilon,
            "loss_type": self.loss_type,
            "scale_rewards": self.scale_rewards,
            "reward_weights": self.reward_weights,
            # Reward functions read the answer column (and any other): keep every column.
            "remove_unused_columns": False,
        }


def split_prompt(conversation: Conversation) -> tuple[list[Any], str]:
    """``(prompt messages, reference answer)``: the conversation up to its last assistant turn, and that turn."""
    where = conversation.source or "a prompt sample"
    messages = list(conversation.messages)
    if not messages or messages[-1].role != "assistant":
        raise DataError(
            f"{where}: no answer; the grpo stage reads the last assistant turn as the reference answer"
        )
    if len(messages) < 2 or messages[-2].role not in ("user", "tool"):
        raise DataError(f"{where}: no prompt before the answer")
    return messages[:-1], messages[-1].content


class GrpoStage(TrainingStage[GrpoOptions]):
    """Group Relative Policy Optimization with TRL's ``GRPOTrainer``, on prompts rendered by the run's chat
    template (token for token: TRL's own tokenization of the prompts is replaced by the run's)."""

    data_kind: ClassVar[DataKind] = "prompt"
    model_roles: ClassVar[tuple[str, ...]] = ("policy", "reference")
    options_schema: ClassVar[type] = GrpoOptions
    description: ClassVar[str] = (
        "Group Relative Policy Optimization: online RL from reward functions, answers sampled in groups (TRL)"
    )

    def roles(self, options: GrpoOptions) -> tuple[ModelRole, ...]:
        return (ModelRole("policy"), ModelRole("reference", trainable=False))

    def validate(self, options: GrpoOptions, config: RunConfig) -> list[str]:
        problems = []
        problem = trl_problem("grpo")
        if problem:
            problems.append(f"stage.name: {problem}")
        cutoff_len = config.data.cutoff_len
        if options.max_completion_length >= cutoff_len:
            problems.append(
                f"stage.max_completion_length: {options.max_completion_length} leaves no room for the prompt "
                f"within data.cutoff_len ({cutoff_len}); prompts are cut to cutoff_len - max_completion_length"
            )
        training = config.training
        answers = training.per_device_train_batch_size * training.gradient_accumulation_steps
        if answers % options.num_generations:
            problems.append(
                f"training.per_device_train_batch_size: the batch counts answers, {options.num_generations} per "
                f"prompt (stage.num_generations), so per_device_train_batch_size x gradient_accumulation_steps "
                f"({answers}) must be a multiple of it"
            )
        for name in options.reward_functions:
            if name not in BUILTIN_REWARDS:
                try:
                    import_callable(name)
                except ValueError as exc:
                    problems.append(f"stage.reward_functions: {exc}")
        return problems

    def preprocess(self, samples: list[Any], encoder: Encoder, options: GrpoOptions) -> list[dict[str, Any]]:
        tokenizer = encoder.tokenizer
        bos_token_id = getattr(tokenizer, "bos_token_id", None)
        room = encoder.cutoff_len - options.max_completion_length
        rows = []
        for conversation in samples:
            messages, answer = split_prompt(conversation)
            prompt_ids = list(encoder.encode_prompt(messages, conversation.tools or None))
            prompt_ids = keep_prompt_end(prompt_ids, max(room, 1), bos_token_id)
            rows.append(
                {
                    # TRL keys its batches on the prompt text; the stage's trainer generates from prompt_ids.
                    "prompt": tokenizer.decode(prompt_ids, skip_special_tokens=False),
                    "prompt_ids": prompt_ids,
                    "answer": answer,
                }
            )
        return rows

    def arguments_class(self) -> type:
        from trl import GRPOConfig

        return GRPOConfig

    def collator(self, run: RunContext) -> Any:
        return None  # GRPOTrainer batches the rows as they are

    def build_trainer(self, run: RunContext, train_dataset: Any, eval_dataset: Any) -> Any:
        from ft_core_grpo.trainer import FtGrpoTrainer, is_adapter_model

        options: GrpoOptions = run.config.stage.options
        rewards = build_reward_functions(
            options.reward_functions, options.format_pattern, options.length_target
        )
        run.record("grpo.rewards", list(options.reward_functions), "stage.reward_functions")
        policy = run.load_model("policy")
        adapter = is_adapter_model(policy)
        if options.beta > 0:
            reference = (
                "policy with the adapter disabled" if adapter else "frozen copy of the base model (TRL)"
            )
        else:
            reference = "none (beta = 0: no KL penalty)"
        run.record("grpo.reference", reference, f"stage.beta = {options.beta}")
        return run.build_trainer(
            model=policy,
            args=run.training_arguments(self.arguments_class(), **options.trl_arguments()),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            trainer_class=FtGrpoTrainer,
            reward_funcs=rewards,
        )
