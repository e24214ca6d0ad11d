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

    #: A local Hugging Face model folder, a ``.gguf`` file, ``smollm2-135m-instruct`` (the embedded default), or a
    #: Hugging Face Hub id (``Qwen/Qwen2.5-7B-Instruct``: read from the Hugging Face cache, downloaded where a
    #: network exists; with ``HF_HUB_OFFLINE`` it must be in the cache).
    name_or_path: str = ""
    #: Hub ids: the branch, tag or commit to load (default: ``main``).
    revision: str | None = None
    #: Hub ids: the Hugging Face cache folder to read and download into (default: ``HF_HUB_CACHE``, usually
    #: ``~/.cache/huggingface/hub``).
    hub_cache_dir: str | None = None
    #: Tokenizer folder (or Hub id) when it is not next to the weights.
    tokenizer: str | None = None
    #: Weights dtype: ``auto`` picks bf16 on GPUs that support it, else fp32.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    #: ``auto`` (the fastest available: flash_attention_3 on Hopper GPUs with flash-attn 3, flash_attention_2 with
    #: flash-attn and a 16-bit dtype, else sdpa), ``sdpa``, ``eager``, ``flash_attention_2`` / ``flash_attention_3``,
    #: or ``null`` (the transformers default). LLaMA-Factory's ``fa2`` / ``fa3`` / ``disabled`` are read as
    #: ``flash_attention_2`` / ``flash_attention_3`` / ``eager``.
    attn_implementation: str | None = "auto"
    #: RoPE scaling for contexts longer than the model was trained on: ``linear``, ``dynamic``, ``yarn`` or
    #: ``llama3``, or a mapping ``{type: yarn, factor: 4.0, ...}`` (factor default: cutoff_len / the model's
    #: max_position_embeddings, rounded up).
    rope_scaling: str | dict[str, Any] | None = None
    #: Run the model's own Python code from its folder / hub repo (families whose architecture transformers
    #: lacks: Baichuan 2, ChatGLM3, InternLM2, XVERSE, Yuan 2, Yi-VL). Only for models you trust.
    trust_remote_code: bool = False
    #: Load weights from pickle files (``pytorch_model.bin``, ``adapter_model.bin``) when a folder has no safetensors.
    #: Off: only safetensors load, and a folder with only pickle files is refused. Only for files you trust.
    allow_pickle: bool = False
    #: Vision-language models: keep the vision tower frozen.
    freeze_vision_tower: bool = True
    #: Vision-language models: keep the multi-modal projector frozen.
    freeze_multi_modal_projector: bool = True
    #: Where converted GGUF models are cached (default ``~/.cache/ft-core/models``).
    cache_dir: str | None = None
    #: Tokens added to the tokenizer as ordinary tokens (a list or ``"a,b"``); the embeddings grow to match and the
    #: new rows train (with LoRA-like adapters the embedding layers train in full: ``modules_to_save``).
    add_tokens: list[str] | str = field(default_factory=list)
    #: Tokens added as special tokens (kept whole, left out when decoding), e.g. ``"<tool>,</tool>"``.
    add_special_tokens: list[str] | str = field(default_factory=list)
    #: Grow the embedding layers to the tokenizer's length even without added tokens (a tokenizer with more
    #: tokens than the model has embeddings); added tokens always grow them.
    resize_vocab: bool = False
    #: Existing PEFT adapters (folders with adapter_config.json, or ft-core run folders; a list or ``"a,b"``). With a
    #: LoRA-like adapter method the last one trains on (adapter.rank / alpha must match it) and the others are
    #: merged into the base; with ``create_new_adapter`` (or full / freeze) all are merged and training starts
    #: from there. Chat, serve and export rebuild the same base.
    adapters: list[str] | str = field(default_factory=list)
    #: With ``adapters``: merge them all and train a new adapter on top (LLaMA-Factory's ``create_new_adapter``).
    create_new_adapter: bool = False

    def __post_init__(self) -> None:
        if self.rope_scaling is not None:
            self.rope_scaling = normalize_rope_scaling(self.rope_scaling)
        if self.attn_implementation in ATTENTION_ALIASES:
            self.attn_implementation = ATTENTION_ALIASES[self.attn_implementation]
        if isinstance(self.adapters, str):
            self.adapters = [a.strip() for a in self.adapters.split(",") if a.strip()]
        for key in ("add_tokens", "add_special_tokens"):
            value = getattr(self, key)
            if isinstance(value, str):  # LLaMA-Factory's comma list
                setattr(self, key, [t.strip() for t in value.split(",") if t.strip()])
            if any(not t.strip() for t in getattr(self, key)):
                raise ValueError(f"{key}: a token must not be empty")


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
    #: How several training datasets combine (``datasets.interleave_datasets``, seeded by ``training.seed``):
    #: ``concat`` (one after another), ``interleave_under`` (a row of each in turn, or drawn at ``interleave_probs``,
    #: until one runs out) or ``interleave_over`` (until every one has run out, repeating the shorter ones).
    mix_strategy: Literal["concat", "interleave_under", "interleave_over"] = "concat"
    #: Interleaving: the probability of each training dataset (one per dataset, in order, adding up to 1);
    #: ``null`` takes a row of each in turn.
    interleave_probs: list[float] | None = None
    #: Read the training data as a stream (``datasets.IterableDataset``): rows are converted and tokenized as the
    #: trainer asks for them, never all held in memory. Needs ``training.max_steps``; no packing, no ``val_size``.
    streaming: bool = False
    #: Streaming: rows held in the shuffle buffer (each batch draws from it at random, seeded).
    buffer_size: int = 16384
    #: A folder for the prepared (tokenized) data: when it exists it is loaded and preparation is skipped; else
    #: the data is prepared, saved there and used.
    tokenized_path: str | None = None
    #: With several ``eval_dataset`` entries: evaluate each on its own (metrics ``eval_<name>_loss``, ...).
    eval_on_each_dataset: bool = False
    #: Folder that image paths in rows are relative to (default: each dataset's ``dataset_dir``).
    media_dir: str | None = None
    #: LLaMA-Factory's tool format name (``qwen``, ``llama3``, ``mistral``, ``glm4``, ...); ft-core templates
    #: render tools in their own format, so this must name the chat template's (a check, not a switch).
    tool_format: str | None = None
    #: Keep the reasoning of earlier assistant turns where only the last is trained (``mask_history``); by
    #: default it is dropped, as the model sees earlier turns at inference.
    preserve_thinking: bool = False
    #: Vision-language runs: images above this many pixels are scaled down (aspect kept) before processing.
    image_max_pixels: int = 768 * 768
    #: Vision-language runs: images below this many pixels are scaled up (aspect kept).
    image_min_pixels: int = 32 * 32


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
    #: Trainable half-precision weights in fp32 (stable updates; what mixed precision means): ``auto`` casts them
    #: unless the optimizer keeps fp32 copies itself (BAdam); ``false`` keeps them in the dtype they loaded in
    #: (LLaMA-Factory's ``pure_bf16`` with ``model.dtype: bfloat16``: half the weights' memory, coarser updates).
    #: LoRA's own A/B matrices are fp32 either way (PEFT creates them so).
    upcast_trainable: bool | Literal["auto"] = "auto"
    #: Activation checkpointing: ``auto`` (off when the step fits in free GPU memory, else every or every n-th
    #: layer, or offloaded to CPU; always off on the CPU), ``true``, ``false``, or ``offload`` (checkpointed
    #: layer inputs kept in CPU memory).
    gradient_checkpointing: bool | Literal["auto", "offload"] = "auto"
    #: Reentrant checkpointing (``torch.utils.checkpoint`` ``use_reentrant``); ``null``: reentrant when an adapter
    #: trains (a profile against LLaMA-Factory found it faster with LoRA), non-reentrant for full fine-tuning.
    gradient_checkpointing_reentrant: bool | None = None
    #: GPU memory this run may plan for, per process: GiB (``40``) or a share of the card (``"60%"``); ``null``:
    #: the card's free memory. The memory-dependent ``auto`` choices (checkpointing, merged micro-steps) pick the
    #: fastest mode whose estimate fits it; the run reports its peak (``peak_gpu_memory_gib``) against it.
    memory_budget: float | str | None = None
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
    #: The other ``transformers.TrainingArguments`` fields the section sets (``save_strategy: epoch``,
    #: ``lr_scheduler_kwargs: {...}``, ...), checked by their type and handed to the trainer as given; not a key of
    #: its own (write the fields in the section; docs/config-reference.md lists them and those ft-core owns).
    arguments: dict[str, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.memory_budget is not None:
            self.memory_budget = normalize_memory_budget(self.memory_budget)


@dataclass
class GenerationSection:
    """How ``ft-core chat``, ``serve`` and ``predict`` generate from this run (stored with it in ``config.yaml``;
    their command-line flags and a request's own values override it). Defaults: greedy decoding."""

    #: ``0`` = greedy decoding; above 0 samples at this temperature (with ``do_sample`` left ``null``).
    temperature: float = 0.0
    #: Nucleus sampling: keep the smallest set of tokens whose probabilities add up to ``top_p``.
    top_p: float = 1.0
    #: Sample among the ``top_k`` most likely tokens; ``0`` = no limit.
    top_k: int = 0
    #: ``null``: sample when ``temperature`` > 0; ``true`` samples (at temperature 1.0 when it is 0); ``false``:
    #: greedy (or beam search) whatever the temperature.
    do_sample: bool | None = None
    #: Beam search with this many beams (``1`` = off); the reply then arrives in one piece.
    num_beams: int = 1
    #: Most new tokens per reply.
    max_new_tokens: int = 256
    #: ``> 1`` penalises tokens already in the prompt or the reply (CTRL's repetition penalty).
    repetition_penalty: float = 1.0
    #: Beam search: ``> 0`` favours longer replies, ``< 0`` shorter ones.
    length_penalty: float = 1.0
    #: Stop strings that end a reply (besides the template's stop words).
    stop: list[str] = field(default_factory=list)
    #: Seed for reproducible sampling.
    seed: int | None = None

    def __post_init__(self) -> None:
        from ft_core.api.inference import check_sampling

        check_sampling(self)


@dataclass
class DistributedSection:
    """Training on several processes (GPUs): the strategy and how many processes ``ft-core run`` starts."""

    #: ``auto`` (DDP when several processes run), ``ddp``, or a strategy plugin's name: ``fsdp``
    #: (ft-core-fsdp: PyTorch FSDP2) or ``deepspeed`` (ft-core-deepspeed: ZeRO-2 / ZeRO-3); the plugin's own
    #: section (``fsdp:``, ``deepspeed:``) holds its options.
    strategy: str = "auto"
    #: Processes on this machine: ``1`` runs in this process (or in each process a launcher started); ``auto``: one
    #: per visible CUDA GPU (1 on the CPU); ``N``: ``ft-core run`` relaunches itself through ``torchrun`` on ``N``
    #: local processes (gloo on the CPU, NCCL on GPUs). Ignored under a launcher (``WORLD_SIZE`` set).
    nproc: int | Literal["auto"] = 1


@dataclass
class PluginsSection:
    """Which installed plugins act in a run (``plugins: {enable: [my_hooks], disable: [liger]}``)."""

    #: Plugins (entry-point or distribution names) whose lifecycle hooks act in this run although nothing in the
    #: config selects them and they do not switch themselves on by default — e.g. a plugin of hooks only
    #: (pytest's ``-p NAME`` in spirit).
    enable: list[str] = field(default_factory=list)

    #: Plugins (entry-point or distribution names, as ``ft-core plugins`` lists them) whose lifecycle hooks must not
    #: act in this run even when they would switch themselves on by default; selecting one of their components is
    #: an error.
    disable: list[str] = field(default_factory=list)


#: LLaMA-Factory's ``flash_attn`` values accepted in ``model.attn_implementation``, as transformers names them.
ATTENTION_ALIASES: dict[str, str] = {
    "fa2": "flash_attention_2",
    "fa3": "flash_attention_3",
    "disabled": "eager",
}
#: ``model.attn_implementation`` values transformers knows without a plugin registering more (``auto`` and ``null``
#: besides; a Hub kernel repo ``org/name`` is accepted too).
ATTENTION_NAMES: tuple[str, ...] = (
    "sdpa",
    "eager",
    "flash_attention_2",
    "flash_attention_3",
    "flex_attention",
    "torch_varlen",
)


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


def normalize_memory_budget(value: float | str) -> float | str:
    """``training.memory_budget`` as GiB (a positive number, also written as a string) or a share of the card
    (``"NN%"``, above 0 and at most 100); raises ``ValueError`` saying what is accepted."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text.removesuffix("%").strip())
        except ValueError:
            number = -1.0
        if text.endswith("%") and 0 < number <= 100:
            return f"{number:g}%"
        if not text.endswith("%") and number > 0:
            return number
    raise ValueError(
        f"memory_budget: GiB as a positive number (40) or a share of the card's memory ('60%'), got {value!r}"
    )


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
    "distributed": DistributedSection,
    "generation": GenerationSection,
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
    distributed: DistributedSection = field(default_factory=DistributedSection)
    generation: GenerationSection = field(default_factory=GenerationSection)
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
