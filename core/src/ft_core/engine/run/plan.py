"""Build the frozen :class:`~ft_core.api.plan.RunPlan` of a validated config: model folder, tokenizer, model family,
chat template, active plugins, prepared data and every engine decision with its reason — all before any weights
load. ``ft-core plan``, ``prepare`` and ``run`` build it with :func:`build_plan`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from ft_core.api.config import RunConfig
from ft_core.api.context import Encoder, ProcessInfo, ResolvedTemplate
from ft_core.api.descriptors import ModelFamily
from ft_core.api.plan import DataStats, Decision, RunPlan
from ft_core.engine.config.activation import active_plugins, idle_hook_plugins
from ft_core.engine.config.rules import can_pack, family_name
from ft_core.engine.data.prepare import PreparedData, prepare_data
from ft_core.engine.plugins import Plugins
from ft_core.engine.run import distributed
from ft_core.engine.templates.encoder import TemplateEncoder

logger = logging.getLogger(__name__)


def say(message: str) -> None:
    """A progress line (main process only)."""
    if distributed.process_info().is_main_process:
        logger.info(message)


def make_encoder(
    config: RunConfig,
    plugins: Plugins,
    tokenizer: Any,
    template: ResolvedTemplate | None,
    family: ModelFamily | None,
    folder: str,
) -> Encoder:
    """The run's encoder: its tokenizer and template, the data options, and image handling for vision families."""
    from ft_core.engine.vision import vision_encoding

    data = config.data
    pieces = SimpleNamespace(family=family, template=template, plugins=plugins, config=config)
    return TemplateEncoder(
        tokenizer=tokenizer,
        jinja=template.jinja if template is not None else None,
        cutoff_len=data.cutoff_len,
        train_on_prompt=data.train_on_prompt,
        mask_history=data.mask_history,
        preserve_thinking=data.preserve_thinking,
        system=config.template.system,
        template_name=template.name if template is not None else None,
        prefix_stable=template.prefix_stable if template is not None else True,
        template_kwargs=dict(template.template_kwargs) if template is not None else {},
        vision=vision_encoding(pieces, folder) if family is not None else None,
    )


def _family_record(plugins: Plugins, family: ModelFamily | None, model_type: str) -> dict[str, Any]:
    name = family_name(plugins, family)
    if name is None:
        say(f"no model family plugin covers model_type {model_type!r}; using generic defaults")
        return {"name": None, "model_type": model_type}
    registration = plugins.registration("model_family", name)
    return {
        "name": name,
        "distribution": registration.distribution,
        "version": registration.version,
        "model_type": model_type,
    }


def _data_stats(prepared: PreparedData) -> tuple[DataStats, tuple[int, ...]]:
    """The statistics of prepared data, and the longest sequence of each training row (causal-LM rows, and the
    prompt plus its longest answer for preference / unpaired rows)."""
    from ft_core.engine.training.packing import sequence_lengths

    train = prepared.train
    # a stream is never read whole
    lengths = () if train.streamed else tuple(sequence_lengths(train.dataset))
    stats = DataStats(
        train_rows=train.rows,
        train_tokens=train.tokens,
        longest_row=max(lengths, default=0),
        eval_rows=prepared.eval_rows,
        eval_tokens=prepared.eval_tokens,
        from_cache=train.cached,
    )
    return stats, lengths


def _packing_decision(config: RunConfig, on_gpu: bool, attention: str | None) -> Decision:
    """What the config and the device say about packing; the trainer confirms it against the loaded model."""
    setting, stage = config.data.packing, config.stage
    if setting is False:
        return Decision("off", "data.packing: false")
    if getattr(config.data, "streaming", False):
        return Decision("off", "data.streaming: packing needs every row's length up front")
    if not can_pack(stage.component):
        return Decision("off", f"the {stage.name} stage keeps its own batches")
    if setting is True:
        return Decision("on", "data.packing: true")
    if not on_gpu:
        return Decision("off", "auto packs on GPU runs only (data.packing: true packs here too)")
    if attention == "eager":
        return Decision("off", "auto does not pack with eager attention")
    return Decision(
        "auto", f"packs with {attention or 'the default attention'} if the model can keep rows apart"
    )


def _processes(config: RunConfig, process: ProcessInfo) -> int:
    """The run's process count: the launcher's, or what ``distributed.nproc`` will start (``ft-core plan``)."""
    from ft_core.engine.run.launch import local_processes, under_launcher

    return process.world_size if under_launcher() else local_processes(config)


def strategy_decision(config: RunConfig, world_size: int) -> Decision:
    """How the run spreads over its processes (``distributed.strategy``), for the plan and the manifest."""
    strategy = config.distributed.strategy
    processes = f"{world_size} process{'es' if world_size > 1 else ''}"
    if strategy in ("auto", "ddp"):
        if world_size == 1:
            return Decision("none", f"distributed.strategy: {strategy} with one process")
        return Decision("ddp", f"distributed.strategy: {strategy}, {processes} (transformers' DDP)")
    return Decision(
        strategy, f"distributed.strategy: {strategy}, {processes} (its plugin sets the trainer up)"
    )


def upcast_decision(config: RunConfig) -> Decision:
    """Whether trainable half-precision weights train in fp32 (``training.upcast_trainable``)."""
    setting = config.training.upcast_trainable
    if setting != "auto":
        return Decision(setting, "training.upcast_trainable")
    optimizer = config.optimizer
    if optimizer.component.keeps_fp32_copies(optimizer.options):
        return Decision(
            False, f"auto: optimizer {optimizer.name} keeps fp32 copies of the weights it updates"
        )
    return Decision(True, "auto: trainable half-precision weights update in fp32")


def engine_decisions(
    config: RunConfig, model_config: Any, lengths: tuple[int, ...], process: ProcessInfo
) -> tuple[dict[str, Decision], Any, Any, Any]:
    """Every decision taken before the weights load, with its reason; also the dtype, the attention choice and
    the checkpointing plan behind them."""
    from ft_core.engine.models.attention import choose_attention
    from ft_core.engine.models.loader import apply_rope_scaling, choose_dtype
    from ft_core.engine.training.arguments import resolved_precision, uses_cpu
    from ft_core.engine.training.checkpointing import plan_for_run

    training = config.training
    on_gpu = not uses_cpu(training)
    dtype = choose_dtype(config.model, training.precision, training.use_cpu)
    attention = choose_attention(config.model.attn_implementation, model_config, on_gpu=on_gpu, dtype=dtype)
    checkpointing = plan_for_run(
        config,
        model_config,
        on_gpu=on_gpu,
        dtype=dtype,
        device=process.local_rank,
        lengths=list(lengths) or None,
    )
    say(checkpointing.log_line())
    device = f"{'cuda' if on_gpu else 'cpu'} x {process.world_size}"
    decisions = {
        "device": Decision(
            device, "training.use_cpu" if training.use_cpu is not None else "a CUDA GPU if one is visible"
        ),
        "precision": Decision(
            resolved_precision(training),
            "training.precision"
            if training.precision != "auto"
            else "auto: bf16/fp16 on GPUs, fp32 on the CPU",
        ),
        "dtype": Decision(
            str(dtype).removeprefix("torch."), "model.dtype" if config.model.dtype != "auto" else ""
        ),
        "attention": Decision(attention.implementation or "transformers' default", attention.reason),
        "gradient_checkpointing": Decision(checkpointing.manifest(), checkpointing.reason),
        "packing": _packing_decision(config, on_gpu, attention.implementation),
        "strategy": strategy_decision(config, _processes(config, process)),
        "upcast_trainable": upcast_decision(config),
    }
    if training.memory_budget is not None:
        budget = training.memory_budget
        decisions["memory_budget"] = Decision(
            budget if isinstance(budget, str) else f"{budget:g} GiB",
            "training.memory_budget: the auto choices fit it"
            if on_gpu
            else "training.memory_budget: not used on the CPU",
        )
    scaling = config.model.rope_scaling  # normalised to a mapping by ModelSection
    rope = apply_rope_scaling(
        model_config, scaling if isinstance(scaling, dict) else None, config.data.cutoff_len
    )
    if rope:
        decisions["rope_scaling"] = Decision(dict(model_config.rope_parameters), rope)
    return decisions, dtype, attention, checkpointing


def build_plan(
    config: RunConfig,
    plugins: Plugins,
    *,
    prepare: bool = True,
    progress: Callable[[str, str], None] | None = None,
) -> tuple[RunPlan, PreparedData | None]:
    """Resolve ``config`` into its run plan (and, with ``prepare``, its prepared data: the main process builds it
    or reads the cache, then the others). ``progress(phase, message)`` hears when the data phase starts."""
    from transformers import AutoConfig

    from ft_core.engine.models.loader import (
        load_tokenizer,
        loading,
        model_folder,
        require_remote_code_consent,
        require_safe_weights,
        resolve_family,
    )
    from ft_core.engine.templates.resolve import apply_template_to_tokenizer, resolve_template

    model = config.model
    with loading("model", model.name_or_path):
        folder = model_folder(model)
    require_remote_code_consent(folder, model.trust_remote_code)
    require_safe_weights(folder, model.allow_pickle)  # safetensors only, unless model.allow_pickle
    with loading("model", model.name_or_path):
        tokenizer = load_tokenizer(model)
        model_config = AutoConfig.from_pretrained(folder, trust_remote_code=model.trust_remote_code)
    family = resolve_family(plugins, model_config)
    pad = family.pad_token if family is not None else None
    if pad and tokenizer.pad_token == tokenizer.eos_token and pad in tokenizer.get_vocab():
        tokenizer.pad_token = pad  # the family's own pad token beats the EOS stand-in
    template = None
    if config.stage.component.data_kind != "text":
        template = resolve_template(plugins, config.template, tokenizer, family)
        apply_template_to_tokenizer(tokenizer, template)
        say(f"chat template: {template.name} ({template.distribution})")
    active = active_plugins(
        config, plugins, family_name(plugins, family), template.name if template else None
    )
    for record in idle_hook_plugins(plugins, active):
        say(
            f"plugin {record.name} ({record.distribution}) has lifecycle hooks only and nothing switches it on in "
            f"this run; `plugins: {{enable: [{record.name}]}}` would"
        )
    prepared, stats = None, None
    lengths: tuple[int, ...] = ()
    if prepare:
        if progress is not None:
            progress("data", "preparing the datasets")
        encoder = make_encoder(config, plugins, tokenizer, template, family, folder)
        with distributed.main_process_first():
            prepared = prepare_data(config, plugins, tokenizer, template, encoder, say)
        for note in prepared.notes:
            say(note)
        stats, lengths = _data_stats(prepared)
    decisions, dtype, attention, checkpointing = engine_decisions(
        config, model_config, lengths, distributed.process_info()
    )
    plan = RunPlan(
        config=config,
        model_path=folder,
        model_type=str(getattr(model_config, "model_type", "")),
        tokenizer=tokenizer,
        template=template,
        family=family,
        family_record=_family_record(plugins, family, str(getattr(model_config, "model_type", ""))),
        active_plugins=active,
        decisions=decisions,
        data=stats,
        row_lengths=lengths,
        dtype=dtype,
        attention=attention,
        checkpointing=checkpointing,
    )
    return plan, prepared
