"""Build a trainer of any ``transformers.Trainer`` subclass (TRL's included) wired to ft-core: the optimizer plugin,
sync-free token counting, the run's callbacks."""

from __future__ import annotations

from typing import Any

from ft_core.api.config import Selection
from ft_core.api.modeling import default_param_groups


class FtCoreTrainerMixin:
    """Mixed in front of the stage's trainer class.

    - The optimizer comes from the optimizer plugin: default parameter groups (weight decay on weights, none on
      biases and norms, as the Trainer does), the factory's own groups, ``ft_adjust_parameter_groups``, then
      ``factory.create``.
    - Non-padding tokens are counted on the device (every ``*attention_mask`` input) and read only when logging or
      saving: the Trainer's own ``include_num_input_tokens_seen`` syncs host and device on every micro-batch. The
      count lands in ``state.num_input_tokens_seen`` (saved with checkpoints, so it survives a resume).
    """

    ft_optimizer: Selection
    ft_adjust_groups: Any  # (groups, model) -> None
    _pending_tokens: Any = None

    def create_optimizer(self, model: Any = None) -> Any:
        if self.optimizer is None:  # type: ignore[has-type]
            model = self.model if model is None else model  # type: ignore[attr-defined]
            args = self.args  # type: ignore[attr-defined]
            defaults = default_param_groups(model, args.weight_decay)
            factory, options = self.ft_optimizer.component, self.ft_optimizer.options
            groups = factory.param_groups(options, model, defaults, args) or defaults
            groups = [g for g in groups if g["params"]]
            self.ft_adjust_groups(groups, model)
            self.optimizer = factory.create(options, groups, args)
        return self.optimizer

    def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        for key, value in inputs.items():
            if key.endswith("attention_mask") and hasattr(value, "sum"):
                count = value.sum()
                self._pending_tokens = count if self._pending_tokens is None else self._pending_tokens + count
        return super().training_step(model, inputs, *args, **kwargs)  # type: ignore[misc]

    def flush_token_count(self) -> None:
        """Add the tokens counted on the device since the last flush to ``state.num_input_tokens_seen``."""
        if self._pending_tokens is not None:
            total = self.accelerator.gather(self._pending_tokens.reshape(1)).sum()  # type: ignore[attr-defined]
            self.state.num_input_tokens_seen += int(total.item())  # type: ignore[attr-defined]
            self._pending_tokens = None

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        self.flush_token_count()
        super().log(logs, *args, **kwargs)  # type: ignore[misc]

    def save_model(self, *args: Any, **kwargs: Any) -> None:
        self.flush_token_count()
        super().save_model(*args, **kwargs)  # type: ignore[misc]


def build_trainer(
    trainer_class: type,
    *,
    optimizer: Selection,
    adjust_groups: Any,
    callbacks: list[Any],
    **kwargs: Any,
) -> Any:
    """A ``trainer_class`` with :class:`FtCoreTrainerMixin` in front, the given callbacks and nothing of the
    Trainer's own printing (the run's events replace it)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    cls = type(f"FtCore{trainer_class.__name__}", (FtCoreTrainerMixin, trainer_class), {})
    cls.ft_optimizer = optimizer
    cls.ft_adjust_groups = staticmethod(adjust_groups)
    trainer = cls(callbacks=callbacks, **kwargs)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer
