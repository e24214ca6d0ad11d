"""The end of a run and what happens around its training loop: signals that cancel it cleanly, the resume point,
and the final metrics, artefact and plot."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ft_core.api.errors import RunCancelled
from ft_core.engine.run import output
from ft_core.engine.run.context import EngineRun
from ft_core.engine.run.plot import plot_loss
from ft_core.engine.run.sinks import read_metrics
from ft_core.engine.storage import atomic_folder
from ft_core.engine.training.heads import save_heads
from ft_core.engine.training.memory_budget import over_budget, peak_gib


@contextmanager
def cancel_on_signals(run: EngineRun, training: list[bool]) -> Iterator[None]:
    """The first SIGINT / SIGTERM asks for a clean stop (checkpoint kept) once training runs, and stops at once
    before (there is nothing to keep); a second SIGINT interrupts at once. ``training[0]`` says whether training
    has started."""
    previous: dict[signal.Signals, Any] = {}

    def handle(signum: int, frame: Any) -> None:
        if not training[0]:
            raise RunCancelled("run cancelled before training started; nothing to keep")
        if run.cancel.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        run.cancel.requested = True
        run.say(
            "cancelling: the run stops after this optimizer step and keeps a checkpoint (Ctrl-C again to abort)"
        )

    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handle)
    except ValueError:  # not the main thread: no signal handling
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a checkpoint was saved at (from its ``trainer_state.json``)."""
    return int(json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["global_step"])


def _whole_run_loss(
    log_history: list[dict[str, Any]], resumed_step: int, session_loss: float, final_step: int
) -> float:
    """Mean training loss over the whole run: logged losses up to the resume point (weighted by the steps each
    covers) and this session's mean loss for the rest."""
    covered, total, last = 0, 0.0, 0
    for record in log_history:
        step = record.get("step", 0)
        if "loss" in record and step <= resumed_step:
            total += record["loss"] * (step - last)
            covered, last = step, step
    if covered == 0:
        return session_loss
    if final_step <= covered:  # resumed from the last checkpoint: nothing left to train
        return total / covered
    return (total + session_loss * (final_step - covered)) / final_step


@contextmanager
def gathered_weights(trainer: Any, heads: dict[str, Any]) -> Iterator[None]:
    """Under a sharding engine (FSDP, DeepSpeed) every process joins in gathering the whole state dict (full
    tensors, on the CPU of the main process); while the block runs, ``state_dict()`` of the model and of each custom
    head returns its part of it, so that ``save_pretrained`` (what adapter methods call) and the heads' file hold
    whole weights: a plain Hugging Face folder."""
    if not (getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False)):
        yield
        return
    state = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    paths = {id(module): path for path, module in trainer.model.named_modules()}
    views = {trainer.model: state}
    for head in heads.values():
        prefix = f"{paths.get(id(head), '')}."
        views[head] = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    for module, view in views.items():
        module.__dict__["state_dict"] = lambda *args, _view=view, **kwargs: _view
    try:
        yield
    finally:
        for module in views:
            module.__dict__.pop("state_dict", None)


def finish(run: EngineRun, trainer: Any, result: Any, resumed_step: int) -> dict[str, Any]:
    """Final metrics (whole-run loss and runtime after a resume, tokens/s), the artefact with its heads and tokenizer,
    the active plugins' ``ft_after_train``, ``train_results.json`` and the loss plot."""
    config, run_dir = run.config, run.run_dir
    trainer.flush_token_count()
    metrics = dict(result.metrics)
    session_runtime = metrics.get("train_runtime") or 0.0
    if resumed_step:
        metrics["train_loss"] = _whole_run_loss(
            trainer.state.log_history, resumed_step, metrics.get("train_loss", 0.0), trainer.state.global_step
        )
        metrics["train_runtime"] = round(run.prior_runtime + session_runtime, 4)
        metrics["session_train_runtime"] = session_runtime
    tokens = trainer.state.num_input_tokens_seen
    if tokens and metrics.get("train_runtime"):
        metrics["effective_tokens_per_sec"] = round(tokens / metrics["train_runtime"], 2)
        metrics["num_input_tokens_seen"] = tokens
    peak = peak_gib()
    if peak is not None:
        metrics["peak_gpu_memory_gib"] = peak
        warning = over_budget(config.training.memory_budget, peak, run.process.local_rank)
        if warning:
            run.say(warning)
    with gathered_weights(trainer, run.heads):
        if run.process.is_main_process:
            # written whole under a temporary name, then put in place of an earlier attempt's
            with atomic_folder(
                run_dir / output.ARTEFACT_DIR, replace=True, point="artefact.written"
            ) as artefact:
                config.adapter.component.save(trainer.model, str(artefact))
                if run.heads:
                    save_heads(run.heads, artefact)
                run.tokenizer.save_pretrained(str(artefact))
            losses = [r["loss"] for r in read_metrics(run_dir) if "loss" in r]
            if losses:
                metrics["final_loss"] = losses[-1]
    run.hooks.ft_after_train(trainer=trainer, run=run, metrics=metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    if run.process.is_main_process and config.training.plot_loss:
        plot_loss(read_metrics(run_dir), run_dir / "loss.png", f"{run_dir.name}: loss")
    return metrics
