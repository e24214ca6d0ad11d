"""Every rule a config must pass beyond its schema, in one ordered list (:data:`RULES`).

A rule has a name (shown in each problem it reports: ``(rule data.packing)``) and a check returning problems as
``"section.key: what is wrong and what to do"``. ``ft-core validate``, ``plan``, ``prepare`` and ``run`` run the
list in order and report every problem at once, before any weights load. Rules that read the run's inputs (the
tokenizer's files and every data row, never weights) run in ``validate`` and ``plan``; ``run`` and ``prepare``
meet the same inputs while building the run plan and stop there on the first bad one.

A rule of a later group runs only when the earlier groups found nothing (component rules may assume the sections
they read are valid; input rules need a valid config). The groups: core's config rules, then each selected
component's :meth:`~ft_core.api.Component.validate`, then each active plugin's ``ft_validate_config``, then the
input rules.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ft_core.api.config import RunConfig
from ft_core.api.context import ResolvedTemplate
from ft_core.api.conversation import Conversation
from ft_core.api.descriptors import ModelFamily
from ft_core.api.errors import FtCoreError
from ft_core.api.plan import ActivePlugin
from ft_core.engine.config.activation import active_plugins, is_named, plugin_key
from ft_core.engine.models.attention import keeps_rows_apart
from ft_core.engine.plugins import Plugins

#: Most rows a problem lists by name before it only counts the rest.
MAX_ROWS_NAMED = 5


class RuleContext:
    """What rules read: the config, the plugins, and (loaded on first use) the run's inputs."""

    def __init__(self, config: RunConfig, plugins: Plugins) -> None:
        self.config = config
        self.plugins = plugins

    @cached_property
    def family_name(self) -> str | None:
        """The registered model family of the base model, judged from its ``config.json`` (no download)."""
        from ft_core.engine.models.hub import cached_folder, is_hub_id
        from ft_core.engine.models.loader import read_model_config, resolve_family

        model = self.config.model
        folder: str | None = model.name_or_path
        if is_hub_id(model.name_or_path):  # a Hub id: its cached snapshot, if any
            folder = cached_folder(model.name_or_path, model.revision, model.hub_cache_dir)
        data = read_model_config(folder) if folder else None
        if data is None:
            return None
        family = resolve_family(
            self.plugins,
            SimpleNamespace(model_type=data.get("model_type"), architectures=data.get("architectures")),
        )
        return family_name(self.plugins, family)

    @cached_property
    def active(self) -> tuple[ActivePlugin, ...]:
        """The plugins that act in this run, as far as the config tells."""
        return active_plugins(self.config, self.plugins, self.family_name)

    @cached_property
    def tokenizer(self) -> Any:
        """The run's tokenizer (its files only)."""
        from ft_core.engine.models.loader import load_tokenizer, loading

        with loading("tokenizer", self.config.model.tokenizer or self.config.model.name_or_path):
            return load_tokenizer(self.config.model)

    @cached_property
    def family(self) -> ModelFamily | None:
        """The model family object of the base model."""
        if self.family_name is None:
            return None
        return self.plugins.get("model_family", self.family_name)

    @cached_property
    def template(self) -> ResolvedTemplate:
        """The resolved chat template, checked against the tokenizer's own (``template.check``)."""
        from ft_core.engine.templates.resolve import resolve_template

        return resolve_template(self.plugins, self.config.template, self.tokenizer, self.family)

    @cached_property
    def samples(self) -> list[Any]:
        """Every converted training and evaluation sample (rows read and converted, nothing tokenized)."""
        from ft_core.engine.config.data_rules import STREAM_CHECK_ROWS
        from ft_core.engine.data.loader import load_samples

        config, stage = self.config, self.config.stage
        data = config.data
        if data.streaming:  # a stream is never read whole: check its first rows
            data = replace(data, max_samples=min(data.max_samples or STREAM_CHECK_ROWS, STREAM_CHECK_ROWS))
        found: list[Any] = []
        for names in (config.data.dataset, config.data.eval_dataset):
            if names:
                found += load_samples(
                    names,
                    data,
                    self.plugins,
                    stage.component.data_kind,
                    config.training.seed,
                    stage=stage.name,
                )
        return found


def family_name(plugins: Plugins, family: ModelFamily | None) -> str | None:
    """The registered name of ``family``."""
    if family is None:
        return None
    return next((n for n in plugins.names("model_family") if plugins.get("model_family", n) is family), None)


@dataclass(frozen=True)
class Rule:
    """One named rule. ``reads_inputs``: reads the tokenizer's files or the data rows. ``after``: rules that must
    have passed for this one to run (it would only repeat their problem)."""

    name: str
    check: Callable[[RuleContext], list[str]]
    reads_inputs: bool = False
    after: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """The rule's one-line description (its check's docstring)."""
        return (self.check.__doc__ or "").strip().splitlines()[0]


# ------------------------------------------------------------------------------------------------ core's rules
def _model_reference(ctx: RuleContext) -> list[str]:
    """model.name_or_path is set and names a model folder, a .gguf file or the embedded model."""
    model = ctx.config.model
    if not model.name_or_path:
        return ["model.name_or_path: required (a local model folder, a .gguf file or smollm2-135m-instruct)"]
    from ft_core.engine.models.embedded import check_model_reference

    problem = check_model_reference(model.name_or_path, model.revision, model.hub_cache_dir)
    return [f"model.name_or_path: {problem}"] if problem else []


def _remote_code(ctx: RuleContext) -> list[str]:
    """A local folder of a remote-code family needs model.trust_remote_code: true."""
    model = ctx.config.model
    if model.trust_remote_code or not model.name_or_path:
        return []
    from ft_core.engine.models.loader import read_model_config

    data = read_model_config(model.name_or_path)
    if data is None:
        return []
    model_type = str(data.get("model_type", ""))
    architectures = [str(a) for a in data.get("architectures") or []]
    for name in ctx.plugins.names("model_family"):
        family = ctx.plugins.get("model_family", name)
        if family.trust_remote_code and family.covers(model_type, architectures):
            return [
                f"model.trust_remote_code: {model.name_or_path!r} is a {family.description or name} model "
                f"(model_type {model_type!r}, architectures {architectures}) whose architecture transformers does "
                "not include, so the model's own Python code must run. Set model.trust_remote_code: true if you "
                "trust that code"
            ]
    return []


def _pickle_weights(ctx: RuleContext) -> list[str]:
    """A model or adapter folder with only pickle weight files (.bin) needs model.allow_pickle: true."""
    from ft_core.engine.models.adapters import adapter_folder
    from ft_core.engine.models.hub import cached_folder, is_hub_id
    from ft_core.engine.models.loader import pickle_problem

    model = ctx.config.model
    if model.allow_pickle or not model.name_or_path:
        return []
    folder: str | None = model.name_or_path
    if is_hub_id(model.name_or_path):  # its cached snapshot, if any (a download is checked by the run plan)
        folder = cached_folder(model.name_or_path, model.revision, model.hub_cache_dir)
    problems = [pickle_problem(folder, False)] if folder else []
    for reference in model.adapters:
        try:
            problems.append(pickle_problem(adapter_folder(reference), False, "the adapter"))
        except FtCoreError:  # not an adapter folder: rule model.adapters says so
            continue
    return [f"model.allow_pickle: {problem}" for problem in problems if problem]


def _attention_name(ctx: RuleContext) -> list[str]:
    """model.attn_implementation names an attention transformers can load (or auto, null, a Hub kernel repo)."""
    from ft_core.api.config import ATTENTION_ALIASES, ATTENTION_NAMES
    from ft_core.api.errors import did_you_mean

    attention = ctx.config.model.attn_implementation
    if attention is None or attention == "auto" or attention in ATTENTION_NAMES or "/" in attention:
        return []
    from transformers import AttentionInterface  # only for a name outside the built-in list: a plugin's own

    registered = list(AttentionInterface._global_mapping)
    if attention in registered:
        return []
    known = ["auto", *ATTENTION_NAMES, *ATTENTION_ALIASES]
    hint = (
        did_you_mean(attention, known) or f" Known: {', '.join(known)}, or null (the transformers default)."
    )
    return [f"model.attn_implementation: unknown attention {attention!r}.{hint}"]


def _vision_freezing(ctx: RuleContext) -> list[str]:
    """model.freeze_vision_tower / freeze_multi_modal_projector: false needs a whole-model adapter (LoRA-like
    adapters save only their own weights: name the modules in adapter.modules_to_save instead)."""
    model, adapter = ctx.config.model, ctx.config.one("adapter")
    unfrozen = [
        key
        for key, frozen in (
            ("freeze_vision_tower", model.freeze_vision_tower),
            ("freeze_multi_modal_projector", model.freeze_multi_modal_projector),
        )
        if not frozen
    ]
    if not unfrozen or adapter is None or getattr(adapter.component, "saves_full_model", False):
        return []
    family = ctx.family
    if family is None or family.vision is None:
        return []  # a text model: the switches do nothing (an unknown family is checked when the model loads)
    modules = ", ".join(repr(p.rsplit(".", 1)[-1]) for p in family.vision.projector_modules)
    return [
        f"model.{unfrozen[0]}: false needs a whole-model adapter (adapter.method: full or freeze); adapter.method "
        f"{adapter.name} saves only its own weights. Keep it true and name the modules to train in "
        f"adapter.modules_to_save (e.g. {modules})"
    ]


def _adapters(ctx: RuleContext) -> list[str]:
    """model.adapters name adapter folders that fit the run (see ft_core.engine.models.adapters)."""
    from ft_core.engine.models.adapters import adapter_problems

    return adapter_problems(ctx.config)


def _attention_package(ctx: RuleContext) -> list[str]:
    """A FlashAttention implementation needs its package installed."""
    attention = ctx.config.model.attn_implementation
    if attention not in ("flash_attention_2", "flash_attention_3"):
        return []
    package = "flash_attn" if attention == "flash_attention_2" else "flash_attn_interface"
    if importlib.util.find_spec(package) is not None:
        return []
    return [
        f"model.attn_implementation: {attention} needs the {package} package (CUDA GPUs only); install it, or use "
        "sdpa"
    ]


def _template_name(ctx: RuleContext) -> list[str]:
    """template.name is auto or a registered chat template."""
    name = ctx.config.template.name
    if name == "auto":
        return []
    try:
        ctx.plugins.registration("chat_template", name)
    except FtCoreError as exc:
        return [f"template.name: {exc}"]
    return []


def _required(ctx: RuleContext) -> list[str]:
    """training.output_dir and data.dataset are set."""
    problems = []
    if not ctx.config.training.output_dir:
        problems.append("training.output_dir: required (the folder for checkpoints and results)")
    if not ctx.config.data.dataset:
        problems.append("data.dataset: required (one or more dataset names)")
    return problems


def _data_ranges(ctx: RuleContext) -> list[str]:
    """data.cutoff_len, val_size, max_samples and preprocessing_workers are in range."""
    data, problems = ctx.config.data, []
    if data.cutoff_len < 8:
        problems.append(f"data.cutoff_len: must be at least 8, got {data.cutoff_len}")
    if data.val_size < 0 or (data.val_size >= 1 and not float(data.val_size).is_integer()):
        problems.append(f"data.val_size: a fraction in (0, 1) or a whole row count, got {data.val_size}")
    if data.max_samples is not None and data.max_samples < 1:
        problems.append(f"data.max_samples: must be >= 1, got {data.max_samples}")
    if data.preprocessing_workers is not None and data.preprocessing_workers < 1:
        problems.append(
            f"data.preprocessing_workers: must be >= 1 (or null for the cores available), got "
            f"{data.preprocessing_workers}"
        )
    return problems


def _data_options(ctx: RuleContext) -> list[str]:
    """data.mix_strategy, streaming, tokenized_path, eval_on_each_dataset, media_dir, tool_format and the image
    pixel range are consistent (:mod:`ft_core.engine.config.data_rules`)."""
    from ft_core.engine.config.data_rules import data_options

    return data_options(ctx.config)


def _tool_format(ctx: RuleContext) -> list[str]:
    """data.tool_format is the tool format of the tokenizer's own template (template.name: auto)."""
    from ft_core.engine.config.data_rules import tool_format_problem

    config = ctx.config
    if config.data.tool_format is None or config.template.name != "auto":
        return []
    if config.stage.component.data_kind == "text":
        return []
    problem = tool_format_problem(config.data.tool_format, ctx.template.name)
    return [problem] if problem else []


def _training_ranges(ctx: RuleContext) -> list[str]:
    """Batch sizes, learning rate, steps and precision of the training section are usable."""
    training, data, problems = ctx.config.training, ctx.config.data, []
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(training, key) < 1:
            problems.append(f"training.{key}: must be >= 1, got {getattr(training, key)}")
    if training.learning_rate <= 0:
        problems.append(f"training.learning_rate: must be > 0, got {training.learning_rate}")
    if training.max_steps <= 0 and training.num_train_epochs <= 0:
        problems.append("training: set max_steps > 0 or num_train_epochs > 0")
    if training.save_steps < 1 or training.logging_steps < 1:
        problems.append("training.save_steps and training.logging_steps: must be >= 1")
    if training.eval_steps is not None and not (data.val_size > 0 or data.eval_dataset):
        problems.append("training.eval_steps: needs evaluation data: set data.val_size or data.eval_dataset")
    if training.precision == "fp16" and training.use_cpu:
        problems.append("training.precision: fp16 needs a GPU; use fp32 or bf16 with use_cpu: true")
    if training.precision == "fp16" and training.upcast_trainable is False:
        problems.append(
            "training.upcast_trainable: false with precision: fp16 leaves fp16 gradients, which fp16's loss scaling "
            "cannot unscale; use precision: bf16 (LLaMA-Factory's pure_bf16), or upcast_trainable: auto"
        )
    if training.use_cpu is False:
        import torch

        if not torch.cuda.is_available():
            problems.append(
                "training.use_cpu: false asks for a CUDA GPU, and none is visible; run on a GPU machine, or remove "
                "the key (the CPU is used where there is no GPU)"
            )
    from ft_core.engine.config.training_arguments import passthrough_problems

    return problems + passthrough_problems(training, data.val_size > 0 or bool(data.eval_dataset))


def _resume(ctx: RuleContext) -> list[str]:
    """training.resume is auto, true, false or a checkpoint folder."""
    resume = ctx.config.training.resume
    if (
        str(resume).lower() in ("auto", "false", "true", "no")
        or (Path(str(resume)) / "trainer_state.json").is_file()
    ):
        return []
    return [
        f"training.resume: {resume!r} is not a checkpoint folder (a checkpoint-<step> folder with "
        "trainer_state.json); give one, or use auto / false"
    ]


def _quantized_training(ctx: RuleContext) -> list[str]:
    """Quantized weights train only through an adapter."""
    quantizer, adapter = ctx.config.one("quantization"), ctx.config.one("adapter")
    if quantizer is None or adapter is None:
        return []
    if quantizer.component.trains_with_adapters_only and adapter.component.saves_full_model:
        return [
            f"quantization: {quantizer.name}-quantized weights cannot be trained with adapter.method: "
            f"{adapter.name}; use an adapter such as lora (QLoRA)"
        ]
    return []


def _prequantized(ctx: RuleContext) -> list[str]:
    """A pre-quantized checkpoint (GPTQ, AWQ, AQLM) has its backend installed, trains only an adapter and takes no
    quantization section."""
    from ft_core.engine.models import prequantized

    return prequantized.problems(ctx.config)


#: Strategy plugins of ft-core's own, for the hint when one is not installed.
STRATEGY_PLUGINS = {"fsdp": "ft-core-fsdp", "deepspeed": "ft-core-deepspeed"}


def strategy_sections(plugins: Plugins) -> list[str]:
    """The config sections that are distributed strategies (``ConfigSection(strategy=True)``)."""
    names = plugins.names("config_section")
    return [name for name in names if getattr(plugins.get("config_section", name), "strategy", False)]


def _distributed(ctx: RuleContext) -> list[str]:
    """distributed.strategy names an installed strategy, a strategy's section is set only with it, and nproc is
    usable."""
    section, problems = ctx.config.distributed, []
    strategies = strategy_sections(ctx.plugins)
    known = ["auto", "ddp", *strategies]
    if section.strategy not in known:
        package = STRATEGY_PLUGINS.get(section.strategy)
        hint = f" (pip install {package})" if package else ""
        problems.append(
            f"distributed.strategy: {section.strategy!r} is not an installed strategy{hint}; "
            f"known: {', '.join(known)}"
        )
    for name in strategies:
        if name in ctx.config.raw and name != section.strategy:
            problems.append(
                f"{name}: its options apply only under distributed.strategy: {name} "
                f"(the strategy is {section.strategy}); set the strategy or remove the section"
            )
    if not isinstance(section.nproc, str) and section.nproc < 1:
        problems.append(f"distributed.nproc: must be >= 1 or auto, got {section.nproc}")
    return problems


def can_pack(stage: Any) -> bool:
    """Whether ``data.packing`` applies to ``stage``: its rows are packed (``supports_packing``) or its own padded
    batches run padding-free (``packs_padded_batches``)."""
    return bool(getattr(stage, "supports_packing", False) or getattr(stage, "packs_padded_batches", False))


def _packing(ctx: RuleContext) -> list[str]:
    """data.packing and data.packing_tokens fit the stage and the attention."""
    config, problems = ctx.config, []
    data = config.data
    if data.packing_tokens is not None and data.packing_tokens < 1:
        problems.append(f"data.packing_tokens: must be >= 1 (or null), got {data.packing_tokens}")
    if data.packing is True:
        stage = config.one("stage")
        if stage is not None and not can_pack(stage.component):
            problems.append(
                f"data.packing: the {stage.name} stage does not support padding-free packing; set "
                "data.packing: auto or false"
            )
        attention = config.model.attn_implementation
        if not keeps_rows_apart(attention):
            problems.append(
                f"data.packing: model.attn_implementation {attention!r} cannot keep packed rows apart; use "
                "flash_attention_2, flash_attention_3, flex_attention, sdpa or eager, or set data.packing: false"
            )
    return problems


def _plugin_lists(ctx: RuleContext) -> list[str]:
    """plugins.enable and plugins.disable name installed plugins, no plugin in both, and no disabled plugin has a
    component the config selects."""
    lists = {"enable": ctx.config.plugins.enable, "disable": ctx.config.plugins.disable}
    known = {name for record in ctx.plugins.records for name in (record.name, record.distribution)}
    problems = [
        f"plugins.{key}: {name!r} is no installed plugin or distribution (`ft-core plugins` lists them)"
        for key, names in lists.items()
        for name in names
        if name not in known
    ]
    problems += [
        f"plugins: {record.name!r} ({record.distribution}) is both enabled and disabled; keep it in one list"
        for record in ctx.plugins.records
        if is_named(record, lists["enable"]) and is_named(record, lists["disable"])
    ]
    for selections in ctx.config.selections.values():
        for selection in selections:
            if any(
                r.distribution == selection.distribution and is_named(r, lists["disable"])
                for r in ctx.plugins.records
            ):
                problems.append(
                    f"plugins.disable: {selection.section} selects {selection.name!r} of {selection.distribution}, "
                    "which the config disables; remove it from plugins.disable or choose another component"
                )
    return problems


def _datasets(ctx: RuleContext) -> list[str]:
    """Every named dataset exists and its entry gives what the stage trains on."""
    from ft_core.engine.data.loader import check_dataset_for
    from ft_core.engine.data.registry import resolve_datasets

    data, stage, problems = ctx.config.data, ctx.config.one("stage"), []
    if stage is None:
        return []
    for key in ("dataset", "eval_dataset"):
        names = getattr(data, key)
        if not names:
            continue
        try:
            for spec in resolve_datasets(names, data.dataset_dir):
                check_dataset_for(spec, ctx.plugins, stage.name, stage.component.data_kind)
        except FtCoreError as exc:
            problems.append(f"data.{key}: {exc}")
    return problems


# ------------------------------------------------------------------------------------ components and plugins
def _components(ctx: RuleContext) -> list[str]:
    """Each selected component's own cross-section rules (Component.validate). A file system error of a check
    (a path option no file system takes) is that section's problem, not a traceback."""
    problems: list[str] = []
    for selections in ctx.config.selections.values():
        for selection in selections:
            try:
                problems += selection.component.validate(selection.options, ctx.config)
            except OSError as exc:
                problems.append(
                    f"{selection.section} ({selection.name}): a path in its options cannot be used: "
                    f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}"
                )
    return problems


def _plugin_rules(ctx: RuleContext) -> list[str]:
    """Each active plugin's ft_validate_config rules."""
    manager = ctx.plugins.manager
    active = {f"{plugin.distribution}:{plugin.name}" for plugin in ctx.active}
    modules = [manager.get_plugin(plugin_key(r)) for r in ctx.plugins.records if plugin_key(r) in active]
    caller = manager.subset_hook_caller(
        "ft_validate_config", remove_plugins=[m for m in manager.get_plugins() if m not in modules]
    )
    return [problem for found in caller(config=ctx.config) for problem in found or []]


# ------------------------------------------------------------------------------------------------ input rules
def _tokenizer(ctx: RuleContext) -> list[str]:
    """The tokenizer's files load (no weights)."""
    try:
        ctx.tokenizer  # noqa: B018 - loading it is the check
    except FtCoreError as exc:
        return [f"model.tokenizer: {exc}"]
    return []


def _template_matches(ctx: RuleContext) -> list[str]:
    """The chat template renders like the tokenizer's own (template.check) and its stop words are tokens."""
    if ctx.config.stage.component.data_kind == "text":
        return []
    try:
        ctx.template  # noqa: B018 - resolving it runs the checks
    except FtCoreError as exc:
        return [f"template: {exc}"]
    return []


def _rows(ctx: RuleContext) -> list[str]:
    """Every data row converts to what the stage trains on."""
    try:
        ctx.samples  # noqa: B018 - converting them is the check
    except FtCoreError as exc:
        return [f"data.dataset: {exc}"]
    return []


def _tool_rows(ctx: RuleContext) -> list[str]:
    """Rows with tool calls or tool schemas need a chat template with a tool format."""
    if ctx.config.stage.component.data_kind == "text" or ctx.template.parse_tool_calls is not None:
        return []
    rows = [
        sample.source or "a row"
        for sample in ctx.samples
        if isinstance(sample, Conversation)
        and (sample.tools or any(message.tool_calls for message in sample.messages))
    ]
    if not rows:
        return []
    named = ", ".join(rows[:MAX_ROWS_NAMED]) + (
        f" and {len(rows) - MAX_ROWS_NAMED} more" if len(rows) > MAX_ROWS_NAMED else ""
    )
    return [
        f"template.name: chat template {ctx.template.name!r} has no tool format, but {len(rows)} row(s) carry tool "
        f"calls or tool schemas ({named}); it would train on answers stripped of them. Use a template with a tool "
        "format (`ft-core template list` shows which have one), or drop those rows"
    ]


#: Every rule, in the order they run.
RULES: tuple[Rule, ...] = (
    Rule("model.reference", _model_reference),
    Rule("model.remote_code", _remote_code),
    Rule("model.pickle_weights", _pickle_weights),
    Rule("model.attention_name", _attention_name),
    Rule("model.attention", _attention_package),
    Rule("model.vision_freezing", _vision_freezing),
    Rule("model.adapters", _adapters),
    Rule("template.name", _template_name),
    Rule("required", _required),
    Rule("data.ranges", _data_ranges),
    Rule("data.options", _data_options),
    Rule("training.ranges", _training_ranges),
    Rule("training.resume", _resume),
    Rule("quantization.adapter", _quantized_training),
    Rule("model.prequantized", _prequantized),
    Rule("data.packing", _packing),
    Rule("distributed", _distributed),
    Rule("plugins.lists", _plugin_lists),
    Rule("data.datasets", _datasets),
    Rule("components", _components),
    Rule("plugins", _plugin_rules),
    Rule("inputs.tokenizer", _tokenizer, reads_inputs=True),
    Rule("inputs.template", _template_matches, reads_inputs=True, after=("inputs.tokenizer",)),
    Rule("inputs.rows", _rows, reads_inputs=True),
    Rule("inputs.tool_rows", _tool_rows, reads_inputs=True, after=("inputs.template", "inputs.rows")),
    Rule("inputs.tool_format", _tool_format, reads_inputs=True, after=("inputs.template",)),
)
#: Where each group starts: a group runs only when the groups before it found nothing.
GROUPS: tuple[str, ...] = ("components", "inputs.tokenizer")


def rule(name: str) -> Rule:
    """The rule called ``name``."""
    return next(r for r in RULES if r.name == name)


def check(ctx: RuleContext, *, inputs: bool = False, earlier: bool = False) -> list[str]:
    """Run :data:`RULES` in order (the input rules only with ``inputs``); every problem, each naming its rule.
    ``earlier``: the schema already had problems (the later groups then do not run)."""
    problems: list[str] = []
    failed: set[str] = set()
    for rule in RULES:
        if rule.reads_inputs and not inputs:
            continue
        if rule.name in GROUPS and (problems or earlier):
            break
        # a rule after a failed (or skipped) one is skipped, and so are its followers
        if failed & set(rule.after):
            failed.add(rule.name)
            continue
        found = rule.check(ctx)
        if found:
            failed.add(rule.name)
            problems += [f"{problem} (rule {rule.name})" for problem in found]
    return problems
