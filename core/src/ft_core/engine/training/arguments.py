"""Translate the ``training`` section into the keyword arguments of ``transformers.TrainingArguments``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ft_core.api.config import TrainingSection
from ft_core.engine.training.checkpointing import CheckpointingPlan, explicit_plan


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def uses_cpu(training: TrainingSection) -> bool:
    """True when training runs on the CPU (asked for, or no GPU present)."""
    return bool(training.use_cpu) if training.use_cpu is not None else not cuda_available()


def resolved_precision(training: TrainingSection) -> str:
    """``auto`` becomes fp32 on the CPU, bf16 on a bf16-capable GPU and fp16 on other GPUs."""
    if training.precision != "auto":
        return training.precision
    if uses_cpu(training):
        return "fp32"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _checkpointing_arguments(arguments_class: Any, plan: CheckpointingPlan) -> dict[str, Any]:
    """Activation checkpointing under the name this transformers release uses (renamed during 5.x), with the
    plan's ``use_reentrant`` and ``every_n_layers`` (the latter only where transformers knows it: the
    ``activation_checkpointing`` releases). Not ``offload``: the Trainer would wrap each checkpoint in PyTorch's
    blocking ``save_on_cpu``; ft-core's own offloading is re-applied after the Trainer enables checkpointing
    (:func:`~ft_core.engine.training.callbacks.checkpointing_callback`)."""
    fields = {f.name for f in dataclasses.fields(arguments_class)}
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    kwargs = plan.kwargs()
    if kwargs is not None:  # ft-core offloads itself (checkpointing_callback), on a side stream
        kwargs.pop("offload", None)
    if kwargs is not None and name == "gradient_checkpointing":
        kwargs = {"use_reentrant": kwargs["use_reentrant"]}
    return {name: plan.enabled, f"{name}_kwargs": kwargs}


def training_arguments_kwargs(
    arguments_class: Any,
    training: TrainingSection,
    run_dir: Path,
    has_eval: bool,
    checkpointing: CheckpointingPlan | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``arguments_class`` (``TrainingArguments`` or a subclass such as TRL's configs)
    for the ``training`` section; ``checkpointing`` is the run's decided plan (without one, only an explicit
    ``gradient_checkpointing: true`` / ``offload`` turns it on)."""
    if checkpointing is None:
        setting = training.gradient_checkpointing
        checkpointing = explicit_plan(
            setting if setting != "auto" else False, reentrant=bool(training.gradient_checkpointing_reentrant)
        )
    precision = resolved_precision(training)
    eval_steps = training.eval_steps if has_eval else None
    kwargs = dict(
        output_dir=str(run_dir),
        num_train_epochs=training.num_train_epochs,
        max_steps=training.max_steps,
        per_device_train_batch_size=training.per_device_train_batch_size,
        per_device_eval_batch_size=training.per_device_eval_batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        learning_rate=training.learning_rate,
        weight_decay=training.weight_decay,
        lr_scheduler_type=training.lr_scheduler_type,
        warmup_steps=training.warmup_steps if training.warmup_steps else training.warmup_ratio,
        max_grad_norm=training.max_grad_norm,
        logging_steps=training.logging_steps,
        save_strategy="steps",
        save_steps=training.save_steps,
        save_total_limit=training.save_total_limit,
        eval_strategy="steps" if eval_steps else ("epoch" if has_eval else "no"),
        eval_steps=eval_steps,
        seed=training.seed,
        data_seed=training.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        **_checkpointing_arguments(arguments_class, checkpointing),
        torch_compile=training.torch_compile and not uses_cpu(training),
        use_cpu=uses_cpu(training),
        dataloader_num_workers=training.dataloader_num_workers,
        ddp_find_unused_parameters=training.ddp_find_unused_parameters,
        report_to="none",
        remove_unused_columns=False,
        disable_tqdm=True,
        save_only_model=False,
        include_num_input_tokens_seen="no",  # counted without per-step syncs: training.trainer
    )
    # the section's other TrainingArguments fields (ft_core.engine.config.training_arguments.PASSTHROUGH), as given
    kwargs.update(training.arguments)
    if kwargs["eval_strategy"] == "steps" and kwargs["eval_steps"] is None and has_eval:
        kwargs["eval_steps"] = training.logging_steps  # transformers' rule for eval_strategy: steps
    return kwargs
