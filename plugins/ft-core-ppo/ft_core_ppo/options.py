"""The options of ``stage.name: ppo`` (and the value head's name), apart from the stage so that its trainer and value
modules read them without importing the stage. Standard library and ``ft_core.api`` only."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ft_core.api import OptionsError
from ft_core.api.rewards import BUILTIN_REWARDS, is_callable_name, reward_function_problems

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
        names = self.reward_model if isinstance(self.reward_model, list) else self.reward_functions
        weights = self.reward_weights
        if weights is not None and not names:
            problems.append(
                "reward_weights: reward_model names an rm run; weights apply to reward functions only"
            )
            weights = None
        problems += reward_function_problems("reward_model", names, weights, self.length_target)
        positive = {
            "max_new_tokens": self.max_new_tokens,
            "ppo_epochs": self.ppo_epochs,
            "num_mini_batches": self.num_mini_batches,
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
            return Path(os.path.expanduser(self.reward_model))
        return None
