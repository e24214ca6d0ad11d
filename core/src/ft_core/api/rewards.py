"""Reward functions of the online RL stages (grpo, ppo): the built-ins (``exact_match``, ``format``, ``length``) and Python callables
named ``module:function`` in the config.

Standard library only. Every reward function is called as TRL calls them:
``func(prompts=[...], completions=[...], answer=[...], **other_columns) -> list[float | None]``, one reward per
completion; ``answer`` is each prompt's reference answer (the dataset's answer column), repeated for each of the
prompt's generations.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any

RewardFunction = Callable[..., list[float | None]]

#: The built-in reward functions, by the name the config gives them.
BUILTIN_REWARDS: tuple[str, ...] = ("exact_match", "format", "length")


def normalize(text: str) -> str:
    """Case-folded text with whitespace collapsed and trailing punctuation ``.!`` stripped (``" 42. "`` ->
    ``"42"``)."""
    return " ".join(text.split()).casefold().rstrip(".! ")


def completion_text(completion: Any) -> str:
    """The text of a completion (TRL passes strings, or message lists for conversational prompts)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def exact_match(
    completions: Sequence[Any], answer: Sequence[str] | None = None, **_: Any
) -> list[float | None]:
    """1.0 when the completion equals the reference answer after :func:`normalize`, else 0.0."""
    if answer is None:
        raise ValueError("reward exact_match: the dataset has no answer column (the last assistant turn)")
    return [
        float(normalize(completion_text(c)) == normalize(a)) for c, a in zip(completions, answer, strict=True)
    ]


def format_reward(pattern: str) -> RewardFunction:
    """1.0 when the whole completion (stripped) matches the regular expression ``pattern``, else 0.0."""
    compiled = re.compile(pattern, re.DOTALL)

    def format(completions: Sequence[Any], **_: Any) -> list[float | None]:
        return [float(compiled.fullmatch(completion_text(c).strip()) is not None) for c in completions]

    return format


def length_reward(target: int) -> RewardFunction:
    """``1 - |characters - target| / max(target, characters)``: 1.0 at exactly ``target`` characters (stripped),
    falling linearly to 0.0 for an empty completion or one very much longer."""

    def length(completions: Sequence[Any], **_: Any) -> list[float | None]:
        rewards: list[float | None] = []
        for c in completions:
            size = len(completion_text(c).strip())
            rewards.append(1.0 - abs(size - target) / max(target, size, 1))
        return rewards

    return length


def is_callable_name(name: str) -> bool:
    """Whether ``name`` names a Python callable (``package.module:function``)."""
    module, _, function = name.partition(":")
    return bool(module and function) and all(part.isidentifier() for part in [*module.split("."), function])


def import_callable(name: str) -> RewardFunction:
    """The function ``module:function`` names; ValueError saying what is wrong."""
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"reward function {name!r}: cannot import {module_name!r}: {exc}") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"reward function {name!r}: {module_name} has no callable {attribute!r}")
    return function  # type: ignore[no-any-return]


def reward_function_problems(
    key: str, names: Sequence[str], weights: Sequence[float] | None, length_target: int
) -> list[str]:
    """What is wrong with the reward-function options an online-RL stage shares (grpo's ``reward_functions``, ppo's
    ``reward_model`` list; ``key`` names the option): names that are neither built-ins nor ``module:function``,
    ``reward_weights`` not one per function, ``length_target`` below 1. ``[]`` when they are fine."""
    from ft_core.api.errors import did_you_mean

    problems = [
        f"{key}: {name!r} is neither a built-in reward function ({', '.join(BUILTIN_REWARDS)}) nor a Python "
        f"callable written package.module:function.{did_you_mean(name, BUILTIN_REWARDS)}"
        for name in names
        if name not in BUILTIN_REWARDS and not is_callable_name(name)
    ]
    if weights is not None and len(weights) != len(names):
        problems.append(f"reward_weights: {len(weights)} weights for {len(names)} reward functions")
    if length_target < 1:
        problems.append(f"length_target must be >= 1, got {length_target}")
    return problems


def build_reward_functions(
    names: Sequence[str], format_pattern: str, length_target: int
) -> list[RewardFunction]:
    """The reward functions ``names`` gives, in order (built-ins with their options, callables imported)."""
    functions: list[RewardFunction] = []
    for name in names:
        if name == "exact_match":
            functions.append(exact_match)
        elif name == "format":
            functions.append(format_reward(format_pattern))
        elif name == "length":
            functions.append(length_reward(length_target))
        else:
            functions.append(import_callable(name))
    return functions
