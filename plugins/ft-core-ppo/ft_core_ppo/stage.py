"""The ``ppo`` stage: Proximal Policy Optimization with a value head, GAE and a KL penalty against the reference
model, rewarded by a reward model (a finished ``rm`` run) or by reward functions (those of the grpo stage).

Each training step is one rollout batch: the policy answers ``per_device_train_batch_size`` prompts, the answers are
scored, per-token rewards (score minus the KL penalty) give advantages by GAE, and ``ppo_epochs`` passes over
``num_mini_batches`` mini-batches update the policy and the value head with the clipped losses.

Import-light: this module imports only the standard library, ``ft_core.api`` and the grpo plugin's standard-library
modules; torch, transformers and PEFT are imported inside the methods that train.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

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
    artefact_head,
    did_you_mean,
)
from ft_core.api.preference import keep_prompt_end
from ft_core.api.rewards import BUILTIN_REWARDS, import_callable, is_callable_name

logger = logging.getLogger(__name__)

#: The name of the value head the stage adds to the policy model (trained with it, saved as ``heads.safetensors``).
VALUE_HEAD = "v_head"


def is_reward_function(name: str) -> bool:
    """Whether ``name`` names a reward function (a built-in or ``package.module:function``), not a folder."""
    return name in BUILTIN_REWARDS or is_callable_name(name)


@dataclass(frozen=True)
class PpoOptions:
    """Options of ``stage.name: ppo``."""

    #: What scores each answer: the folder of a finished ``rm`` run (its reward model, trained on the same base model
    #: when it is an adapter), or reward functions as the grpo stage has them: a name or a list of names of
    #: built-ins ``exact_match`` / ``format`` / ``length`` or Python callables ``package.module:function``, summed
    #: with ``reward_weights``.
    reward_model: str | list[str] | None = None
    #: One weight per reward function; ``null`` = all 1.
    reward_weights: list[float] | None = None
    #: The regular expression of the ``format`` reward function (the whole stripped answer).
    format_pattern: str = r"<answer>.*</answer>"
    #: The answer length in characters the ``length`` reward function prefers.
    length_target: int = 100
    #: Longest generated answer in tokens.
    max_new_tokens: int = 64
    #: Sampling temperature of the rollouts (the log-probabilities are computed at the same temperature).
    temperature: float = 1.0
    #: Top-k sampling of the rollouts (0 = off).
    top_k: int = 0
    #: Nucleus-sampling probability mass of the rollouts (1 = off).
    top_p: float = 1.0
    #: Optimisation passes over each rollout batch.
    ppo_epochs: int = 4
    #: Mini-batches each rollout batch (``training.per_device_train_batch_size`` answers) is split into; one
    #: optimizer step per mini-batch and epoch.
    num_mini_batches: int = 1
    #: Discount factor of GAE.
    gamma: float = 1.0
    #: GAE's lambda (bias / variance trade-off of the advantages).
    lam: float = 0.95
    #: Clipping range of the policy ratio.
    cliprange: float = 0.2
    #: Clipping range of the value predictions around their rollout values.
    cliprange_value: float = 0.2
    #: Weight of the value loss in the total loss.
    vf_coef: float = 0.1
    #: Initial coefficient of the per-token KL penalty against the reference model.
    init_kl_coef: float = 0.2
    #: Adapt the KL coefficient towards ``target`` (Ziegler et al.); ``false`` = fixed at ``init_kl_coef``.
    adaptive_kl: bool = True
    #: The per-answer KL (nats) the adaptive controller aims at.
    target: float = 6.0
    #: The adaptive controller's horizon (answers) over which the coefficient moves by up to 20 %.
    horizon: int = 10000
    #: Whiten the per-token rewards of each rollout batch before GAE.
    whiten_rewards: bool = False
    #: Whiten the advantages of each rollout batch (mean 0, std 1) before the policy loss.
    whiten_advantages: bool = True
    #: Standardise each rollout batch's scores (mean 0, std 1) before the KL penalty is added.
    score_norm: bool = False
    #: Clip the scores to ``[-score_clip, score_clip]`` (``null`` = no clipping).
    score_clip: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.reward_model, list):
            object.__setattr__(self, "reward_model", [str(name) for name in self.reward_model])
        for problem in self._problems():
            raise OptionsError(problem)

    def _problems(self) -> list[str]:
        problems = []
        if self.reward_model is None or self.reward_model == [] or self.reward_model == "":
            return [
                "reward_model: name the folder of a finished rm run, or reward functions "
                f"({', '.join(BUILTIN_REWARDS)} or package.module:function)"
            ]
        names = self.reward_functions
        if isinstance(self.reward_model, list):
            for name in self.reward_model:
                if not is_reward_function(name):
                    problems.append(
                        f"reward_model: {name!r} in the list is neither a built-in reward function "
                        f"({', '.join(BUILTIN_REWARDS)}) nor package.module:function."
                        f"{did_you_mean(name, BUILTIN_REWARDS)}"
                    )
        if self.reward_weights is not None and len(self.reward_weights) != len(names):
            problems.append(
                f"reward_weights: {len(self.reward_weights)} weights for {len(names)} reward functions"
                + ("" if names else " (reward_model names an rm run: weights apply to reward functions only)")
            )
        positive = {
            "max_new_tokens": self.max_new_tokens,
            "ppo_epochs": self.ppo_epochs,
            "num_mini_batches": self.num_mini_batches,
            "length_target": self.length_target,
            "horizon": self.horizon,
        }
        problems += [f"{key} must be >= 1, got {value}" for key, value in positive.items() if value < 1]
        above_zero = {
            "temperature": self.temperature,
            "cliprange": self.cliprange,
            "cliprange_value": self.cliprange_value,
            "target": self.target,
        }
        problems += [f"{key} must be > 0, got {value}" for key, value in above_zero.items() if not value > 0]
        if self.top_k < 0:
            problems.append(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        for key, value in (("gamma", self.gamma), ("lam", self.lam)):
            if not 0 <= value <= 1:
                problems.append(f"{key} must be in [0, 1], got {value}")
        for key, value in (("vf_coef", self.vf_coef), ("init_kl_coef", self.init_kl_coef)):
            if value < 0:
                problems.append(f"{key} must be >= 0, got {value}")
        if self.score_clip is not None and not self.score_clip > 0:
            problems.append(f"score_clip must be > 0 or null, got {self.score_clip}")
        return problems

    @property
    def reward_functions(self) -> list[str]:
        """The reward functions ``reward_model`` names (``[]`` when it names an rm run folder)."""
        if isinstance(self.reward_model, list):
            return list(self.reward_model)
        if isinstance(self.reward_model, str) and is_reward_function(self.reward_model):
            return [self.reward_model]
        return []

    @property
    def reward_model_dir(self) -> Path | None:
        """The rm run folder ``reward_model`` names (``None`` for reward functions)."""
        if isinstance(self.reward_model, str) and not self.reward_functions:
            return Path(self.reward_model).expanduser()
        return None


def rm_run_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a finished rm run whose reward model ppo can load, else ``None`` (JSON reads only)."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return (
            f"{folder} is not a run folder (no manifest.json); name the folder of a finished rm run "
            "(ft-core run configs/rm.yaml), or reward functions such as exact_match"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{manifest_path}: unreadable ({exc})"
    if manifest.get("status") != "completed":
        return f"{folder}: the run has not completed (status {manifest.get('status')!r}); finish or resume it first"
    artefact = folder / str(manifest.get("artefact") or "model")
    head = artefact_head(artefact)
    if head != "sequence_classification":
        return (
            f"{folder}: its model has a {head} head, not a reward model's sequence_classification head; name the "
            "folder of an rm run (stage.name: rm)"
        )
    return None


def prompt_and_answer(conversation: Conversation) -> tuple[list[Any], str]:
    """``(prompt messages, reference answer)``: a prompt-only conversation (ending with a user or tool turn) and
    ``""``, or the conversation up to its last assistant turn and that turn (the answer reward functions read)."""
    messages = list(conversation.messages)
    where = conversation.source or "a prompt sample"
    if messages and messages[-1].role == "assistant":
        messages, answer = messages[:-1], messages[-1].content
    else:
        answer = ""
    if not messages or messages[-1].role not in ("user", "tool"):
        raise DataError(f"{where}: no prompt (a user turn) to answer")
    return messages, answer


class PpoStage(TrainingStage[PpoOptions]):
    """PPO with a value head on the policy (LoRA: policy and value share the base and the adapter), the reference
    being the adapter-disabled policy with LoRA (else a frozen copy of the base model), and a reward model or
    reward functions scoring the sampled answers."""

    data_kind: ClassVar[DataKind] = "prompt"
    model_roles: ClassVar[tuple[str, ...]] = ("policy", "reference", "reward")
    options_schema: ClassVar[type] = PpoOptions
    description: ClassVar[str] = (
        "Proximal Policy Optimization: online RL from a reward model (an rm run) or reward functions, with a value "
        "head, GAE and an adaptive KL penalty"
    )

    def roles(self, options: PpoOptions) -> tuple[ModelRole, ...]:
        return (
            ModelRole("policy", head_modules=(VALUE_HEAD,)),
            ModelRole("reference", trainable=False),
            ModelRole("reward", head="sequence_classification", trainable=False),
        )

    def validate(self, options: PpoOptions, config: RunConfig) -> list[str]:
        problems = []
        cutoff_len = config.data.cutoff_len
        if options.max_new_tokens >= cutoff_len:
            problems.append(
                f"stage.max_new_tokens: {options.max_new_tokens} leaves no room for the prompt within "
                f"data.cutoff_len ({cutoff_len}); prompts are cut to cutoff_len - max_new_tokens"
            )
        training = config.training
        if training.gradient_accumulation_steps != 1:
            problems.append(
                f"training.gradient_accumulation_steps: must be 1 for ppo (got "
                f"{training.gradient_accumulation_steps}); each step's rollout batch is split into "
                "stage.num_mini_batches mini-batches instead"
            )
        if training.per_device_train_batch_size % options.num_mini_batches:
            problems.append(
                f"stage.num_mini_batches: {options.num_mini_batches} does not divide the rollout batch "
                f"(training.per_device_train_batch_size = {training.per_device_train_batch_size})"
            )
        for name in options.reward_functions:
            if name not in BUILTIN_REWARDS:
                try:
                    import_callable(name)
                except ValueError as exc:
                    problems.append(f"stage.reward_model: {exc}")
        folder = options.reward_model_dir
        if folder is not None:
            problem = rm_run_problem(folder)
            if problem:
                problems.append(f"stage.reward_model: {problem}")
        if config.data.val_size:
            problems.append(
                "data.val_size: the ppo stage does not evaluate (its metric is the mean reward of each step's "
                "rollouts); set it to 0"
            )
        return problems

    def prepare_model(self, model: Any, run: RunContext, role: str) -> Any:
        if role == "policy":
            from ft_core_ppo.value import ValueHead

            setattr(model, VALUE_HEAD, ValueHead(model.config.get_text_config().hidden_size))
        return model

    def preprocess(self, samples: list[Any], encoder: Encoder, options: PpoOptions) -> list[dict[str, Any]]:
        bos_token_id = getattr(encoder.tokenizer, "bos_token_id", None)
        room = max(encoder.cutoff_len - options.max_new_tokens, 1)
        rows = []
        for conversation in samples:
            messages, answer = prompt_and_answer(conversation)
            prompt_ids = list(encoder.encode_prompt(messages, conversation.tools or None))
            rows.append({"prompt_ids": keep_prompt_end(prompt_ids, room, bos_token_id), "answer": answer})
        return rows

    def collator(self, run: RunContext) -> Any:
        from ft_core_ppo.trainer import prompt_batch

        return prompt_batch

    def next_steps(self, run_dir: str, options: PpoOptions | None = None) -> list[str]:
        return [
            f"results in {run_dir}; chat with it: ft-core chat {run_dir} (the value head, heads.safetensors, is "
            "only for training)"
        ]

    def build_trainer(self, run: RunContext, train_dataset: Any, eval_dataset: Any) -> Any:
        from ft_core_ppo.trainer import PpoTrainer, is_adapter_model
        from ft_core_ppo.value import build_scorer

        options: PpoOptions = run.config.stage.options
        policy = run.load_model("policy")
        adapter = is_adapter_model(policy)
        reference = None if adapter else run.load_model("reference", trainable=False)
        run.record(
            "ppo.reference",
            "policy with the adapter disabled" if adapter else "frozen copy of the base model",
            f"adapter.method = {run.config.adapter.name}",
        )
        scorer = build_scorer(run, options)
        run.record("ppo.reward", scorer.description, "stage.reward_model")
        return run.build_trainer(
            model=policy,
            args=run.training_arguments(remove_unused_columns=False),
            train_dataset=train_dataset,
            eval_dataset=None,
            data_collator=self.collator(run),
            trainer_class=PpoTrainer,
            ppo_options=options,
            reference_model=reference,
            scorer=scorer,
        )
