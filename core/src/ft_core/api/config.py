"""The core sections of a run configuration, as dataclasses.

Every key is documented in ``docs/config-reference.md``. Component sections (``stage``, ``adapter``,
``optimizer``, ``quantization``, ``loggers``, ``patches``; declared with their kinds in :mod:`ft_core.api.kinds`)
hold a selector key plus the options that the selected component's own ``options_schema`` declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Precision = Literal["auto", "fp32", "bf16", "fp16"]
#: ``transformers.SchedulerType`` values (kept here so validation needs no transformers import).
Scheduler = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
]


@dataclass
class ModelSection:
    """Which model to load and how."""

    #: A local Hugging Face model folder, a ``.gguf`` file, or ``smollm2-135m-instruct`` (the embedded default).
    name_or_path: str = ""
    #: Tokenizer folder when it is not next to the weights.
    tokenizer: str | None = None
    #: Weights dtype: ``auto`` picks bf16 on GPUs that support it, else fp32.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    #: ``auto`` (the fastest available: flash_attention_3 on Hopper GPUs with flash-attn 3, flash_attention_2 with
    #: flash-attn and a 16-bit dtype, else sdpa), ``sdpa``, ``eager``, ``flash_attention_2`` / ``flash_attention_3``,
    #: or ``null`` (the transformers default).
    attn_implementation: str | None = "auto"
    #: RoPE scaling for contexts longer than the model was trained on: ``linear``, ``dynamic``, ``yarn`` or
    #: ``llama3``, or a mapping ``{type: yarn, factor: 4.0, ...}`` (factor default: cutoff_len / the model's
    #: max_position_embeddings, rounded up).
    rope_scaling: str | dict[str, Any] | None = None
    #: Run the model's own Python code from its folder / hub repo (families whose architecture transformers
    #: lacks: Baichuan 2, ChatGLM3, InternLM2, XVERSE, Yuan 2, Yi-VL). Only for models you trust.
    trust_remote_code: bool = False
    #: Vision-language models: keep the vision tower frozen.
    freeze_vision_tower: bool = True
    #: Vision-language models: keep the multi-modal projector frozen.
    freeze_multi_modal_projector: bool = True
    #: Where converted GGUF models are cached (default ``~/.cache/ft-core/models``).
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.rope_scaling is not None:
            self.rope_scaling = normalize_rope_scaling(self.rope_scaling)


@dataclass
class TemplateSection:
    """The chat template (``template: chatml`` is shorthand for ``template: {name: chatml}``)."""

    #: A registered template name, or ``auto`` to use the tokenizer's own Jinja template.
    name: str = "auto"
    #: Compare with the tokenizer's own template at start-up: ``strict`` stops on a mismatch, ``warn`` warns.
    check: Literal["strict", "warn", "off"] = "strict"
    #: Default system prompt inserted when a conversation has none.
    system: str | None = None
    #: Extra keyword arguments for the chat template, as ``apply_chat_template(**kwargs)`` takes them (e.g.
    #: ``enable_thinking: false`` for Qwen3); they override the template's own defaults.
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataSection:
    """Training data and its preprocessing."""

    #: Dataset names from ``dataset_dir/dataset_info.json`` or the built-in demo sets.
    dataset: list[str] = field(default_factory=list)
    #: Datasets for evaluation (instead of splitting ``val_size`` off the training set).
    eval_dataset: list[str] = field(default_factory=list)
    #: Folder holding ``dataset_info.json`` and the files it names.
    dataset_dir: str = "data"
    #: Longest sequence in tokens; longer samples are truncated.
    cutoff_len: int = 2048
    #: Train on prompt tokens too (not only on assistant answers).
    train_on_prompt: bool = False
    #: Train only on the last assistant turn of multi-turn conversations.
    mask_history: bool = False
    #: Use at most this many rows of each dataset.
    max_samples: int | None = None
    #: Validation split: a fraction in (0, 1) or a row count (>= 1).
    val_size: float = 0.0
    #: Where tokenized datasets are cached by content hash (default ``~/.cache/ft-core/datasets``).
    cache_dir: str | None = None
    #: Ignore the tokenized-dataset cache.
    overwrite_cache: bool = False
    #: Processes that tokenize in parallel; ``null`` = the CPU cores available to this process.
    preprocessing_workers: int | None = None
    #: Padding-free packing of training rows (stages that support it: sft, pt): each micro-batch is one row of
    #: concatenated samples with per-sample position ids, kept apart by the attention, batched by a token budget.
    #: ``auto``: on for GPU runs with flash_attention_2/3 or flex_attention (varlen), or sdpa while every packed
    #: batch stays within 16,384 tokens; off on the CPU. ``true`` packs wherever it works (else an error).
    packing: bool | Literal["auto"] = "auto"
    #: Tokens per device micro-batch when packing; ``null`` = per_device_train_batch_size x the mean row length
    #: (the same rows and, on average, the same tokens per optimizer step as the padded run).
    packing_tokens: int | None = None
    #: Packed runs: each micro-batch holds the rows of all ``gradient_accumulation_steps`` padded micro-batches,
    #: one micro-step per optimizer step (same rows and tokens per step, fewer kernel launches per token).
    #: ``auto``: on GPU runs when the merged micro-batch fits the GPU with the run's checkpointing plan (and
    #: ``packing_tokens`` is null); ``true``: whenever packing; ``false``: never.
    packing_merge_accumulation: bool | Literal["auto"] = "auto"


@dataclass
class TrainingSection:
    """Trainer settings (names follow ``transformers.TrainingArguments``)."""

    output_dir: str = ""
    overwrite_output_dir: bool = False
    #: ``auto``: continue from the newest checkpoint in output_dir if there is one; ``false``: never;
    #: or a checkpoint folder.
    resume: bool | str = "auto"
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 1
    per_device_eval_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    lr_scheduler_type: Scheduler = "cosine"
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = None
    eval_steps: int | None = None
    seed: int = 42
    precision: Precision = "auto"
    #: Activation checkpointing: ``auto`` (off when the step fits in free GPU memory, else every or every n-th
    #: layer, or offloaded to CPU; always off on the CPU), ``true``, ``false``, or ``offload`` (checkpointed
    #: layer inputs kept in CPU memory).
    gradient_checkpointing: bool | Literal["auto", "offload"] = "auto"
    #: Reentrant checkpointing (``torch.utils.checkpoint`` ``use_reentrant``); ``null``: reentrant when an adapter
    #: trains (a profile against LLaMA-Factory found it faster with LoRA), non-reentrant for full fine-tuning.
    gradient_checkpointing_reentrant: bool | None = None
    #: ``torch.compile`` the model (GPU only; pays off on long runs with fixed shapes, e.g. with packing).
    torch_compile: bool = False
    #: ``null`` = use the GPU when there is one.
    use_cpu: bool | None = None
    dataloader_num_workers: int = 0
    #: Multi-process (DDP) runs: look for parameters that get no gradient each step (slower; only needed
    #: when a model leaves trainable parameters unused).
    ddp_find_unused_parameters: bool = False
    #: Plot the loss curve to ``loss.png`` at the end.
    plot_loss: bool = True


@dataclass
class PluginsSection:
    """Which installed plugins act in a run (``plugins: {disable: [liger]}``)."""

    #: Plugins (entry-point or distribution names, as ``ft-core plugins`` lists them) whose lifecycle hooks must not
    #: act in this run even when they would switch themselves on by default; selecting one of their components is
    #: an error.
    disable: list[str] = field(default_factory=list)


#: ``model.rope_scaling`` types, and the extra keys each takes besides ``type`` and ``factor``.
ROPE_SCALING_KEYS: dict[str, tuple[str, ...]] = {
    "linear": (),
    "dynamic": (),
    "yarn": (
        "original_max_position_embeddings",
        "attention_factor",
        "beta_fast",
        "beta_slow",
        "mscale",
        "mscale_all_dim",
        "truncate",
    ),
    "llama3": ("original_max_position_embeddings", "low_freq_factor", "high_freq_factor"),
}


def normalize_rope_scaling(value: str | dict[str, Any]) -> dict[str, Any]:
    """``model.rope_scaling`` as ``{"type": ..., "factor": float | None, ...}``; raises ``ValueError`` naming the
    problem (an unknown type or key, a factor below 1)."""
    spec: dict[str, Any] = {"type": value} if isinstance(value, str) else dict(value)
    if "rope_type" in spec and "type" not in spec:
        spec["type"] = spec.pop("rope_type")
    kind = spec.get("type")
    if kind not in ROPE_SCALING_KEYS:
        raise ValueError(f"rope_scaling.type: one of {', '.join(ROPE_SCALING_KEYS)}, got {kind!r}")
    unknown = sorted(set(spec) - {"type", "factor", *ROPE_SCALING_KEYS[kind]})
    if unknown:
        allowed = ", ".join(("factor", *ROPE_SCALING_KEYS[kind]))
        raise ValueError(
            f"rope_scaling: {', '.join(unknown)} not used by {kind} scaling (it takes {allowed})"
        )
    factor = spec.get("factor")
    if factor is not None:
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor < 1:
            raise ValueError(f"rope_scaling.factor: a number >= 1, got {factor!r}")
        spec["factor"] = float(factor)
    else:
        spec["factor"] = None
    return spec


#: Core sections and their schemas (component sections come from :data:`ft_core.api.kinds.KINDS`).
CORE_SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "template": TemplateSection,
    "data": DataSection,
    "training": TrainingSection,
    "plugins": PluginsSection,
}


#: Keys allowed at top level besides the sections.
META_KEYS = ("include",)


@dataclass
class Selection:
    """A component chosen by a config section, with its validated options."""

    section: str
    kind: str
    name: str
    component: Any
    options: Any
    distribution: str
    version: str


@dataclass
class RunConfig:
    """A validated configuration: typed core sections, the selected components and plugin sections.

    ``selections`` maps a component section (``stage``, ``adapter``, ``loggers``, ...) to what it selects;
    ``sections`` holds the validated options of sections that plugins declared (``ft_register_config_sections``);
    ``raw`` is the merged config as plain data (what ``config.yaml`` of the run folder holds).
    """

    model: ModelSection
    template: TemplateSection
    data: DataSection
    training: TrainingSection
    selections: dict[str, list[Selection]]
    plugins: PluginsSection = field(default_factory=PluginsSection)
    sections: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def one(self, section: str) -> Selection | None:
        """The single component selected by ``section`` (``stage``, ``adapter``, ...), if any."""
        chosen = self.selections.get(section) or []
        return chosen[0] if chosen else None

    def many(self, section: str) -> list[Selection]:
        """Every component selected by a list section (``loggers``, ``patches``)."""
        return list(self.selections.get(section) or [])

    @property
    def stage(self) -> Selection:
        """The training stage (always selected: ``sft`` by default)."""
        stage = self.one("stage")
        assert stage is not None
        return stage

    @property
    def adapter(self) -> Selection:
        """The adapter method (always selected: ``lora`` by default)."""
        adapter = self.one("adapter")
        assert adapter is not None
        return adapter

    @property
    def optimizer(self) -> Selection:
        """The optimizer (always selected: ``adamw`` by default)."""
        optimizer = self.one("optimizer")
        assert optimizer is not None
        return optimizer

    def section(self, name: str) -> Any:
        """Validated options of a plugin-declared section (its dataclass defaults when the config omits it)."""
        return self.sections[name]
