"""Build a Hugging Face ``Trainer`` for a stage, wired to the optimizer and logger plugins."""

from __future__ import annotations

from typing import Any

from ft_core.run.arguments import training_arguments
from ft_core.run.context import RunContext


def build_hf_trainer(
    ctx: RunContext,
    train_dataset: Any,
    eval_dataset: Any,
    callbacks: list[Any],
    data_collator: Any,
    trainer_class: Any = None,
    **argument_overrides: Any,
) -> Any:
    """A ``transformers.Trainer`` (or ``trainer_class``) with ft-core's arguments, optimizer and callbacks."""
    from transformers import Trainer

    optimizer = ctx.config.one("optimizer")
    assert optimizer is not None
    args = training_arguments(
        ctx.config.training, ctx.run_dir, has_eval=eval_dataset is not None, **argument_overrides
    )
    cls_and_kwargs = optimizer.component.cls_and_kwargs(optimizer.options, ctx.config.training.learning_rate)
    trainer = (trainer_class or Trainer)(
        model=ctx.model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=data_collator,
        processing_class=ctx.tokenizer,
        callbacks=callbacks,
        optimizer_cls_and_kwargs=cls_and_kwargs,
    )
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer
