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
    #: ``sdpa``, ``eager`` or ``flash_attention_2`` (the latter needs a plugin or flash-attn installed).
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    #: Where converted GGUF models are cached (default ``~/.cache/ft-core/models``).
    cache_dir: str | None = None


@dataclass
class TemplateSection:
    """The chat template (``template: chatml`` is shorthand for ``template: {name: chatml}``)."""

    #: A registered template name, or ``auto`` to use the tokenizer's own Jinja template.
    name: str = "auto"
    #: Compare with the tokenizer's own template at start-up: ``strict`` stops on a mismatch, ``warn`` warns.
    check: Literal["strict", "warn", "off"] = "strict"
    #: Default system prompt inserted when a conversation has none.
    system: str | None = None


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
    gradient_checkpointing: bool = False
    #: ``null`` = use the GPU when there is one.
    use_cpu: bool | None = None
    dataloader_num_workers: int = 0
    #: Multi-process (DDP) runs: look for parameters that get no gradient each step (slower; only needed
    #: when a model leaves trainable parameters unused).
    ddp_find_unused_parameters: bool = False
    #: Plot the loss curve to ``loss.png`` at the end.
    plot_loss: bool = True


#: Core sections and their schemas (component sections come from :data:`ft_core.api.kinds.KINDS`).
CORE_SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "template": TemplateSection,
    "data": DataSection,
    "training": TrainingSection,
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
