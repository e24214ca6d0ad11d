"""Trainer callbacks of every run: trainer progress as run events, cooperative cancellation, and the run's
checkpointing plan kept in place."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ft_core.api.events import RunEvent

_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
#: A file whose presence asks a run to stop at the next optimizer step (``ft-core cancel RUN_DIR`` writes it).
CANCEL_FILE = "CANCEL"


def checkpoint_folder(args: Any, state: Any) -> Path:
    """The folder the Trainer saves the checkpoint of the current step into."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    return Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Every ``checkpoint-<step>`` folder of ``run_dir`` (complete or not), by step."""
    found = []
    if run_dir.is_dir():
        for child in run_dir.iterdir():
            match = _CHECKPOINT_RE.match(child.name)
            if match and child.is_dir():
                found.append((int(match.group(1)), child))
    return sorted(found)


def event_callback(emit: Callable[[RunEvent], None], run_dir: Path) -> Any:
    """A ``TrainerCallback`` that turns the trainer's logs and saves into ``step`` / ``eval`` / ``checkpoint`` events
    (with tokens/s and ETA), on the main process only."""
    from transformers import TrainerCallback

    class EventCallback(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.monotonic()
            self.first_step = 0
            self.first_tokens = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.monotonic()
            self.first_step = state.global_step
            self.first_tokens = state.num_input_tokens_seen

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not state.is_world_process_zero:
                return
            elapsed = time.monotonic() - self.started
            done = state.global_step - self.first_step
            metrics = {k: v for k, v in logs.items() if k != "total_flos"}
            kind = "eval" if any(k.startswith("eval_") for k in logs) else "step"
            if kind == "step" and done and elapsed > 0 and "train_runtime" not in logs:
                tokens = state.num_input_tokens_seen - self.first_tokens
                if tokens:
                    metrics["tokens_per_sec"] = round(tokens / elapsed, 2)
                metrics["eta_s"] = round(elapsed / done * max(state.max_steps - state.global_step, 0), 1)
            emit(
                RunEvent(
                    kind, str(run_dir), step=state.global_step, max_steps=state.max_steps, metrics=metrics
                )
            )

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                folder = checkpoint_folder(args, state)
                emit(
                    RunEvent(
                        "checkpoint",
                        str(run_dir),
                        step=state.global_step,
                        max_steps=state.max_steps,
                        message=str(folder),
                    )
                )

    return EventCallback()


class CancelRequest:
    """A run's cancellation flag: set by a signal handler or found as ``RUN_DIR/CANCEL``."""

    def __init__(self, run_dir: Path) -> None:
        self.file = run_dir / CANCEL_FILE
        self.requested = False

    def is_set(self) -> bool:
        """Whether cancellation was asked for (flag or file)."""
        return self.requested or self.file.exists()


def control_callback(request: CancelRequest) -> Any:
    """A ``TrainerCallback`` deciding when to checkpoint and stop.

    Once cancellation is asked for, it saves a checkpoint at the end of the current optimizer step and stops
    training (every process sees the same decision: the flag is gathered). At the last step it saves only when
    ``save_steps`` says so: the Trainer would always checkpoint there, but the run saves its artefact right after,
    so that checkpoint would only cost time (inside ``train_runtime``) and disk.
    """
    from transformers import TrainerCallback

    class ControlCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if _any_process(request.is_set()):
                control.should_save = True
                control.should_training_stop = True
            elif state.global_step >= state.max_steps and state.global_step % max(state.save_steps, 1):
                control.should_save = False
            return control

    return ControlCallback()


def _any_process(flag: bool) -> bool:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    import torch

    value = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        value = value.cuda()
    dist.all_reduce(value)
    return bool(value.item() > 0)


#: Written into every checkpoint: the training time spent up to it, so a resumed run reports its whole runtime.
PROGRESS_FILE = "ft_core_progress.json"


def read_progress(checkpoint: Path | None) -> float:
    """Training seconds spent before ``checkpoint`` (0 when there is none or it predates this file)."""
    import json

    path = checkpoint / PROGRESS_FILE if checkpoint is not None else None
    if path is None or not path.is_file():
        return 0.0
    return float(json.loads(path.read_text(encoding="utf-8")).get("train_runtime", 0.0))


def progress_callback(prior_seconds: float) -> Any:
    """A ``TrainerCallback`` writing :data:`PROGRESS_FILE` into each checkpoint (main process)."""
    import json

    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.monotonic()

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.monotonic()

        def on_save(self, args, state, control, **kwargs):
            folder = checkpoint_folder(args, state)
            if state.is_world_process_zero and folder.is_dir():
                seconds = prior_seconds + time.monotonic() - self.started
                (folder / PROGRESS_FILE).write_text(json.dumps({"train_runtime": seconds}), encoding="utf-8")

    return ProgressCallback()


def checkpointing_callback(plan: Any, say: Callable[[str], None] | None = None) -> Any:
    """A ``TrainerCallback`` for the run's checkpointing ``plan`` (a
    :class:`~ft_core.engine.training.checkpointing.CheckpointingPlan`, enabled).

    At the start of ``train()`` it re-applies what the Trainer undoes when it turns checkpointing on again (it
    replaces each layer's checkpoint function, releases without ``every_n_layers`` mark every layer, and input
    gradients come back on): selective checkpointing, offloading and input gradients for reentrant checkpoints
    only. Idempotent. With the plan's ``per_batch`` costs, while the Trainer's own checkpointing is on (a plugin
    such as Unsloth's may run its own instead), it chooses checkpointing per forward pass
    (:mod:`~ft_core.engine.training.batch_checkpointing`), tells it where micro-steps end, and ``say`` s at the end
    how many passes ran under each option."""
    from transformers import TrainerCallback

    from ft_core.api.components import has_fused_loss
    from ft_core.engine.models.loader import base_model, checkpoint_every_nth_layer, set_input_grads
    from ft_core.engine.models.offload import offload_checkpoints
    from ft_core.engine.training import batch_checkpointing

    class CheckpointingCallback(TrainerCallback):
        switcher: Any = None

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if model is None:
                return
            checkpoint_every_nth_layer(model, plan.every_n_layers)
            if plan.offload:
                offload_checkpoints(model)
            set_input_grads(model, reentrant=plan.reentrant)
            ours = getattr(args, "gradient_checkpointing", True) is not False
            if plan.per_batch is not None and ours:
                base = base_model(model)
                self.switcher = batch_checkpointing.install(
                    base, plan.per_batch, fallback=plan.every_n_layers, fused_loss=has_fused_loss(base)
                )

        def on_step_begin(self, args, state, control, **kwargs):
            if self.switcher is not None:
                self.switcher.next_micro_step()

        on_substep_end = on_step_begin

        def on_train_end(self, args, state, control, **kwargs):
            if self.switcher is not None and say is not None:
                say(self.switcher.summary())

    return CheckpointingCallback()
