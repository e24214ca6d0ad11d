"""``ft-core run``: a thin orchestrator. Config -> plugins -> tokenizer/template -> data -> the stage builds its
trainer -> train (resume, cancel) -> artefact, metrics, manifest.

Everything a user can get wrong (config, names, template, data rows) is checked before the model loads; nothing
in the output folder is ever deleted; the manifest always ends in a true status (completed, failed, cancelled or
interrupted). In a multi-process run only the main process writes outputs, manifest, caches and plots.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ft_core.api.config import RunConfig
from ft_core.api.errors import ConfigError, RunCancelled
from ft_core.api.events import RunEvent
from ft_core.engine.compat import quiet_upstream_warnings
from ft_core.engine.config.loader import load_config
from ft_core.engine.config.validate import validate
from ft_core.engine.data.prepare import PreparedData, prepare_data
from ft_core.engine.plugins import Plugins
from ft_core.engine.run import distributed, output
from ft_core.engine.run.context import EngineRun
from ft_core.engine.run.plot import plot_loss
from ft_core.engine.run.sinks import read_metrics
from ft_core.engine.training.callbacks import read_progress
from ft_core.engine.training.heads import HEADS_FILE, load_heads, save_heads
from ft_core.engine.training.packing import row_lengths


def say(message: str) -> None:
    """A progress line on stderr (main process only)."""
    if distributed.process_info().is_main_process:
        print(f"[ft-core] {message}", file=sys.stderr, flush=True)


def load_and_validate(path: str, overrides: list[str], plugins: Plugins) -> RunConfig:
    """Load, merge and validate a config (the whole of ``ft-core validate``)."""
    from ft_core.engine.training.packing import packing_problems

    raw, sources = load_config(path, overrides)
    config = validate(raw, plugins, sources, str(path))
    problems = packing_problems(config)  # data.packing against the stage and the attention
    if problems:
        raise ConfigError(problems, str(path))
    return config


def _family_record(plugins: Plugins, family: Any, model_type: str) -> dict[str, Any]:
    """(name, distribution, version) of the model family plugin that covers ``model_type``, for the manifest."""
    for registration in plugins.registries["model_family"].values():
        if registration.component is family:
            return {
                "name": registration.name,
                "distribution": registration.distribution,
                "version": registration.version,
                "model_type": model_type,
            }
    say(f"no model family plugin covers model_type {model_type!r}; using generic defaults")
    return {"name": None, "model_type": model_type}


def resolve_inputs(run: EngineRun) -> dict[str, Any]:
    """Tokenizer, model family and (for conversation stages) the checked chat template; returns manifest facts."""
    from transformers import AutoConfig

    from ft_core.engine.models.loader import (
        load_tokenizer,
        loading,
        model_folder,
        require_remote_code_consent,
        resolve_family,
    )
    from ft_core.engine.templates.resolve import apply_template_to_tokenizer, resolve_template

    config, plugins = run.config, run.plugins
    require_remote_code_consent(model_folder(config.model), config.model.trust_remote_code)
    with loading("model", config.model.name_or_path):
        run.tokenizer = load_tokenizer(config.model)
        model_config = AutoConfig.from_pretrained(
            model_folder(config.model), trust_remote_code=config.model.trust_remote_code
        )
    run.family = resolve_family(plugins, model_config)
    pad = run.family.pad_token if run.family is not None else None
    if pad and run.tokenizer.pad_token == run.tokenizer.eos_token and pad in run.tokenizer.get_vocab():
        run.tokenizer.pad_token = pad  # the family's own pad token beats the EOS stand-in
    facts: dict[str, Any] = {"model_family": _family_record(plugins, run.family, model_config.model_type)}
    if config.stage.component.data_kind != "text":
        run.template = resolve_template(plugins, config.template, run.tokenizer, run.family)
        apply_template_to_tokenizer(run.tokenizer, run.template)
        say(f"chat template: {run.template.name} ({run.template.distribution})")
        facts["template"] = {**run.template.manifest(), "system": config.template.system}
    return facts


def prepare_run_data(run: EngineRun) -> PreparedData:
    """The run's preprocessed data: built by the main process (or read from the cache), then by the others."""
    with run.main_process_first():
        prepared = prepare_data(run.config, run.plugins, run.tokenizer, run.template, run.encoder(), say)
    for note in prepared.notes:
        say(note)
    return prepared


@contextmanager
def _cancel_on_signals(run: EngineRun, training: list[bool]) -> Iterator[None]:
    """The first SIGINT / SIGTERM asks for a clean stop (checkpoint kept) once training runs, and stops at once
    before (there is nothing to keep); a second SIGINT interrupts at once. ``training[0]`` says whether training
    has started."""
    previous: dict[int, Any] = {}

    def handle(signum: int, frame: Any) -> None:
        if not training[0]:
            raise RunCancelled("run cancelled before training started; nothing to keep")
        if run.cancel.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        run.cancel.requested = True
        say(
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


def _checkpoint_step(checkpoint: Path) -> int:
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
    if covered == 0 or final_step <= covered:
        return session_loss
    return (total + session_loss * (final_step - covered)) / final_step


def _finish(run: EngineRun, trainer: Any, result: Any, resumed_step: int) -> dict[str, Any]:
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
    if run.process.is_main_process:
        artefact = run_dir / output.ARTEFACT_DIR
        artefact.mkdir(exist_ok=True)
        config.adapter.component.save(trainer.model, str(artefact))
        if run.heads:
            save_heads(run.heads, artefact)
        run.tokenizer.save_pretrained(str(artefact))
        losses = [r["loss"] for r in read_metrics(run_dir) if "loss" in r]
        if losses:
            metrics["final_loss"] = losses[-1]
    run.plugins.hook.ft_after_train(trainer=trainer, run=run, metrics=metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    if run.process.is_main_process and config.training.plot_loss:
        plot_loss(read_metrics(run_dir), run_dir / "loss.png", f"{run_dir.name}: loss")
    return metrics


def run_training(config: RunConfig, plugins: Plugins) -> Path:
    """Run a validated config; return the run folder. Raises :class:`RunCancelled` when the run was cancelled."""
    from ft_core.engine.models.embedded import resolve_model_path
    from ft_core.engine.models.loader import loading
    from ft_core.engine.training.arguments import uses_cpu

    started = time.time()
    quiet_upstream_warnings()
    distributed.init_process_group(uses_cpu(config.training))
    run_dir, checkpoint = output.prepare_run_dir(config)
    run = EngineRun(config, plugins, run_dir)
    main = run.process.is_main_process
    facts: dict[str, Any] = {
        "base_model": {"name_or_path": config.model.name_or_path},
        "process": {"pid": os.getpid(), "host": socket.gethostname()},  # lets `ft-core cancel` see a dead run
    }

    def manifest(status: str, **extra: Any) -> None:
        if main:
            output.write_manifest(
                run_dir, output.build_manifest(config, status, **{**run.facts, **facts}, **extra)
            )

    if main:
        run.cancel.file.unlink(missing_ok=True)  # a request left over from an earlier run of this folder
        changed, kept = output.write_resolved_config(run_dir, config)
        if changed:
            say(
                f"the config differs from the one this folder was trained with ({', '.join(changed)}); "
                f"the previous one is kept as {kept}"
            )
    manifest("running")
    try:
        training = [False]
        with _cancel_on_signals(run, training):
            run.phase("config", f"{config.stage.name} with {config.adapter.name} into {run_dir}")
            with loading("model", config.model.name_or_path):
                facts["base_model"]["path"] = resolve_model_path(
                    config.model.name_or_path, config.model.cache_dir
                )
            facts.update(resolve_inputs(run))
            manifest("running")
            run.phase("data", "preparing the datasets")
            prepared = prepare_run_data(run)
            say(
                f"training rows: {prepared.train.rows}"
                + (f", evaluation rows: {prepared.eval.rows}" if prepared.eval else "")
            )
            # causal-LM rows (not preference pairs): their lengths bound the checkpointing estimate's micro-batch
            if "input_ids" in (prepared.train.dataset.column_names or []):
                run.train_lengths = row_lengths(prepared.train.dataset)
            run.phase("model", "loading the model")
            run.prior_runtime = read_progress(checkpoint)
            eval_dataset = prepared.eval.dataset if prepared.eval else None
            trainer = config.stage.component.build_trainer(run, prepared.train.dataset, eval_dataset)
            plugins.hook.ft_before_train(trainer=trainer, run=run)
            manifest("running")  # with what loading the model decided (attention, checkpointing, ...)
            if checkpoint is not None:
                say(f"resuming from {checkpoint}")
                if run.heads and not load_heads(run.heads, checkpoint):
                    say(f"{checkpoint} holds no {HEADS_FILE}: the stage's heads start afresh")
            run.phase("train", f"{trainer.args.max_steps if trainer.args.max_steps > 0 else 'all'} steps")
            training[0] = True
            result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
            if run.cancel.is_set():
                raise RunCancelled(
                    f"run cancelled at step {trainer.state.global_step}; its checkpoint is kept. Resume it with "
                    f"`ft-core run {run_dir / output.RESOLVED_CONFIG}`"
                )
            run.phase("save", "saving the artefact")
            resumed_step = _checkpoint_step(checkpoint) if checkpoint else 0
            metrics = _finish(run, trainer, result, resumed_step)
    except BaseException as exc:
        status = {RunCancelled: "cancelled", KeyboardInterrupt: "interrupted"}.get(type(exc), "failed")
        reason = str(exc) or ("interrupted (Ctrl-C twice)" if status == "interrupted" else "no message")
        manifest(status, error=f"{type(exc).__name__}: {reason}")
        run.emit(RunEvent(status if status != "interrupted" else "failed", str(run_dir), message=reason))  # type: ignore[arg-type]
        raise
    finally:
        distributed.destroy_process_group()
    facts.update(
        artefact=output.ARTEFACT_DIR, metrics=metrics, resumed_from=str(checkpoint) if checkpoint else None
    )
    manifest("completed")
    run.emit(
        RunEvent("finished", str(run_dir), metrics=metrics, message=f"done in {time.time() - started:.0f} s")
    )
    say(f"results in {run_dir}; chat with it: ft-core chat {run_dir}")
    return run_dir
