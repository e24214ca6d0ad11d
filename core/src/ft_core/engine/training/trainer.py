"""Build a trainer of any ``transformers.Trainer`` subclass (TRL's included) wired to ft-core: the optimizer plugin,
sync-free token counting, the run's callbacks."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ft_core.api.config import Selection
from ft_core.api.modeling import default_param_groups
from ft_core.engine.killpoints import kill_point
from ft_core.engine.storage import incomplete, mark_complete, unmark, write_atomic


class FtCoreTrainerMixin:
    """Mixed in front of the stage's trainer class.

    - The optimizer comes from the optimizer plugin: default parameter groups (weight decay on weights, none on
      biases and norms, as the Trainer does), the factory's own groups, ``ft_adjust_parameter_groups``, then
      ``factory.create``.
    - Non-padding tokens are counted on the device (every ``*attention_mask`` input; all ``input_ids`` of a packed
      batch, which has ``position_ids`` and no mask) and read only when logging or
      saving: the Trainer's own ``include_num_input_tokens_seen`` syncs host and device on every micro-batch. The
      count lands in ``state.num_input_tokens_seen`` (saved with checkpoints, so it survives a resume).
    - The time the loop waits for the data loader (``next()`` on the epoch iterator) is logged as ``data_wait_s``
      (seconds per optimizer step, averaged over the logging interval) and ``data_wait_fraction`` (its share of the
      interval's wall time); the closing summary holds the session's total and share of ``train_runtime``.
    - With parameter groups of different learning rates, each group's rate is logged: ``learning_rate`` (group 0,
      as the Trainer logs it) and ``learning_rate_group1``, ``learning_rate_group2``, ...
    - A checkpoint is marked complete (``ft_core_complete.json``, :mod:`ft_core.engine.storage`) once every process
      saved its part and every ``on_save`` callback (heads, progress) ran; only then are older checkpoints rotated
      out (``save_total_limit``), so a crash while saving always leaves a complete one to resume from. The run
      folder's ``train_results.json``, ``all_results.json`` and ``trainer_state.json`` are written atomically.
      Resumed from a checkpoint of the last step, nothing more is trained (the Trainer would take one more step).
    """

    ft_optimizer: Selection
    ft_adjust_groups: Any  # (groups, model) -> None
    _pending_tokens: Any = None
    ft_data_wait_total: float = 0.0
    _ft_wait_window: float = 0.0
    _ft_window_start: float | None = None
    _ft_window_step: int = 0

    def get_batch_samples(self, epoch_iterator: Any, *args: Any, **kwargs: Any) -> Any:
        if self._ft_window_start is None:
            self._ft_window_start = time.perf_counter()
            self._ft_window_step = self.state.global_step  # type: ignore[attr-defined]
        timed = _TimedIterator(epoch_iterator, self)
        return super().get_batch_samples(timed, *args, **kwargs)  # type: ignore[misc]

    def _data_wait_metrics(self, logs: dict[str, float]) -> None:
        if self._ft_window_start is None:
            return
        if "train_runtime" in logs:  # the closing summary
            logs["data_wait_s"] = round(self.ft_data_wait_total, 4)
            if logs["train_runtime"]:
                logs["data_wait_fraction"] = round(self.ft_data_wait_total / logs["train_runtime"], 4)
        elif "loss" in logs:
            now, step = time.perf_counter(), self.state.global_step  # type: ignore[attr-defined]
            steps, elapsed = step - self._ft_window_step, now - self._ft_window_start
            if steps > 0 and elapsed > 0:
                logs["data_wait_s"] = round(self._ft_wait_window / steps, 6)
                logs["data_wait_fraction"] = round(self._ft_wait_window / elapsed, 4)
            self._ft_wait_window, self._ft_window_start, self._ft_window_step = 0.0, now, step

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

    def training_step(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(inputs, Mapping):  # rows an online-RL trainer generates from (GRPO): no tokens yet
            return super().training_step(model, inputs, *args, **kwargs)  # type: ignore[misc]
        masks = [v for k, v in inputs.items() if k.endswith("attention_mask") and hasattr(v, "sum")]
        ids = inputs.get("input_ids")
        # packed: no padding, no mask
        if not masks and "position_ids" in inputs and ids is not None and hasattr(ids, "numel"):
            masks = [ids >= 0]  # every token; counted on the device like a mask (a host count would sync)
        for value in masks:
            self.ft_count_tokens(value)
        return super().training_step(model, inputs, *args, **kwargs)  # type: ignore[misc]

    def ft_count_tokens(self, mask: Any) -> None:
        """Add the tokens ``mask`` marks to the run's count (tokens/s), summed on the device (a host count would
        sync): the training step counts its batch's attention masks; a trainer whose batch is not what it trains on
        (online RL: the prompts of a rollout) calls this with the mask of the sequences it generated."""
        count = mask.sum()
        self._pending_tokens = count if self._pending_tokens is None else self._pending_tokens + count

    def flush_token_count(self) -> None:
        """Add the tokens counted on the device since the last flush to ``state.num_input_tokens_seen``."""
        if self._pending_tokens is not None:
            total = self.accelerator.gather(self._pending_tokens.reshape(1)).sum()  # type: ignore[attr-defined]
            self.state.num_input_tokens_seen += int(total.item())  # type: ignore[attr-defined]
            self._pending_tokens = None

    def _get_learning_rate(self) -> Any:
        """The Trainer's logged rate (group 0's, taken when the step ran); every group's rate at the same moment is
        kept for :meth:`_group_learning_rates`."""
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None:
            self._ft_group_rates = [group["lr"] for group in optimizer.param_groups]
        return super()._get_learning_rate()  # type: ignore[misc]

    def _group_learning_rates(self, logs: dict[str, float]) -> None:
        """Next to the Trainer's ``learning_rate`` (group 0's), ``learning_rate_group<i>`` for every other group
        when the groups' rates differ — taken at the same moment as ``learning_rate``."""
        rates = [
            rate.item() if hasattr(rate, "item") else rate for rate in getattr(self, "_ft_group_rates", [])
        ]
        if "learning_rate" in logs and len(set(rates)) > 1:
            for index, rate in enumerate(rates[1:], start=1):
                logs[f"learning_rate_group{index}"] = rate

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        self.flush_token_count()
        self._data_wait_metrics(logs)
        self._group_learning_rates(logs)
        super().log(logs, *args, **kwargs)  # type: ignore[misc]

    def save_model(self, *args: Any, **kwargs: Any) -> None:
        self.flush_token_count()
        super().save_model(*args, **kwargs)  # type: ignore[misc]

    # ---------------------------------------------------------------- checkpoints a crash never leaves half-read
    _ft_saving: Path | None = None

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"  # type: ignore[attr-defined]
        if self.args.should_save:  # type: ignore[attr-defined]
            unmark(folder)  # saving over an earlier checkpoint of this step: not complete until marked again
        limit = self.args.save_total_limit  # type: ignore[attr-defined]
        self.args.save_total_limit = None  # type: ignore[attr-defined]  # rotated once this one is complete
        try:
            super()._save_checkpoint(model, trial)  # type: ignore[misc]
        finally:
            self.args.save_total_limit = limit  # type: ignore[attr-defined]
        kill_point("checkpoint.saved")
        self._ft_saving = folder

    def _run_epoch(self, *args: Any, **kwargs: Any) -> None:
        state = self.state  # type: ignore[attr-defined]
        if (
            0 < state.max_steps <= state.global_step
        ):  # resumed from the last step's checkpoint: nothing to train
            self.control.should_training_stop = True  # type: ignore[attr-defined]  # (the Trainer would do one more)
            return
        super()._run_epoch(*args, **kwargs)  # type: ignore[misc]

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        kill_point("checkpoint.weights")  # the weights are saved, the optimizer not yet
        super()._save_optimizer_and_scheduler(output_dir)  # type: ignore[misc]

    def _maybe_log_save_evaluate(self, *args: Any, **kwargs: Any) -> None:
        super()._maybe_log_save_evaluate(*args, **kwargs)  # type: ignore[misc]
        if self._ft_saving is not None:  # saved, and the callbacks' on_save ran: complete
            folder, self._ft_saving = self._ft_saving, None
            self.accelerator.wait_for_everyone()  # type: ignore[attr-defined]  # every process wrote its part
            if self.args.should_save:  # type: ignore[attr-defined]
                mark_complete(folder)
                self._ft_rotate(folder)

    def _ft_rotate(self, newest: Path) -> None:
        """Delete checkpoints beyond ``save_total_limit``: the oldest complete ones (never the best one) and the
        incomplete ones older than ``newest``; each is unmarked before it is deleted."""
        limit = self.args.save_total_limit  # type: ignore[attr-defined]
        if not limit or limit <= 0:
            return
        from ft_core.engine.training.callbacks import checkpoints

        best = self.state.best_model_checkpoint  # type: ignore[attr-defined]
        keep = {newest.resolve(), *([Path(best).resolve()] if best else [])}
        others = [
            (step, folder) for step, folder in checkpoints(newest.parent) if folder.resolve() not in keep
        ]
        complete = [folder for _, folder in others if incomplete(folder) is None]
        excess = complete[: max(0, len(complete) - max(limit - len(keep), 0))]
        newest_step = self.state.global_step  # type: ignore[attr-defined]
        stale = [folder for step, folder in others if step < newest_step and folder not in complete]
        for folder in excess + stale:
            unmark(folder)
            kill_point("checkpoint.rotating")
            shutil.rmtree(folder, ignore_errors=True)

    def save_metrics(self, split: str, metrics: dict[str, Any], combined: bool = True) -> None:
        """The Trainer's ``<split>_results.json`` (and ``all_results.json``), written atomically."""
        if not self.is_world_process_zero():  # type: ignore[attr-defined]
            return
        folder = Path(self.args.output_dir)  # type: ignore[attr-defined]
        write_atomic(folder / f"{split}_results.json", json.dumps(metrics, indent=4, sort_keys=True))
        if combined:
            combined_path = folder / "all_results.json"
            try:
                earlier = json.loads(combined_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):  # none yet, or cut short by a crash
                earlier = {}
            earlier = earlier if isinstance(earlier, dict) else {}
            write_atomic(combined_path, json.dumps({**earlier, **metrics}, indent=4, sort_keys=True))

    def save_state(self) -> None:
        """The Trainer's final ``trainer_state.json``, written atomically."""
        if self.is_world_process_zero():  # type: ignore[attr-defined]
            text = json.dumps(dataclasses.asdict(self.state), indent=2, sort_keys=True) + "\n"  # type: ignore[attr-defined]
            write_atomic(Path(self.args.output_dir) / "trainer_state.json", text)  # type: ignore[attr-defined]


class _TimedIterator:
    """Adds the time each ``next()`` of ``iterator`` takes to the trainer's data-wait counters."""

    def __init__(self, iterator: Iterator[Any], trainer: FtCoreTrainerMixin) -> None:
        self.iterator, self.trainer = iterator, trainer

    def __iter__(self) -> _TimedIterator:
        return self

    def __next__(self) -> Any:
        started = time.perf_counter()
        try:
            return next(self.iterator)
        finally:
            waited = time.perf_counter() - started
            self.trainer.ft_data_wait_total += waited
            self.trainer._ft_wait_window += waited


def build_trainer(
    trainer_class: type,
    *,
    optimizer: Selection,
    adjust_groups: Any,
    callbacks: list[Any],
    mixins: tuple[type, ...] = (),
    attributes: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """A ``trainer_class`` with :class:`FtCoreTrainerMixin` (and ``mixins``, e.g. packing's, with their class
    ``attributes``) in front, the given callbacks and nothing of the Trainer's own printing (the run's events
    replace it)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    bases = (*mixins, FtCoreTrainerMixin, trainer_class)
    namespace = {
        **(attributes or {}),
        "ft_optimizer": optimizer,
        "ft_adjust_groups": staticmethod(adjust_groups),
    }
    cls = type(f"FtCore{trainer_class.__name__}", bases, namespace)
    trainer = cls(callbacks=callbacks, **kwargs)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer
