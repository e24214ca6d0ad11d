"""Build a Hugging Face ``Trainer`` for a stage, wired to the optimizer and logger plugins."""

from __future__ import annotations

from typing import Any

from ft_core.run.arguments import training_arguments
from ft_core.run.context import RunContext


class TokenCountingMixin:
    """Counts non-padding tokens trained on the device and reads the count only when logging or saving.

    The Trainer's own ``include_num_input_tokens_seen`` calls ``.item()`` on every micro-batch, a host-device
    sync that stalls the GPU queue; here the count stays a device tensor until a log or checkpoint needs it.
    The result lands in ``state.num_input_tokens_seen`` (saved with checkpoints, so it survives a resume).
    """

    _pending_tokens: Any = None

    def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        mask = inputs.get("attention_mask")
        if mask is not None:
            count = mask.sum()
            self._pending_tokens = count if self._pending_tokens is None else self._pending_tokens + count
        return super().training_step(model, inputs, *args, **kwargs)  # type: ignore[misc]

    def _flush_token_count(self) -> None:
        if self._pending_tokens is not None:
            total = self.accelerator.gather(self._pending_tokens.reshape(1)).sum()  # type: ignore[attr-defined]
            self.state.num_input_tokens_seen += int(total.item())  # type: ignore[attr-defined]
            self._pending_tokens = None

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        self._flush_token_count()
        super().log(logs, *args, **kwargs)  # type: ignore[misc]

    def save_model(self, *args: Any, **kwargs: Any) -> None:
        self._flush_token_count()
        super().save_model(*args, **kwargs)  # type: ignore[misc]


def build_hf_trainer(
    ctx: RunContext,
    train_dataset: Any,
    eval_dataset: Any,
    callbacks: list[Any],
    data_collator: Any,
    trainer_class: Any = None,
    **argument_overrides: Any,
) -> Any:
    """A ``transformers.Trainer`` (or ``trainer_class``) with ft-core's arguments, optimizer, callbacks and
    sync-free token counting."""
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    optimizer = ctx.config.one("optimizer")
    assert optimizer is not None
    args = training_arguments(
        ctx.config.training, ctx.run_dir, has_eval=eval_dataset is not None, **argument_overrides
    )
    cls_and_kwargs = optimizer.component.cls_and_kwargs(optimizer.options, ctx.config.training.learning_rate)
    base = trainer_class or Trainer
    counting = type(f"TokenCounting{base.__name__}", (TokenCountingMixin, base), {})
    trainer = counting(
        model=ctx.model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=data_collator,
        processing_class=ctx.tokenizer,
        callbacks=callbacks,
        optimizer_cls_and_kwargs=cls_and_kwargs,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer
