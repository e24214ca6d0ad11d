"""``ft-core run``: config -> plugins -> data -> model -> train -> artefacts, in that order.

Everything a user can get wrong (config, plugin names, template, data rows) is checked before the model
loads; nothing in the output folder is ever deleted.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from ft_core.compat import quiet_upstream_warnings
from ft_core.config.loader import load_config
from ft_core.config.validate import RunConfig, validate
from ft_core.plugins import Plugins, build_plugins
from ft_core.run import output
from ft_core.run.callbacks import console_callback, jsonl_callback, read_metrics
from ft_core.run.context import RunContext
from ft_core.run.plot import plot_loss


def say(message: str) -> None:
    print(f"[ft-core] {message}", file=sys.stderr, flush=True)


def load_and_validate(
    path: str, overrides: list[str], plugins: Plugins | None = None
) -> tuple[RunConfig, Plugins]:
    """Load, merge and validate a config (the whole of ``ft-core validate``)."""
    plugins = plugins or build_plugins()
    raw, sources = load_config(path, overrides)
    return validate(raw, plugins, sources), plugins


def _tokenizer_digest(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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


def _prepare_data(ctx: RunContext) -> tuple[Any, Any]:
    """Read, convert, split and tokenize the datasets (cached by content hash)."""
    from ft_core.data.cache import cached
    from ft_core.data.loader import dataset_fingerprint, load_samples, split_validation
    from ft_core.data.spec import resolve_datasets

    config = ctx.config
    data, stage = config.data, config.stage
    kind = stage.component.data_kind
    key_common = {
        "ft_core": output.distribution_version("ft-core"),
        "stage": [stage.name, stage.distribution, stage.version, repr(stage.options)],
        "tokenizer": _tokenizer_digest(ctx.tokenizer),
        "template": ctx.template.jinja if ctx.template is not None else None,
        "system": config.template.system,
        "options": [data.cutoff_len, data.train_on_prompt, data.mask_history, data.max_samples],
    }

    loaded: dict[tuple[str, ...], list[Any]] = {}

    def samples_of(names: list[str], split: str | None) -> list[Any]:
        if tuple(names) not in loaded:  # read each file once, even when both splits are rebuilt
            loaded[tuple(names)] = load_samples(names, data, ctx.plugins, kind, config.training.seed)
        samples = loaded[tuple(names)]
        if split is None:
            return samples
        train, evaluation = split_validation(samples, data.val_size, config.training.seed)
        return train if split == "train" else evaluation

    def tokenized(names: list[str], role: str, split: str | None = None) -> Any:
        def build() -> list[dict[str, Any]]:
            samples = samples_of(names, split)
            say(f"tokenizing {len(samples)} {role} samples")
            return stage.component.tokenize(ctx, samples)

        specs = resolve_datasets(names, data.dataset_dir)
        key = {
            **key_common,
            "data": dataset_fingerprint(specs),
            "split": [split, data.val_size, config.training.seed],
        }
        return cached(key, build, data.cache_dir, data.overwrite_cache)

    if data.eval_dataset:
        return tokenized(data.dataset, "training"), tokenized(data.eval_dataset, "evaluation")
    if data.val_size > 0:
        return tokenized(data.dataset, "training", "train"), tokenized(data.dataset, "evaluation", "eval")
    return tokenized(data.dataset, "training"), None


def _prepare_template(ctx: RunContext) -> None:
    from ft_core.templates.resolve import apply_template_to_tokenizer, resolve_template

    ctx.template = resolve_template(ctx.plugins, ctx.config.template, ctx.tokenizer, ctx.family)
    apply_template_to_tokenizer(ctx.tokenizer, ctx.template)
    say(f"chat template: {ctx.template.name} ({ctx.template.distribution})")


def _load_model(ctx: RunContext) -> None:
    from transformers import set_seed

    from ft_core.models.loader import choose_dtype, load_model, prepare_for_training

    config = ctx.config
    set_seed(config.training.seed)  # adapter initialisation is random: same seed, same run
    adapter = config.one("adapter")
    assert adapter is not None
    dtype = choose_dtype(config.model, config.training.precision, config.training.use_cpu)
    model = load_model(
        config.model,
        dtype=dtype,
        quantizer=config.one("quantization"),
        patches=config.many("patches"),
        for_training=True,
    )
    prepare_for_training(model, config.training.gradient_checkpointing)
    ctx.model = adapter.component.apply(model, adapter.options, ctx.family)


def _finish(ctx: RunContext, trainer: Any, train_result: Any, started: float) -> dict[str, Any]:
    config, run_dir = ctx.config, ctx.run_dir
    adapter = config.one("adapter")
    assert adapter is not None
    artefact = run_dir / output.ARTEFACT_DIR
    artefact.mkdir(exist_ok=True)
    adapter.component.save(trainer.model, str(artefact))
    ctx.tokenizer.save_pretrained(str(artefact))
    metrics = dict(train_result.metrics)
    tokens = trainer.state.num_input_tokens_seen
    runtime = metrics.get("train_runtime") or (time.time() - started)
    if tokens:
        metrics["effective_tokens_per_sec"] = round(tokens / runtime, 2)
        metrics["num_input_tokens_seen"] = tokens
    losses = [r["loss"] for r in read_metrics(run_dir) if "loss" in r]
    if losses:
        metrics["final_loss"] = losses[-1]
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    if config.training.plot_loss:
        plot_loss(read_metrics(run_dir), run_dir / "loss.png", f"{run_dir.name}: loss")
    return metrics


def run_training(config: RunConfig, plugins: Plugins) -> Path:
    """Run a validated config; return the run folder."""
    from ft_core.models.embedded import resolve_model_path
    from ft_core.models.loader import load_tokenizer, resolve_family

    started = time.time()
    quiet_upstream_warnings()
    run_dir, checkpoint = output.prepare_run_dir(config)
    changed = output.write_resolved_config(run_dir, config)
    if changed:
        say(
            f"the config differs from the one this folder was trained with ({', '.join(changed)}); "
            "the previous one is kept as config.<n>.yaml"
        )
    stage = config.stage
    base_path = resolve_model_path(config.model.name_or_path, config.model.cache_dir)
    facts: dict[str, Any] = {"base_model": {"name_or_path": config.model.name_or_path, "path": base_path}}
    output.write_manifest(run_dir, output.build_manifest(config, "running", **facts))

    ctx = RunContext(config=config, plugins=plugins, run_dir=run_dir)
    ctx.tokenizer = load_tokenizer(config.model)
    from transformers import AutoConfig

    model_config = AutoConfig.from_pretrained(base_path, trust_remote_code=config.model.trust_remote_code)
    ctx.family = resolve_family(plugins, model_config)
    facts["model_family"] = _family_record(plugins, ctx.family, model_config.model_type)
    if stage.component.data_kind == "conversation":
        _prepare_template(ctx)
        facts["template"] = {**ctx.template.manifest(), "system": config.template.system}
    train_dataset, eval_dataset = _prepare_data(ctx)
    say(
        f"training rows: {len(train_dataset)}"
        + (f", evaluation rows: {len(eval_dataset)}" if eval_dataset else "")
    )
    _load_model(ctx)

    callbacks = [console_callback(), jsonl_callback(run_dir)]
    for logger in config.many("loggers"):
        callbacks.append(logger.component.callback(logger.options, str(run_dir)))
    trainer = stage.component.build_trainer(ctx, train_dataset, eval_dataset, callbacks)
    if checkpoint is not None:
        say(f"resuming from {checkpoint}")
    try:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except BaseException as exc:
        output.write_manifest(run_dir, output.build_manifest(config, "interrupted", error=repr(exc), **facts))
        raise
    metrics = _finish(ctx, trainer, result, started)
    facts.update(
        artefact=output.ARTEFACT_DIR, metrics=metrics, resumed_from=str(checkpoint) if checkpoint else None
    )
    output.write_manifest(run_dir, output.build_manifest(config, "completed", **facts))
    say(f"done in {time.time() - started:.0f} s; results in {run_dir}")
    say(f"chat with it: ft-core chat {run_dir}")
    return run_dir
