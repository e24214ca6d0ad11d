"""The ppo stage's trainer: a ``transformers.Trainer`` whose training step is one PPO iteration.

Heavy (imports torch, transformers, accelerate): imported only when a ppo run builds its trainer.

One step: the policy samples an answer to each prompt of the batch (rollout), the answers are scored, per-token
rewards (the score at the last token minus the KL penalty against the reference) give advantages and returns by
GAE, then ``ppo_epochs`` passes over ``num_mini_batches`` shuffled mini-batches minimise the clipped policy loss plus
``vf_coef`` times the clipped value loss. Every mini-batch but the last is stepped here (gradient clipping as the
Trainer does it); the last one's gradients are stepped by the Trainer, which also steps the learning-rate schedule,
logs, saves and resumes. The KL coefficient is saved in each checkpoint (``ppo_state.json``); the value head is saved
and restored by ft-core (``heads.safetensors``).
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import is_peft_model
from transformers import Trainer

from ft_core_ppo.algorithm import (
    AdaptiveKLController,
    FixedKLController,
    entropy_from_logits,
    gae,
    kl_penalised_rewards,
    masked_mean,
    policy_loss,
    stack_scalars,
    token_logprobs,
    value_loss,
    whiten,
)
from ft_core_ppo.options import VALUE_HEAD, PpoOptions

logger = logging.getLogger(__name__)

#: The file of a checkpoint holding the ppo trainer's own state (the KL coefficient).
STATE_FILE = "ppo_state.json"


def is_adapter_model(model: Any) -> bool:
    """Whether ``model`` trains through a PEFT adapter (the reference is then the model with it disabled)."""
    return bool(is_peft_model(model))


def prompt_batch(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The ppo collator: the batch's prompt token lists and reference answers, as they are."""
    return {
        "prompt_ids": [list(r["prompt_ids"]) for r in rows],
        "answer": [r.get("answer", "") for r in rows],
    }


def left_pad(sequences: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` of ``sequences`` padded on the left (prompts for generation)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        if sequence:
            ids[row, width - len(sequence) :] = torch.tensor(sequence, dtype=torch.long)
            mask[row, width - len(sequence) :] = 1
    return ids, mask


def response_mask(responses: torch.Tensor, eos_token_ids: set[int]) -> torch.Tensor:
    """1 on each response's tokens up to and including its first end-of-sequence token, 0 after it."""
    is_end = torch.zeros_like(responses, dtype=torch.bool)
    for token in eos_token_ids:
        is_end |= responses == token
    ended_before = (is_end.long().cumsum(dim=1) - is_end.long()) > 0
    return (~ended_before).long()


@dataclass
class Rollout:
    """One rollout batch: sequences (left-padded prompt + right-padded response) and per-response-token tensors."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prompt_width: int
    mask: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    #: The mean KL of the batch's answers against the reference (over every process).
    kl: float


class PpoTrainer(Trainer):
    """PPO on ft-core's trainer services (see the module docstring)."""

    def __init__(
        self,
        *args: Any,
        ppo_options: PpoOptions,
        reference_model: Any,
        scorer: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.ppo = ppo_options
        device = self.accelerator.device
        self.reference_model = reference_model.to(device) if reference_model is not None else None
        self.scorer = scorer.to(device)
        self.kl_ctl: AdaptiveKLController | FixedKLController = (
            AdaptiveKLController(ppo_options.init_kl_coef, ppo_options.target, ppo_options.horizon)
            if ppo_options.adaptive_kl
            else FixedKLController(ppo_options.init_kl_coef)
        )
        tokenizer: Any = getattr(self.processing_class, "tokenizer", self.processing_class)
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.eos_token_ids = self._eos_token_ids(tokenizer)
        self._stats: dict[str, list[float]] = defaultdict(list)

    def _eos_token_ids(self, tokenizer: Any) -> set[int]:
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids = set(configured if isinstance(configured, list) else [configured])
        ids.add(tokenizer.eos_token_id)
        return {int(i) for i in ids if i is not None}

    # ------------------------------------------------------------------ forward passes
    def _forward(
        self, model: Any, ids: torch.Tensor, mask: torch.Tensor, prompt_width: int, values: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``(logprobs, values, logits)`` of the response tokens of ``ids`` (logits at the sampling temperature;
        values ``None`` unless asked for)."""
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
        output = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids,
            output_hidden_states=values,
            use_cache=False,
        )
        logits = output.logits[:, prompt_width - 1 : -1].float() / self.ppo.temperature
        logprobs = token_logprobs(logits, ids[:, prompt_width:])
        value = None
        if values:
            head = getattr(self.accelerator.unwrap_model(self.model), VALUE_HEAD)  # PEFT forwards the lookup
            value = head(output.hidden_states[-1][:, prompt_width - 1 : -1])
        return logprobs, value, logits

    @torch.no_grad()
    def _generate(self, model: Any, prompt_ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``(input_ids, attention_mask, prompt_width)`` of the prompts followed by the sampled responses."""
        unwrapped = self.accelerator.unwrap_model(model)
        ids, mask = left_pad(prompt_ids, self.pad_token_id)
        ids, mask = ids.to(self.accelerator.device), mask.to(self.accelerator.device)
        options = self.ppo
        was_training = unwrapped.training
        unwrapped.eval()
        try:
            output = unwrapped.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                max_new_tokens=options.max_new_tokens,
                temperature=options.temperature,
                top_k=options.top_k or None,
                top_p=options.top_p,
                pad_token_id=self.pad_token_id,
                eos_token_id=sorted(self.eos_token_ids),
                use_cache=True,
            )
        finally:
            unwrapped.train(was_training)
        width = ids.shape[1]
        responses = output[:, width:]
        if responses.shape[1] == 0:  # nothing generated at all: one pad token keeps the shapes valid
            responses = torch.full_like(output[:, :1], self.pad_token_id)
        response_tokens = response_mask(responses, self.eos_token_ids)
        responses = torch.where(response_tokens.bool(), responses, self.pad_token_id)
        return torch.cat([ids, responses], dim=1), torch.cat([mask, response_tokens], dim=1), width

    @torch.no_grad()
    def _rollout(self, model: Any, inputs: dict[str, Any]) -> Rollout:
        """Sample, score and evaluate one batch of prompts: the experience the PPO epochs learn from."""
        options = self.ppo
        ids, attention, width = self._generate(model, inputs["prompt_ids"])
        count_tokens = getattr(self, "ft_count_tokens", None)  # ft-core's trainer services (tokens/s)
        if count_tokens is not None:
            count_tokens(attention)  # the rollout's prompts and answers
        mask = attention[:, width:].float()
        logprobs, values, logits = self._forward(model, ids, attention, width, values=True)
        assert values is not None
        entropy = masked_mean(entropy_from_logits(logits), mask)
        del logits
        if self.reference_model is None:
            with self.accelerator.unwrap_model(model).disable_adapter():
                ref_logprobs, _, _ = self._forward(model, ids, attention, width, values=False)
        else:
            ref_logprobs, _, _ = self._forward(self.reference_model, ids, attention, width, values=False)
        responses = [row[m.bool()].tolist() for row, m in zip(ids[:, width:], mask, strict=True)]
        raw_scores = self.scorer(inputs["prompt_ids"], responses, inputs["answer"]).to(mask.device)
        scores = raw_scores.float()
        if options.score_clip is not None:
            scores = scores.clamp(-options.score_clip, options.score_clip)
        if options.score_norm:
            everyone = self.accelerator.gather(scores)
            scores = (scores - everyone.mean()) / (everyone.std(unbiased=False) + 1e-8)
        rewards, kl = kl_penalised_rewards(scores, logprobs, ref_logprobs, mask, self.kl_ctl.value)
        if options.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False)
        values = values * mask
        advantages, returns = gae(rewards, values, mask, options.gamma, options.lam)
        if options.whiten_advantages:
            advantages = whiten(advantages, mask)
        sequence_kl = kl.sum(dim=1)
        self._record(
            {
                "objective/scores": raw_scores.float().mean(),
                "objective/kl": sequence_kl.mean(),
                "objective/kl_coef": torch.tensor(self.kl_ctl.value),
                "objective/rlhf_reward": (scores - self.kl_ctl.value * sequence_kl).mean(),
                "objective/entropy": entropy,
                "completions/mean_length": mask.sum(dim=1).mean(),
                "value/mean": masked_mean(values, mask),
                "value/returns": masked_mean(returns, mask),
            }
        )
        kl_mean = self._stats["objective/kl"][-1]
        return Rollout(ids, attention, width, mask, logprobs, values, advantages, returns, kl_mean)

    # ------------------------------------------------------------------ the PPO step
    def training_step(
        self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        model.train()
        rollout = self._rollout(model, inputs)
        options = self.ppo
        batch = rollout.input_ids.shape[0]
        size = max(batch // options.num_mini_batches, 1)
        updates = [
            order[start : start + size]
            for _ in range(options.ppo_epochs)
            for order in [torch.randperm(batch, device=rollout.input_ids.device)]
            for start in range(0, batch, size)
        ]
        optimizer = self.optimizer
        assert optimizer is not None  # created by the Trainer before the first step
        losses = []
        for number, rows in enumerate(updates):
            loss = self._update(model, rollout, rows)
            self.accelerator.backward(loss)
            losses.append(loss.detach())
            if number < len(updates) - 1:  # the last mini-batch is stepped by the Trainer
                if self.args.max_grad_norm and self.args.max_grad_norm > 0:
                    self.accelerator.clip_grad_norm_(model.parameters(), self.args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
        self.kl_ctl.update(rollout.kl, batch * self.accelerator.num_processes)
        return torch.stack(losses).mean()

    def _update(self, model: Any, rollout: Rollout, rows: torch.Tensor) -> torch.Tensor:
        """The PPO loss of the mini-batch ``rows`` of ``rollout`` (statistics recorded)."""
        options = self.ppo
        mask = rollout.mask[rows]
        logprobs, values, logits = self._forward(
            model, rollout.input_ids[rows], rollout.attention_mask[rows], rollout.prompt_width, values=True
        )
        assert values is not None
        policy = policy_loss(
            logprobs, rollout.logprobs[rows], rollout.advantages[rows], mask, options.cliprange
        )
        value, value_clipfrac = value_loss(
            values, rollout.values[rows], rollout.returns[rows], mask, options.cliprange_value
        )
        with torch.no_grad():
            self._record(
                {
                    "policy/loss": policy.loss,
                    "policy/clipfrac": policy.clipfrac,
                    "policy/approxkl": policy.approx_kl,
                    "policy/ratio": policy.ratio,
                    "policy/entropy": masked_mean(entropy_from_logits(logits), mask),
                    "value/loss": value,
                    "value/clipfrac": value_clipfrac,
                }
            )
        return policy.loss + options.vf_coef * value

    # ------------------------------------------------------------------ metrics, checkpoints
    def _record(self, values: dict[str, torch.Tensor]) -> None:
        """Add statistics (averaged over the processes) to those the next log line reports."""
        stacked = stack_scalars(list(values.values()), self.accelerator.device)
        averaged = self.accelerator.gather(stacked.unsqueeze(0)).mean(dim=0).tolist()
        for name, value in zip(values, averaged, strict=True):
            self._stats[name].append(float(value))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log line: the statistics since the last one, averaged
            logs = {**logs, **{k: sum(v) / len(v) for k, v in self._stats.items() if v}}
            self._stats.clear()
        super().log(logs, start_time)

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        return 0  # the batch holds prompts only; generation and the PPO epochs are not estimated

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            with open(os.path.join(folder, STATE_FILE), "w", encoding="utf-8") as handle:
                json.dump({"kl_coef": self.kl_ctl.value}, handle)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, STATE_FILE)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                self.kl_ctl.value = float(json.load(handle)["kl_coef"])
        else:
            logger.warning(
                "%s has no %s: the KL coefficient restarts at init_kl_coef",
                resume_from_checkpoint,
                STATE_FILE,
            )
