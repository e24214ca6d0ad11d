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
from pathlib import Path
from typing import Any, ClassVar

from ft_core.api import (
    Conversation,
    DataError,
    DataKind,
    Encoder,
    ModelRole,
    RunConfig,
    RunContext,
    TrainingStage,
    artefact_head,
)
from ft_core.api.preference import keep_prompt_end
from ft_core.api.rewards import BUILTIN_REWARDS, import_callable
from ft_core_ppo.options import VALUE_HEAD, PpoOptions

logger = logging.getLogger(__name__)


def rm_run_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a finished rm run whose reward model ppo can load, else ``None`` (JSON reads only)."""
    manifest_path = folder / "manifest.json"
    try:
        is_run = manifest_path.is_file()
    except OSError as exc:  # a name no file system takes (too long, ...)
        return f"{str(folder)[:80]!r}... is not a usable path ({exc.strerror}); name the folder of a finished rm run"
    if not is_run:
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
