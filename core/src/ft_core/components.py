"""Base classes of every component kind a plugin can register.

This module is import-light on purpose (no torch, no transformers): plugins subclass these in their
entry-point modules, and heavy libraries are imported inside the methods that need them.

A component is registered as an *instance*: ``register("lora", LoraAdapter())``. Its ``options_schema`` is
a dataclass; the config validator checks the component's config section against it before anything heavy
runs, and the component later receives an instance of that dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover - typing only
    import argparse

    from ft_core.data.conversation import Conversation
    from ft_core.data.spec import DatasetSpec
    from ft_core.run.context import RunContext


@dataclass(frozen=True)
class NoOptions:
    """Options schema of a component that takes no options."""


class Component:
    """Base of every component: a description and an options schema (a dataclass type)."""

    options_schema: ClassVar[type] = NoOptions
    description: ClassVar[str] = ""


# --------------------------------------------------------------------------- data-like components
@dataclass(frozen=True)
class ChatTemplate:
    """A chat template: a Jinja template in the Hugging Face ``chat_template`` dialect.

    ``jinja`` receives ``messages`` (``role`` / ``content`` / ``tool_calls``), ``tools``,
    ``add_generation_prompt`` and the tokenizer's special tokens (``bos_token``, ``eos_token``), exactly as
    ``tokenizer.apply_chat_template`` passes them, so a template can be the model's own verbatim.
    ``stop_words`` are extra strings that end a generated assistant turn (the tokenizer's EOS always does).
    ``tokenizer_template_may_differ`` turns the start-up equality check against the tokenizer's own template
    off for templates that are deliberately generic (``default``, ``alpaca``, ...).
    """

    jinja: str
    stop_words: tuple[str, ...] = ()
    description: str = ""
    tokenizer_template_may_differ: bool = False


@dataclass(frozen=True)
class ModelFamily:
    """What ft-core needs to know about one architecture family.

    ``model_types``: the ``config.model_type`` values this family covers.
    ``default_template``: the template suggested when ``template: auto`` finds no template in the tokenizer.
    ``decoder_layers``: dotted attribute path of the decoder-layer ``ModuleList`` (freeze tuning uses it).
    ``lora_targets``: module names that ``targets: all`` expands to; ``None`` means every ``nn.Linear``
    except the output head.
    """

    model_types: tuple[str, ...]
    default_template: str | None = None
    decoder_layers: str = "model.layers"
    lora_targets: tuple[str, ...] | None = None
    description: str = ""


# --------------------------------------------------------------------------- behaviour components
class Quantizer(Component):
    """Quantizes weights at load time (bitsandbytes, HQQ, EETQ, ...)."""

    def load_kwargs(self, options: Any, model_config: Any) -> dict[str, Any]:
        """Extra keyword arguments for ``from_pretrained`` (e.g. ``quantization_config``)."""
        raise NotImplementedError

    def after_load(self, model: Any, options: Any) -> Any:
        """Post-process the loaded model (e.g. prepare for k-bit training). Returns the model."""
        return model


class AdapterMethod(Component):
    """Decides which parameters train: LoRA, freeze, full, DoRA, ..."""

    #: True when the saved artefact is a whole model (full/freeze); False for adapters (LoRA).
    saves_full_model: ClassVar[bool] = False

    def apply(self, model: Any, options: Any, family: ModelFamily | None) -> Any:
        """Prepare ``model`` for training and return the model to train."""
        raise NotImplementedError

    def save(self, model: Any, output_dir: str) -> None:
        """Write the trained artefact (adapter or whole model) into ``output_dir``."""
        model.save_pretrained(output_dir)

    def load_for_inference(self, artefact_dir: str, load_base: Any) -> Any:
        """Return a ready model from a saved artefact; ``load_base()`` loads the base model when needed."""
        raise NotImplementedError


class OptimizerFactory(Component):
    """Chooses the optimizer class and its arguments; the trainer builds it over the trainable parameters
    (with weight decay off for biases and norms), so it works unchanged under DeepSpeed and FSDP."""

    def cls_and_kwargs(self, options: Any, learning_rate: float) -> tuple[type, dict[str, Any]]:
        """Return ``(optimizer_class, keyword_arguments)``; ``lr`` must be among the arguments."""
        raise NotImplementedError


class TrainingStage(Component):
    """A training stage (pt, sft, dpo, ...): prepares the data and builds the trainer."""

    #: ``conversation`` (chat rows rendered by the template) or ``text`` (plain documents).
    data_kind: ClassVar[str] = "conversation"

    def tokenize(self, ctx: RunContext, samples: list[Any]) -> list[dict[str, list[int]]]:
        """Turn canonical samples into model inputs (``input_ids``, ``labels``, ...)."""
        raise NotImplementedError

    def build_trainer(self, ctx: RunContext, train_dataset: Any, eval_dataset: Any, callbacks: list) -> Any:
        """Return a ``transformers.Trainer`` (or subclass) ready to ``train()``."""
        raise NotImplementedError


class TrainingLogger(Component):
    """Reports metrics somewhere (TensorBoard, W&B, MLflow, ...)."""

    def callback(self, options: Any, run_dir: str) -> Any:
        """Return a ``transformers.TrainerCallback``."""
        raise NotImplementedError


class DatasetFormat(Component):
    """Converts raw rows of a dataset file into canonical samples."""

    #: ``conversation`` or ``text``: what :meth:`convert` returns.
    produces: ClassVar[str] = "conversation"

    def convert(self, row: dict[str, Any], spec: DatasetSpec) -> Conversation | str:
        """Convert one row; raise ``ValueError`` with a specific message when the row is malformed."""
        raise NotImplementedError


class ModelPatch(Component):
    """Patches a model or its config (flash-attn, Liger, Unsloth, NEFTune, RoPE scaling, ...)."""

    def patch_config(self, model_config: Any, options: Any) -> None:
        """Adjust the model config before weights load."""

    def patch_model(self, model: Any, options: Any) -> Any:
        """Patch the loaded model; return it."""
        return model


class InferenceEngine(Component):
    """Generates text from a base model or a trained run (Hugging Face generate, vLLM, ...)."""

    def load(self, target: Any, options: Any) -> Any:
        """Load ``target`` (a :class:`ft_core.inference.target.ChatTarget`); return an object with
        ``chat(messages: list[dict], max_new_tokens: int, temperature: float) -> Iterator[str]``."""
        raise NotImplementedError


class CliCommand(Component):
    """A ``ft-core`` sub-command."""

    help: ClassVar[str] = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the command's arguments."""

    def run(self, args: argparse.Namespace) -> int:
        """Run the command; return the exit status."""
        raise NotImplementedError


@dataclass(frozen=True)
class Kind:
    """One component kind: its registry key, hook name, base type and the config key that selects it."""

    key: str
    hook: str
    base: type
    title: str
    singular: str


KINDS: tuple[Kind, ...] = (
    Kind("model_family", "ft_register_model_families", ModelFamily, "model families", "model family"),
    Kind("chat_template", "ft_register_chat_templates", ChatTemplate, "chat templates", "chat template"),
    Kind("quantizer", "ft_register_quantizers", Quantizer, "quantizers", "quantizer"),
    Kind("adapter", "ft_register_adapters", AdapterMethod, "adapter methods", "adapter method"),
    Kind("optimizer", "ft_register_optimizers", OptimizerFactory, "optimizers", "optimizer"),
    Kind("stage", "ft_register_stages", TrainingStage, "training stages", "training stage"),
    Kind("logger", "ft_register_loggers", TrainingLogger, "loggers", "logger"),
    Kind("dataset_format", "ft_register_dataset_formats", DatasetFormat, "dataset formats", "dataset format"),
    Kind("model_patch", "ft_register_model_patches", ModelPatch, "model patches / kernels", "model patch"),
    Kind(
        "inference_engine",
        "ft_register_inference_engines",
        InferenceEngine,
        "inference engines",
        "inference engine",
    ),
    Kind("cli_command", "ft_register_cli_commands", CliCommand, "CLI commands", "CLI command"),
)
KINDS_BY_KEY: dict[str, Kind] = {k.key: k for k in KINDS}
