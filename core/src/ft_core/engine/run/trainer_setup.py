"""The trainer a stage asks its run for: training arguments, callbacks, packing, the offload arena.

These are the :class:`~ft_core.api.context.RunContext` services ``training_arguments`` and ``build_trainer``;
:class:`~ft_core.engine.run.context.EngineRun` binds them, so a stage's call lands here directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ft_core.engine.training.callbacks import (
    checkpointing_callback,
    control_callback,
    event_callback,
    progress_callback,
)
from ft_core.engine.training.heads import heads_callback

#: The engine's run (:class:`~ft_core.engine.run.context.EngineRun`, which binds these functions as its methods).
EngineRun = Any


def training_arguments(run: EngineRun, arguments_class: type | None = None, **overrides: Any) -> Any:
    """The ``training`` section as ``arguments_class`` (``TrainingArguments`` by default), with ``overrides`` and
    the active plugins' ``ft_adjust_training_arguments`` applied."""
    from transformers import TrainingArguments

    from ft_core.engine.training.arguments import training_arguments_kwargs

    cls = arguments_class or TrainingArguments
    config = run.config
    has_eval = bool(config.data.eval_dataset) or config.data.val_size > 0
    kwargs = training_arguments_kwargs(
        cls, config.training, run.run_dir, has_eval, checkpointing=run.plan.checkpointing
    )
    if config.training.torch_compile and not run.uses_gpu:
        run.say("torch_compile: off on the CPU (training.torch_compile applies to GPU runs)", key="compile")
    kwargs.update(overrides)
    run.hooks.ft_adjust_training_arguments(arguments=kwargs, run=run)
    return cls(**kwargs)


def callbacks(run: EngineRun) -> list[Any]:
    """The callbacks of every trainer of a run: events, cancellation, loggers, heads, checkpointing, optimizer,
    the active plugins' ``ft_trainer_callbacks``."""
    found = [
        event_callback(run.emit, run.run_dir),
        control_callback(run.cancel),
        progress_callback(run.prior_runtime),
    ]
    if run.process.is_main_process:
        found += [lg.component.callback(lg.options, str(run.run_dir)) for lg in run.config.many("loggers")]
    if run.heads:
        found.append(heads_callback(run.heads))
    plan = run.plan.checkpointing
    if plan is not None and plan.enabled:
        found.append(checkpointing_callback(plan, run.say))
    optimizer = run.config.optimizer
    found += optimizer.component.callbacks(optimizer.options)
    for extra in run.hooks.ft_trainer_callbacks(run=run):
        found += extra or []
    return found


def build_trainer(
    run: EngineRun,
    *,
    model: Any,
    args: Any,
    train_dataset: Any,
    eval_dataset: Any = None,
    data_collator: Any = None,
    trainer_class: type | None = None,
    **trainer_kwargs: Any,
) -> Any:
    """A trainer of ``trainer_class`` (``transformers.Trainer`` by default) with the run's optimizer plugin,
    callbacks, packing (``data.packing``: the engine's padding-free batches, or the stage's batches run
    padding-free), token counting and cancellation."""
    from transformers import Trainer

    from ft_core.engine.models.attention import is_varlen
    from ft_core.engine.training.packing import PackingPlan, PaddedBatchesPlan, match_attention, plan_packing
    from ft_core.engine.training.padding_free import PaddingFreeForward
    from ft_core.engine.training.trainer import build_trainer as trainer_with_optimizer

    config = run.config
    merge, merged_fits = _accumulation_to_merge(run, args, model)
    packing = plan_packing(
        config,
        config.stage.component,
        model,
        train_dataset,
        run.uses_gpu,
        run.say,
        merge_accumulation=merge,
        merged_fits=merged_fits,
    )
    if packing is not None:
        run.record("packing", packing.manifest(), "decided against the loaded model")
    _pin_offload_arena(run, model, packing if isinstance(packing, PackingPlan) else None)
    if isinstance(packing, PaddedBatchesPlan):  # the stage's batches, each forward pass padding-free
        forward = PaddingFreeForward(varlen_kwargs=is_varlen(packing.attention))
        forward.attach(model)
        reference = trainer_kwargs.get("ref_model")
        if reference is not None:
            match_attention(reference, packing.attention)
            forward.attach(reference)
        packing = None
    if packing is not None:  # data.packing: the engine's padding-free batches replace the stage's padded ones
        data_collator = packing.collator
        if packing.merged_accumulation > 1:
            args.gradient_accumulation_steps = 1
    if data_collator is not None:
        from ft_core.engine.vision import wrap_collator

        trainer_kwargs["data_collator"] = wrap_collator(
            run, data_collator, run.plan.model_path, packed=packing is not None
        )
    return trainer_with_optimizer(
        trainer_class or Trainer,
        optimizer=config.optimizer,
        adjust_groups=lambda groups, trained: run.hooks.ft_adjust_parameter_groups(
            groups=groups, model=trained, run=run
        ),
        callbacks=callbacks(run),
        mixins=(packing.mixin,) if packing is not None else (),
        attributes={"ft_batch_sampler": packing.sampler} if packing is not None else None,
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=run.tokenizer,
        **trainer_kwargs,
    )


def _pin_offload_arena(run: EngineRun, model: Any, packing: Any) -> None:
    """With offloaded checkpointing on a GPU, start pinning the host memory the run's largest micro-batch offloads
    now, in the background, instead of in its first steps (``packing``: the run's
    :class:`~ft_core.engine.training.packing.PackingPlan`, or ``None`` for padded batches)."""
    plan = run.plan.checkpointing
    if plan is None or not plan.offload or not run.uses_gpu:
        return
    from ft_core.engine.models.offload import reserve_for_largest_step
    from ft_core.engine.training.checkpointing import hidden_bytes_per_token, micro_batch

    if packing is not None:
        tokens = packing.sampler.largest_batch()
    else:
        sequences, length = micro_batch(run.config, list(run.plan.row_lengths) or None)
        tokens = sequences * length
    reserve_for_largest_step(model, tokens, hidden_bytes_per_token(model), run.process.local_rank)


def _accumulation_to_merge(run: EngineRun, args: Any, model: Any) -> tuple[int, Callable[[int], bool] | None]:
    """The gradient accumulation steps a packed run may merge into one micro-batch, and the check the largest
    merged micro-batch (in tokens) must pass (``data.packing_merge_accumulation``; ``(1, None)``: none)."""
    data, steps = run.config.data, int(getattr(args, "gradient_accumulation_steps", 1) or 1)
    setting = data.packing_merge_accumulation
    if steps <= 1 or setting is False or data.packing_tokens is not None:
        return 1, None
    if setting is True:
        return steps, None
    if not run.uses_gpu:
        return 1, None
    from ft_core.engine.training.checkpointing import merged_batch_fits

    plan, device, config = run.plan.checkpointing, run.process.local_rank, run.config
    return steps, lambda tokens: merged_batch_fits(config, model, plan, tokens, device=device)
