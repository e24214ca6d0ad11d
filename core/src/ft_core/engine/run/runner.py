"""``ft-core run``, top to bottom: config -> run plan (tokenizer, template, data, decisions) -> the stage builds its
trainer -> train (resume, cancel) -> artefact, metrics, manifest.

Everything a user can get wrong (config, names, template, data rows) is checked before any weights load; nothing
in the output folder is ever deleted; the manifest always ends in a true status (completed, failed, cancelled or
interrupted). In a multi-process run only the main process writes outputs, manifest, caches and plots.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ft_core.api.config import RunConfig
from ft_core.api.errors import RunCancelled
from ft_core.api.events import RunEvent
from ft_core.engine.compat import quiet_upstream_warnings
from ft_core.engine.config.activation import ActiveHooks, active_plugins
from ft_core.engine.config.loader import load_config, with_interpolations
from ft_core.engine.config.validate import validate
from ft_core.engine.plugins import Plugins
from ft_core.engine.run import distributed, output
from ft_core.engine.run.context import EngineRun
from ft_core.engine.run.finish import cancel_on_signals, checkpoint_step, finish
from ft_core.engine.run.lock import holding_output_dir
from ft_core.engine.run.plan import build_plan, say
from ft_core.engine.run.sinks import drop_partial_record
from ft_core.engine.training.callbacks import read_progress
from ft_core.engine.training.heads import HEADS_FILE, load_heads


def load_and_validate(
    path: str, overrides: list[str], plugins: Plugins, *, inputs: bool = False
) -> RunConfig:
    """Load, merge and validate a config against every rule (``inputs``: also the tokenizer's files and the data
    rows, as ``ft-core validate`` does)."""
    from_env: dict[str, str] = {}
    raw, sources = load_config(path, overrides, from_env=from_env)
    config = validate(raw, plugins, sources, str(path), inputs=inputs)
    # what the run folder keeps (config.yaml, loggers): values read from the environment stay `${oc.env:...}`
    config.raw = with_interpolations(config.raw, from_env)
    return config


@holding_output_dir  # one run per folder (ft_core.engine.run.lock)
def run_training(config: RunConfig, plugins: Plugins) -> Path:
    """Run a validated config; return the run folder. Raises :class:`RunCancelled` when the run was cancelled."""
    from ft_core.engine.training.arguments import uses_cpu

    started = time.time()
    quiet_upstream_warnings()
    distributed.init_process_group(uses_cpu(config.training))
    run_dir, checkpoint = output.prepare_run_dir(config)
    main = distributed.process_info().is_main_process
    facts: dict[str, Any] = {
        "base_model": {
            "name_or_path": config.model.name_or_path,
            # what the config allows beyond the safe defaults: running the model's code, unpickling its weights
            **{key: True for key in ("trust_remote_code", "allow_pickle") if getattr(config.model, key)},
        },
    }
    run: EngineRun | None = None

    def manifest(status: str, **extra: Any) -> None:
        if main:
            known = run.manifest_facts() if run is not None else {}
            output.write_manifest(run_dir, output.build_manifest(config, status, **known, **facts, **extra))

    if main:
        output.start_run_dir(run_dir, config)
        drop_partial_record(run_dir)
    manifest("running")
    # the plugins the config activates, until the plan names every active one
    hooks: Any = ActiveHooks(plugins, active_plugins(config, plugins))

    def progress(phase: str, message: str) -> None:
        if main:
            hooks.ft_run_event(event=RunEvent("phase", str(run_dir), phase=phase, message=message))

    try:
        progress("config", f"{config.stage.name} with {config.adapter.name} into {run_dir}")
        plan, prepared = build_plan(config, plugins, progress=progress)
        assert prepared is not None
        facts["base_model"]["path"] = plan.model_path
        run = EngineRun(plan, plugins, run_dir, prior_runtime=read_progress(checkpoint))
        hooks = run.hooks
        say(
            f"training rows: {'streamed' if prepared.train.streamed else prepared.train.rows}"
            + (f", evaluation rows: {prepared.eval_rows}" if prepared.eval_rows is not None else "")
        )
        manifest("running")
        training = [False]
        with cancel_on_signals(run, training):
            progress("model", "loading the model")
            eval_dataset = prepared.eval_dataset()
            trainer = config.stage.component.build_trainer(run, prepared.train.dataset, eval_dataset)
            hooks.ft_before_train(trainer=trainer, run=run)
            manifest("running")  # with what loading the model decided
            if checkpoint is not None:
                say(f"resuming from {checkpoint}")
                if run.heads and not load_heads(run.heads, checkpoint):
                    say(f"{checkpoint} holds no {HEADS_FILE}: the stage's heads start afresh")
            progress("train", f"{trainer.args.max_steps if trainer.args.max_steps > 0 else 'all'} steps")
            training[0] = True
            result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
            if run.cancel.is_set():
                raise RunCancelled(
                    f"run cancelled at step {trainer.state.global_step}; its checkpoint is kept. Resume it with "
                    f"`ft-core run {run_dir / output.RESOLVED_CONFIG}`"
                )
            progress("save", "saving the artefact")
            metrics = finish(run, trainer, result, checkpoint_step(checkpoint) if checkpoint else 0)
    except BaseException as exc:
        status = {RunCancelled: "cancelled", KeyboardInterrupt: "interrupted"}.get(type(exc), "failed")
        failure = output.write_failure(exc, run_dir)  # a full or read-only disk: said clearly
        shown = failure or exc
        reason = str(shown) or ("interrupted (Ctrl-C twice)" if status == "interrupted" else "no message")
        try:
            manifest(status, error=f"{type(shown).__name__}: {reason}")
        except OSError as unwritten:  # the disk that failed the save may refuse the manifest too
            say(f"cannot record the {status} status in {run_dir / output.MANIFEST}: {unwritten}")
        if run is not None:
            run.emit(RunEvent(status if status != "interrupted" else "failed", str(run_dir), message=reason))  # type: ignore[arg-type]
        if failure is not None:
            raise failure from exc
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
    for line in config.stage.component.next_steps(str(run_dir), config.stage.options):
        say(line)
    return run_dir
