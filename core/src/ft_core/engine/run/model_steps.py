"""``RunContext.load_model(role)``: one role's model, built as named steps that run top to bottom.

1. ``config``     the model config: ``AutoConfig``, RoPE scaling, what the role's head needs (one label, the pad
                  token), the selected patches' ``patch_config``, ``ft_adjust_model_config``; then the dtype, the
                  attention implementation and, for a model that trains, the activation-checkpointing plan;
2. ``quantizer``  the quantizer's ``load_kwargs`` and the device map (the CPU for a quantizer that quantizes after
                  loading);
3. ``weights``    the weights with the role's head: ``ft_load_model``, else the auto class of the head (a causal
                  LM or a vision family's class, ``AutoModelForSequenceClassification``,
                  ``AutoModelForTokenClassification``); embeddings grown for the tokenizer's added tokens
                  (``model.add_tokens`` / ``add_special_tokens`` / ``resize_vocab``); then a quantizer that
                  quantizes after loading quantizes them onto the process's device (``Quantizer.quantize``);
4. ``patches``    the quantizer's ``prepare`` (a model that trains), the selected patches' ``patch_model``,
                  ``ft_patch_model``, the stage's ``prepare_model``;
5. ``training``   a model that trains: training preparation (no KV cache, activation checkpointing), the adapter
                  (LoRA's PEFT task type follows the head; grown embeddings train in full), vision freezing, the role's custom heads made
                  trainable; a frozen model: no gradients, eval mode;
6. ``ready``      ``ft_model_ready``; the role is recorded in the run's facts (the manifest's ``roles``).

Lifecycle hooks are called through ``run.hooks``: the hook relay of the run's active plugins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ft_core.api.components import ModelRole
from ft_core.api.descriptors import ModelFamily
from ft_core.api.errors import FtCoreError
from ft_core.api.modeling import (
    auto_model_class,
    classification_head,
    configure_head,
    find_heads,
    trainable_weights_upcast,
)
from ft_core.engine.models.loader import loading, model_folder
from ft_core.engine.training.heads import train_heads

logger = logging.getLogger(__name__)

#: The engine's run (:class:`~ft_core.engine.run.context.EngineRun`, whose ``load_model`` calls :func:`load_model`).
EngineRun = Any


@dataclass
class ModelBuild:
    """What the steps of one role's model share: the run, the role, the model folder and what each step made."""

    run: EngineRun
    role: ModelRole
    trainable: bool
    folder: str
    model_config: Any = None
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    #: The run's activation-checkpointing plan, for a model that trains.
    checkpointing: Any = None
    model: Any = None
    #: Embedding rows added for the tokenizer's added tokens (they must train).
    grown_rows: int = 0


def load_model(run: EngineRun, role: str = "policy", *, trainable: bool | None = None) -> Any:
    """The model of the stage's role ``role`` (:meth:`~ft_core.api.components.TrainingStage.role`), built by
    :data:`STEPS`; ``trainable`` (default: the role's own) says whether it trains or is frozen in eval mode."""
    from transformers import set_seed

    config = run.config
    model_role = config.stage.component.role(role, config.stage.options)
    build = ModelBuild(
        run=run,
        role=model_role,
        trainable=model_role.trainable if trainable is None else trainable,
        folder=model_folder(config.model),
    )
    set_seed(config.training.seed)  # adapter and head initialisation are random: same seed, same run
    for name, step in STEPS:
        logger.debug("%s model (%s head): step %s", role, model_role.head, name)
        step(build)
    return build.model


def config_step(build: ModelBuild) -> None:
    """The model config with RoPE scaling, the head's settings, the patches' and plugins' changes; the load
    kwargs (dtype, attention) and, for a model that trains, the checkpointing plan."""
    from transformers import AutoConfig

    from ft_core.engine.models.attention import choose_attention
    from ft_core.engine.models.loader import apply_rope_scaling, choose_dtype

    run, role = build.run, build.role
    config = run.config
    model_section, training = config.model, config.training
    with loading("model", model_section.name_or_path):
        model_config = AutoConfig.from_pretrained(
            build.folder, trust_remote_code=model_section.trust_remote_code
        )
    rope = apply_rope_scaling(model_config, model_section.rope_scaling, config.data.cutoff_len)
    if rope:
        run.say(rope, key="rope")
        run.facts["rope_scaling"] = rope
    configure_head(model_config, role.head, run.tokenizer.pad_token_id)
    for patch in config.many("patches"):
        patch.component.patch_config(model_config, patch.options)
    run.hooks.ft_adjust_model_config(model_config=model_config, run=run, role=role.name)
    dtype = choose_dtype(model_section, training.precision, training.use_cpu)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": model_section.trust_remote_code}
    attention = choose_attention(
        model_section.attn_implementation, model_config, on_gpu=run.uses_gpu, dtype=dtype
    )
    if attention.implementation:
        kwargs["attn_implementation"] = attention.implementation
    if attention.implementation == "torch_varlen":
        from ft_core.engine.models import varlen_attention

        varlen_attention.register()
    run.say(attention.log_line(), key="attention")
    run.facts.setdefault("attention", attention.manifest())
    build.model_config, build.load_kwargs = model_config, kwargs
    if build.trainable:
        build.checkpointing = run.checkpointing_plan(model_config, dtype)


def quantizer_step(build: ModelBuild) -> None:
    """The quantizer's load kwargs and the device map: each process its own GPU; on a CPU run the CPU, even where a
    GPU exists. A quantizer that quantizes after loading gets the unquantized weights on the CPU."""
    run = build.run
    quantizer = run.config.one("quantization")
    if quantizer is None:
        return
    build.load_kwargs.update(quantizer.component.load_kwargs(quantizer.options, build.model_config))
    on_cpu = quantizer.component.quantizes_after_load or not run.uses_gpu
    build.load_kwargs["device_map"] = {"": "cpu" if on_cpu else run.process.local_rank}


def weights_step(build: ModelBuild) -> None:
    """The weights with the role's head: the first ``ft_load_model`` result, else the head's auto class; then the
    quantizer's ``quantize`` where it quantizes after loading."""
    run, role = build.run, build.role
    model = run.hooks.ft_load_model(
        run=run,
        role=role.name,
        model_config=build.model_config,
        load_kwargs=build.load_kwargs,
        model_folder=build.folder,
        head=role.head,
    )
    if model is None:
        with loading("model weights", run.config.model.name_or_path):
            model = _auto_class(run.family, role).from_pretrained(
                build.folder,
                config=build.model_config,
                use_safetensors=None if run.config.model.allow_pickle else True,  # no pickle unless allowed
                **build.load_kwargs,
            )
    section = run.config.model
    if section.add_tokens or section.add_special_tokens or section.resize_vocab:
        from ft_core.engine.models.loader import grow_embeddings

        build.grown_rows = grow_embeddings(model, len(run.tokenizer))
        if build.grown_rows:
            run.facts["vocabulary"] = {"embedding_rows": len(run.tokenizer), "added": build.grown_rows}
    quantizer = run.config.one("quantization")
    if quantizer is not None and quantizer.component.quantizes_after_load:
        device = run.process.local_rank if run.uses_gpu else "cpu"
        model = quantizer.component.quantize(model, quantizer.options, device)
    build.model = model


def _auto_class(family: ModelFamily | None, role: ModelRole) -> Any:
    """The transformers class that loads ``role``'s head: a vision family's own class for its causal LM."""
    from ft_core.engine.vision import model as vision

    if role.head == "causal_lm":
        return vision.model_class(family, auto_model_class("causal_lm"))
    if family is not None and family.vision is not None:
        raise FtCoreError(
            f"the {role.name} model needs a {role.head} head, but the model is a vision-language model, which "
            "ft-core loads with its causal-LM head only"
        )
    return auto_model_class(role.head)


def patches_step(build: ModelBuild) -> None:
    """The quantizer's training preparation, the patches, ``ft_patch_model`` and the stage's ``prepare_model``."""
    run = build.run
    config, model = run.config, build.model
    quantizer = config.one("quantization")
    if quantizer is not None and build.trainable:
        model = quantizer.component.prepare(model, quantizer.options, run)
    for patch in config.many("patches"):
        model = patch.component.patch_model(model, patch.options)
    run.hooks.ft_patch_model(model=model, run=run, role=build.role.name)
    build.model = config.stage.component.prepare_model(model, run, build.role.name)


def training_step(build: ModelBuild) -> None:
    """A model that trains: training preparation, the adapter, vision freezing, the custom heads made trainable.
    A frozen one: no gradients, eval mode."""
    from ft_core.engine.models.adapters import adapter_plan, load_adapter_weights, merge_adapters
    from ft_core.engine.models.loader import prepare_for_training
    from ft_core.engine.vision import model as vision

    run, role, model = build.run, build.role, build.model
    stacked = adapter_plan(run.config)
    if not build.trainable:  # a frozen role starts where the policy starts: every given adapter merged
        model = merge_adapters(model, [*stacked.merged, *([stacked.resumed] if stacked.resumed else [])])
        model.requires_grad_(False)
        model.eval()
        build.model = model
        return
    model = merge_adapters(model, stacked.merged)
    if stacked.merged:
        run.facts["base_adapters"] = [str(folder) for folder in stacked.merged]
    prepare_for_training(model, build.checkpointing)
    adapter = run.config.adapter
    with trainable_weights_upcast(run.plan.decisions["upcast_trainable"].value):
        model = adapter.component.apply(model, _train_embeddings(build, adapter), run.family)
    if stacked.resumed is not None:
        load_adapter_weights(model, stacked.resumed)
        run.say(f"adapter: training on from {stacked.resumed}", key="adapters")
    vision.apply_vision_freezing(model, run.family, run.config.model, adapter.component)
    head = classification_head(model)
    if head is not None and not any(p.requires_grad for p in head.parameters()):
        logger.warning(
            f"adapter.method: {adapter.name} left the {role.name} model's {role.head} head frozen: it will not train"
        )
    if role.head_modules:
        heads = find_heads(model, role.head_modules)
        train_heads(heads)
        run.heads.update(heads)
    model.train()
    build.model = model


def _train_embeddings(build: ModelBuild, adapter: Any) -> Any:
    """The adapter's options, with the embedding layers added to what trains in full when they grew for added
    tokens: ``modules_to_save`` (LoRA-like adapters: saved with the adapter, so chat loads them) or
    ``extra_modules`` (freeze). A full fine-tune trains them anyway."""
    import dataclasses

    options = adapter.options
    if not build.grown_rows or options is None or not dataclasses.is_dataclass(options):
        return options
    from ft_core.engine.models.loader import embedding_module_names

    names = embedding_module_names(build.model)
    for key in ("modules_to_save", "extra_modules"):
        if hasattr(options, key):
            have = list(getattr(options, key) or [])
            build.run.say(
                f"model vocabulary: {build.grown_rows} new token(s); {', '.join(names)} train in full "
                f"(adapter.{key})",
                key="vocabulary",
            )
            return dataclasses.replace(options, **{key: list(dict.fromkeys([*have, *names]))})  # type: ignore[type-var]
    return options


def ready_step(build: ModelBuild) -> None:
    """``ft_model_ready``; the role, its head and whether it trains go into the run's facts."""
    run, role = build.run, build.role
    run.hooks.ft_model_ready(model=build.model, run=run, role=role.name)
    run.facts.setdefault("roles", {})[role.name] = {
        "head": role.head,
        "trainable": build.trainable,
        "head_modules": list(role.head_modules),
    }


#: The steps of :func:`load_model`, in order, by name.
STEPS: tuple[tuple[str, Callable[[ModelBuild], None]], ...] = (
    ("config", config_step),
    ("quantizer", quantizer_step),
    ("weights", weights_step),
    ("patches", patches_step),
    ("training", training_step),
    ("ready", ready_step),
)
