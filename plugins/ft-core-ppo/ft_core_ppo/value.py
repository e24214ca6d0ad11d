"""The value head ppo adds to the policy, and what scores the answers: a reward model (a finished ``rm`` run) or
reward functions (the grpo stage's).

Heavy (imports torch): imported only when a ppo run loads its models.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ft_core.api import FtCoreError, RunContext, auto_model_class
from ft_core.api.rewards import RewardFunction, build_reward_functions

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ft_core_ppo.options import PpoOptions


class ValueHead(nn.Module):
    """One value per token: ``hidden_state . weight + bias``, starting at 0. Plain parameters rather than an
    ``nn.Linear``, so that LoRA's ``targets: all`` never wraps it; it trains in full with the adapter."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(hidden_size))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(batch, tokens, hidden)`` -> ``(batch, tokens)`` values (computed in the head's dtype, fp32)."""
        return hidden_states.to(self.weight.dtype) @ self.weight + self.bias


def right_pad(sequences: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` of ``sequences`` padded on the right."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(list(sequence), dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return ids, mask


class FunctionScorer:
    """Scores answers with reward functions, called as the grpo stage calls them (``prompts``, ``completions``,
    ``answer`` keywords), summed with their weights; a ``None`` reward counts 0."""

    def __init__(
        self, functions: list[RewardFunction], weights: list[float] | None, tokenizer: Any, names: list[str]
    ) -> None:
        self.functions, self.tokenizer = functions, tokenizer
        self.weights = weights or [1.0] * len(functions)
        self.description = f"reward functions {', '.join(names)}"

    def to(self, device: Any) -> FunctionScorer:
        return self

    def __call__(
        self, prompt_ids: list[list[int]], response_ids: list[list[int]], answers: list[str]
    ) -> torch.Tensor:
        prompts = self.tokenizer.batch_decode(prompt_ids, skip_special_tokens=False)
        completions = self.tokenizer.batch_decode(response_ids, skip_special_tokens=True)
        total = torch.zeros(len(completions))
        for function, weight in zip(self.functions, self.weights, strict=True):
            rewards = function(prompts=prompts, completions=completions, answer=list(answers))
            total += weight * torch.tensor([0.0 if r is None else float(r) for r in rewards])
        return total


class RewardModelScorer:
    """Scores ``prompt + answer`` with a reward model (one score per sequence, read by the model at its last token
    that is not padding, as the rm stage trained it)."""

    def __init__(self, model: Any, pad_token_id: int, description: str) -> None:
        self.model, self.pad_token_id, self.description = model, pad_token_id, description
        self.device = torch.device("cpu")

    def to(self, device: Any) -> RewardModelScorer:
        self.model.to(device)
        self.device = torch.device(device)
        return self

    @torch.no_grad()
    def __call__(
        self, prompt_ids: list[list[int]], response_ids: list[list[int]], answers: list[str]
    ) -> torch.Tensor:
        sequences = [list(p) + list(r) for p, r in zip(prompt_ids, response_ids, strict=True)]
        ids, mask = right_pad(sequences, self.pad_token_id)
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
        return logits[:, 0].float().cpu()


def load_reward_model(run: RunContext, folder: Path) -> Any:
    """The frozen reward model of the rm run in ``folder``: its adapter on the run's base model (which must be the
    rm run's base), or its whole saved model (trained with the run's tokenizer)."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    artefact = folder / str(manifest.get("artefact") or "model")
    if (artefact / "adapter_config.json").is_file():
        from peft import PeftModel

        base = str((manifest.get("base_model") or {}).get("path") or "")
        if not base or Path(base).resolve() != Path(run.plan.model_path).resolve():
            raise FtCoreError(
                f"stage.reward_model: the rm run {folder} trained an adapter on {base or 'an unknown model'}, not "
                f"on this run's base model {run.plan.model_path}; train the reward model on the same base model "
                "(or with full tuning)"
            )
        model = PeftModel.from_pretrained(run.load_model("reward", trainable=False), str(artefact))
        model = model.merge_and_unload()
    else:
        from transformers import AutoTokenizer

        vocabulary = AutoTokenizer.from_pretrained(str(artefact)).get_vocab()
        if vocabulary != run.tokenizer.get_vocab():
            raise FtCoreError(
                f"stage.reward_model: the reward model in {artefact} uses another tokenizer than this run's "
                f"model ({run.config.model.name_or_path}); ppo scores the policy's tokens as they are, so train "
                "the reward model on the same base model"
            )
        model = auto_model_class("sequence_classification").from_pretrained(str(artefact), dtype="auto")
    model.requires_grad_(False)
    return model.eval()


def build_scorer(run: RunContext, options: PpoOptions) -> FunctionScorer | RewardModelScorer:
    """What scores the answers of a ppo run: its reward functions, or the rm run ``stage.reward_model`` names."""
    names = options.reward_functions
    if names:
        functions = build_reward_functions(names, options.format_pattern, options.length_target)
        return FunctionScorer(functions, options.reward_weights, run.tokenizer, names)
    folder = options.reward_model_dir
    assert folder is not None
    model = load_reward_model(run, folder)
    pad = model.config.pad_token_id
    pad = run.tokenizer.pad_token_id if pad is None else pad
    return RewardModelScorer(model, int(pad), f"reward model of the rm run {folder}")
