"""The ``transformers.TrainingArguments`` fields a ``training`` section may set beyond ft-core's own keys.

ft-core's :class:`~ft_core.api.config.TrainingSection` names the settings it decides with (batch sizes, schedule,
precision, checkpointing, ...). Every other ``TrainingArguments`` field that makes sense for a run is accepted in
the same section (:data:`PASSTHROUGH`, each with the type it is validated against) and handed to the trainer as
given; the fields ft-core sets itself are refused with the reason and the key to use instead (:data:`OWNED`).
``tests/test_training_arguments.py`` checks that the two tables and the section cover every field of the installed
transformers release. Import-light: nothing here imports transformers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ft_core.api.config import TrainingSection
from ft_core.api.errors import did_you_mean

_Interval = Literal["no", "steps", "epoch"]

#: Fields handed to the trainer as given, with the type their value is checked against.
PASSTHROUGH: dict[str, Any] = {
    "lr_scheduler_kwargs": dict[str, Any],
    "average_tokens_across_devices": bool,
    "label_smoothing_factor": float,
    "bf16_full_eval": bool,
    "fp16_full_eval": bool,
    "tf32": bool | None,
    "torch_compile_backend": str | None,
    "torch_compile_mode": str | None,
    "torch_empty_cache_steps": int | None,
    "auto_find_batch_size": bool,
    "logging_strategy": _Interval,
    "logging_first_step": bool,
    "log_on_each_node": bool,
    "logging_nan_inf_filter": bool,
    "log_level": Literal["passive", "debug", "info", "warning", "error", "critical"],
    "log_level_replica": Literal["passive", "debug", "info", "warning", "error", "critical"],
    "eval_strategy": _Interval,
    "eval_delay": float,
    "prediction_loss_only": bool,
    "eval_on_start": bool,
    "eval_do_concat_batches": bool,
    "eval_use_gather_object": bool,
    "eval_accumulation_steps": int | None,
    "include_for_metrics": list[str],
    "batch_eval_metrics": bool,
    "save_only_model": bool,
    "save_strategy": Literal["no", "steps", "epoch", "best"],
    "save_on_each_node": bool,
    "enable_jit_checkpoint": bool,
    "load_best_model_at_end": bool,
    "metric_for_best_model": str | None,
    "greater_is_better": bool | None,
    "ignore_data_skip": bool,
    "restore_callback_states_from_checkpoint": bool,
    "full_determinism": bool,
    "dataloader_drop_last": bool,
    "dataloader_pin_memory": bool,
    "dataloader_persistent_workers": bool,
    "dataloader_prefetch_factor": int | None,
    "dataloader_multiprocessing_context": Literal["fork", "spawn", "forkserver"] | None,
    "dataloader_in_order": bool,
    "train_sampling_strategy": Literal["random", "sequential", "group_by_length"],
    "ddp_bucket_cap_mb": int | None,
    "ddp_broadcast_buffers": bool | None,
    "ddp_static_graph": bool | None,
    "ddp_backend": Literal["nccl", "gloo", "mpi", "ccl", "hccl", "cncl", "mccl"] | None,
    "ddp_timeout": int,
    "debug": str | list[str],
    "skip_memory_metrics": bool,
}

_OPTIMIZER = "the optimizer section owns it (`optimizer: {name: adamw, betas: [0.9, 0.999], eps: 1e-8}`)"
_DISTRIBUTED = (
    "the distributed section owns it (`distributed: {strategy: deepspeed | fsdp}` with its own section)"
)
_LOGGERS = "the loggers section owns it (`loggers: [tensorboard]`, a logger's own run_name / project options)"
_UPLOAD = "ft-core does not upload; export the run (`ft-core export`) and upload the folder with `hf upload`"
_CHECKPOINTING = "training.gradient_checkpointing (and gradient_checkpointing_reentrant) owns it"

#: Fields ft-core sets itself, with the reason (shown in the error and in docs/config-reference.md).
OWNED: dict[str, str] = {
    "output_dir": "training.output_dir is the run folder ft-core lays out (config, manifest, checkpoints, model)",
    "bf16": "training.precision owns it (`precision: bf16`)",
    "fp16": "training.precision owns it (`precision: fp16`)",
    "gradient_checkpointing": _CHECKPOINTING,
    "gradient_checkpointing_kwargs": _CHECKPOINTING,
    "activation_checkpointing": _CHECKPOINTING,
    "activation_checkpointing_kwargs": _CHECKPOINTING,
    "optim": _OPTIMIZER,
    "optim_args": _OPTIMIZER,
    "optim_target_modules": _OPTIMIZER,
    "adam_beta1": _OPTIMIZER,
    "adam_beta2": _OPTIMIZER,
    "adam_epsilon": _OPTIMIZER,
    "deepspeed": _DISTRIBUTED,
    "fsdp": _DISTRIBUTED,
    "fsdp_config": _DISTRIBUTED,
    "parallelism_config": _DISTRIBUTED,
    "accelerator_config": _DISTRIBUTED,
    "local_rank": "set by the launcher (`distributed.nproc`, torchrun)",
    "report_to": _LOGGERS,
    "run_name": _LOGGERS,
    "project": _LOGGERS,
    "trackio_space_id": _LOGGERS,
    "trackio_bucket_id": _LOGGERS,
    "trackio_static_space_id": _LOGGERS,
    "use_liger_kernel": "the liger section owns it (ft-core-liger: `liger: {enabled: auto | true | false}`)",
    "liger_kernel_config": "the liger section owns it (ft-core-liger)",
    "neftune_noise_alpha": "the neftune section owns it (ft-core-neftune: `neftune: {alpha: 5}`)",
    "use_cache": "ft-core turns the KV cache off for training itself",
    "include_num_input_tokens_seen": "ft-core counts the tokens seen itself (without a sync per step)",
    "disable_tqdm": "ft-core prints its own progress lines (`ft-core -q run` for quiet output)",
    "remove_unused_columns": "the stages' data pipelines pass only what the model takes",
    "label_names": "the stage decides the label columns",
    "length_column_name": "the data pipeline's row lengths are ft-core's own",
    "data_seed": "training.seed seeds the data order too",
    "resume_from_checkpoint": "training.resume owns it (`auto`, `false` or a checkpoint folder)",
    "do_train": "`ft-core run` trains; `ft-core eval` / `predict` (ft-core-eval) evaluate and predict",
    "do_eval": "evaluation runs when there is evaluation data (data.val_size or data.eval_dataset)",
    "do_predict": "`ft-core predict` (ft-core-eval) predicts",
    "push_to_hub": _UPLOAD,
    "hub_token": _UPLOAD,
    "hub_private_repo": _UPLOAD,
    "hub_model_id": _UPLOAD,
    "hub_strategy": _UPLOAD,
    "hub_always_push": _UPLOAD,
    "hub_revision": _UPLOAD,
}

#: The keyword arguments each ``lr_scheduler_type`` takes in ``lr_scheduler_kwargs`` (``None``: any, passed on to
#: the PyTorch scheduler); kept in step with transformers' schedule functions by a test.
SCHEDULER_KWARGS: dict[str, tuple[str, ...] | None] = {
    "linear": (),
    "cosine": ("num_cycles",),
    "cosine_with_restarts": ("num_cycles",),
    "polynomial": ("lr_end", "power"),
    "constant": (),
    "constant_with_warmup": (),
    "inverse_sqrt": ("timescale",),
    "reduce_lr_on_plateau": None,
    "cosine_with_min_lr": ("num_cycles", "min_lr", "min_lr_rate"),
    "cosine_warmup_with_min_lr": ("num_cycles", "min_lr", "min_lr_rate", "warmup_lr_rate"),
    "warmup_stable_decay": (
        "num_decay_steps", "num_stable_steps", "warmup_type", "decay_type", "min_lr_ratio", "num_cycles",
    ),
}  # fmt: skip

#: ft-core's own keys of the training section.
SECTION_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainingSection) if f.init)


def split_training(data: Any, problems: list[str]) -> tuple[Any, dict[str, Any]]:
    """``(the section's own keys, the checked passthrough fields)`` of a raw ``training`` mapping; owned fields,
    wrong types and unknown keys become ``training.KEY: ...`` problems."""
    from ft_core.engine.config.llamafactory_keys import migration_hint
    from ft_core.engine.config.typecheck import coerce

    if not isinstance(data, dict):
        return data, {}
    own: dict[str, Any] = {}
    passthrough: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTION_KEYS or not isinstance(key, str):
            own[key] = value
        elif key in PASSTHROUGH:
            try:
                passthrough[key] = coerce(value, PASSTHROUGH[key])
            except TypeError as exc:
                problems.append(f"training.{key}: {exc}")
        elif key in OWNED:
            problems.append(f"training.{key}: a TrainingArguments field ft-core sets itself: {OWNED[key]}")
        else:
            known = [*SECTION_KEYS, *PASSTHROUGH]
            hint = migration_hint(key) or did_you_mean(key, known)
            problems.append(
                f"training.{key}: unknown key.{hint} The training section takes ft-core's keys and the "
                "TrainingArguments fields listed in docs/config-reference.md (training)."
            )
    return own, passthrough


def passthrough_problems(training: TrainingSection, has_eval: bool) -> list[str]:
    """Combinations of passed-on fields that cannot work with this run (checked before anything loads)."""
    extra = training.arguments
    problems: list[str] = []
    takes = SCHEDULER_KWARGS.get(training.lr_scheduler_type)
    unknown = (
        sorted(set(extra.get("lr_scheduler_kwargs") or {}) - set(takes or ())) if takes is not None else []
    )
    if unknown:
        problems.append(
            f"training.lr_scheduler_kwargs: {', '.join(unknown)} not taken by lr_scheduler_type "
            f"{training.lr_scheduler_type} (it takes {', '.join(takes or ()) or 'none'})"
        )
    if not has_eval:
        for key in ("load_best_model_at_end", "eval_on_start"):
            if extra.get(key):
                problems.append(
                    f"training.{key}: needs evaluation data; set data.val_size or data.eval_dataset, or drop it"
                )
        if extra.get("eval_strategy", "no") != "no":
            problems.append(
                f"training.eval_strategy: {extra['eval_strategy']} needs evaluation data; set data.val_size or "
                "data.eval_dataset"
            )
    if extra.get("load_best_model_at_end"):
        save = extra.get("save_strategy", "steps")
        evaluate = extra.get("eval_strategy", "steps" if training.eval_steps else "epoch")
        if save not in ("best", evaluate):
            problems.append(
                f"training.load_best_model_at_end: save_strategy ({save}) must match eval_strategy ({evaluate}) so "
                "that each evaluated model is saved; set both, e.g. `save_strategy: epoch` and "
                "`eval_strategy: epoch`"
            )
        elif (
            save == evaluate == "steps" and training.eval_steps and training.save_steps % training.eval_steps
        ):
            problems.append(
                f"training.load_best_model_at_end: save_steps ({training.save_steps}) must be a multiple of "
                f"eval_steps ({training.eval_steps})"
            )
    return problems
