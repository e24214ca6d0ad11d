"""Base classes of every component kind a plugin can register.

Import-light on purpose (no torch, no transformers): plugins subclass these in their entry-point modules, and
heavy libraries are imported inside the methods that need them.

A component is registered as an *instance*: ``register("lora", LoraAdapter())``. Behaviour components are generic
over their options dataclass (``class LoraAdapter(AdapterMethod[LoraOptions])`` with
``options_schema = LoraOptions``): the config validator checks the component's config section against that schema
before anything heavy runs, and every method later receives an instance of it. Raise
:class:`~ft_core.api.errors.OptionsError` from the dataclass's ``__post_init__`` for a bad value, and override
:meth:`Component.validate` for rules that span sections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from ft_core.api.datasets import DataKind
from ft_core.api.descriptors import ModelFamily

if TYPE_CHECKING:  # pragma: no cover - typing only
    import argparse
    from collections.abc import Sequence

    from ft_core.api.config import RunConfig
    from ft_core.api.context import Encoder, RunContext
    from ft_core.api.conversation import Conversation
    from ft_core.api.datasets import DatasetSpec
    from ft_core.api.inference import ChatModel, ChatTarget

OptionsT = TypeVar("OptionsT")


@dataclass(frozen=True)
class NoOptions:
    """Options schema of a component that takes no options."""


#: The head a model loads with: ``causal_lm`` (next-token logits), ``sequence_classification`` (one score per
#: sequence, read at its last token: a reward model) or ``value`` (one score per token: a value model).
ModelHead = Literal["causal_lm", "sequence_classification", "value"]
#: Every :data:`ModelHead`.
MODEL_HEADS: tuple[ModelHead, ...] = ("causal_lm", "sequence_classification", "value")


@dataclass(frozen=True)
class ModelRole:
    """A model a stage loads (:meth:`TrainingStage.roles`): its role name, the head its weights load with, whether
    it trains, and the custom head modules the stage's :meth:`TrainingStage.prepare_model` adds to it.

    ``head`` picks the transformers class: ``causal_lm`` the causal LM (or a vision family's class),
    ``sequence_classification`` ``AutoModelForSequenceClassification`` and ``value``
    ``AutoModelForTokenClassification``, both with one label (a scalar) and the tokenizer's pad token. An adapter
    method trains a classification head with the adapter (LoRA: PEFT's task type follows the head, see
    :func:`~ft_core.api.modeling.peft_task_type`). ``head_modules`` name modules that ``prepare_model`` adds: they
    train with the adapter (in fp32), are saved into every checkpoint and the artefact as ``heads.safetensors``
    and are restored on resume (:func:`~ft_core.api.modeling.load_heads` loads them back).

    Since 0.3.0.
    """

    #: ``policy`` (the model the run trains and saves), ``reference``, ``reward``, ``value`` or a stage's own name.
    name: str
    head: ModelHead = "causal_lm"
    #: ``RunContext.load_model(name)`` gives a model that trains (adapter applied) or, when false, a frozen model
    #: in eval mode; the call's own ``trainable`` argument wins.
    trainable: bool = True
    head_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.head not in MODEL_HEADS:
            raise ValueError(
                f"ModelRole {self.name!r}: head {self.head!r} is not one of {', '.join(MODEL_HEADS)}"
            )
        object.__setattr__(self, "head_modules", tuple(self.head_modules))


class Component(Generic[OptionsT]):
    """Base of every behaviour component: a description, an options schema and cross-section validation."""

    options_schema: ClassVar[type] = NoOptions
    description: ClassVar[str] = ""

    def validate(self, options: OptionsT, config: RunConfig) -> list[str]:
        """Problems with this component in ``config`` (rules spanning sections), as ``"section.key: what"``
        strings; runs in ``ft-core validate`` and before anything loads. Must stay cheap (no model loading)."""
        return []


# --------------------------------------------------------------------------- behaviour components
class Quantizer(Component[OptionsT]):
    """Quantizes weights at load time (bitsandbytes, HQQ, EETQ, ...).

    On GPUs the engine places a quantized model on the process's own device (``device_map={"": local_rank}``).
    """

    #: Quantized weights train only through an adapter (LoRA = QLoRA): full and freeze tuning are refused.
    trains_with_adapters_only: ClassVar[bool] = True
    #: The quantizer quantizes with its own library after the weights load (HQQ), not through ``load_kwargs``:
    #: the engine then loads the unquantized weights on the CPU and calls :meth:`quantize` for every role, which
    #: quantizes them onto the process's device (so the full-precision model never sits on the GPU). Since 0.4.0.
    quantizes_after_load: ClassVar[bool] = False

    def load_kwargs(self, options: OptionsT, model_config: Any) -> dict[str, Any]:
        """Extra keyword arguments for ``from_pretrained`` (e.g. ``quantization_config``)."""
        raise NotImplementedError

    def quantize(self, model: Any, options: OptionsT, device: Any) -> Any:
        """Quantize ``model`` (loaded unquantized on the CPU) onto ``device`` (``"cpu"`` or a CUDA device index)
        and return it; called for every role (trained or frozen) right after its weights load, only when
        :attr:`quantizes_after_load` is true. Since 0.4.0."""
        raise NotImplementedError

    def prepare(self, model: Any, options: OptionsT, run: RunContext) -> Any:
        """Post-process the loaded model for training (e.g. k-bit training preparation). Returns the model."""
        return model


class AdapterMethod(Component[OptionsT]):
    """Decides which parameters train: LoRA, freeze, full, DoRA, ..."""

    #: True when the saved artefact is a whole model (full/freeze); False for adapters (LoRA).
    saves_full_model: ClassVar[bool] = False

    def apply(self, model: Any, options: OptionsT, family: ModelFamily | None) -> Any:
        """Prepare ``model`` for training and return the model to train."""
        raise NotImplementedError

    def save(self, model: Any, output_dir: str) -> None:
        """Write the trained artefact (adapter or whole model) into ``output_dir``."""
        model.save_pretrained(output_dir)

    def load_for_inference(self, artefact_dir: str, load_base: Any) -> Any:
        """Return a ready model from a saved artefact; ``load_base()`` loads the base model when needed."""
        raise NotImplementedError


class OptimizerFactory(Component[OptionsT]):
    """Builds the optimizer from parameter groups.

    The engine makes the default groups (weight decay ``training.weight_decay`` on weights, none on biases and
    norms), asks :meth:`param_groups` for the factory's own (LoRA+, GaLore, layer-wise learning rates), lets
    plugins adjust them (``ft_adjust_parameter_groups``), then calls :meth:`create`.
    """

    def keeps_fp32_copies(self, options: OptionsT) -> bool:
        """True when the optimizer keeps fp32 copies of the half-precision weights it updates (BAdam's layer
        mode): with ``training.upcast_trainable: auto`` the trainable weights then stay in the dtype they loaded in
        rather than being cast to fp32, which would double the weights' memory. Since 0.4.0."""
        return False

    def param_groups(
        self, options: OptionsT, model: Any, default_groups: list[dict[str, Any]], args: Any
    ) -> list[dict[str, Any]] | None:
        """The parameter groups to optimize, or ``None`` for ``default_groups``. ``model`` is the model being
        trained (adapter applied) and ``args`` the resolved training arguments."""
        return None

    def create(self, options: OptionsT, param_groups: list[dict[str, Any]], args: Any) -> Any:
        """Return the ``torch.optim.Optimizer`` over ``param_groups`` (``args.learning_rate`` is the base lr)."""
        raise NotImplementedError

    def callbacks(self, options: OptionsT) -> list[Any]:
        """Trainer callbacks the optimizer needs (e.g. block switching of BAdam)."""
        return []


class TrainingStage(Component[OptionsT]):
    """A training stage (pt, sft, dpo, ...): it owns its pipeline.

    It declares what it consumes (:attr:`data_kind`) and which models it needs with which heads (:meth:`roles`),
    turns samples into model inputs (:meth:`preprocess`, run in worker processes) and builds its trainer from the
    run's services (:meth:`build_trainer`). The default :meth:`build_trainer` loads the policy model and builds a
    ``transformers.Trainer`` with :meth:`arguments_class` and :meth:`collator`; SFT and PT need nothing else.
    """

    data_kind: ClassVar[DataKind] = "conversation"
    #: Models the stage uses: ``policy`` (trained), ``reference``, ``reward``, ``value``: causal LMs, unless
    #: :meth:`roles` says otherwise.
    model_roles: ClassVar[tuple[str, ...]] = ("policy",)
    #: Names of modules :meth:`prepare_model` adds to every model of :attr:`model_roles` (a value or reward head
    #: of your own): they train along with the adapter, are saved into every checkpoint and the artefact
    #: (``heads.safetensors``) and restored on resume. :meth:`roles` can set them per role instead.
    head_modules: ClassVar[tuple[str, ...]] = ()
    #: The rows are causal-LM rows (``input_ids``, ``labels``, ``attention_mask``) that ``data.packing`` may pack
    #: padding-free: :meth:`RunContext.build_trainer` then replaces the stage's collator with the engine's packing
    #: collator (rows concatenated, position ids per row) and batches rows by a token budget.
    supports_packing: ClassVar[bool] = False
    #: The stage's own collator pads its batches (e.g. chosen and rejected answers side by side) and its loss
    #: reads padded model outputs: with ``data.packing`` the engine keeps those batches and runs each forward pass
    #: padding-free instead (the rows of a batch concatenated into one, position ids per row; the outputs get
    #: their padded shape back before the stage's loss sees them).
    packs_padded_batches: ClassVar[bool] = False
    #: Each sample's rows depend on that sample alone (not on the other samples of its chunk, as packed
    #: pretraining blocks do): the engine then calls :meth:`preprocess` on batches of a few hundred samples and
    #: stores each batch's rows at once, which keeps preprocessing's memory small. Since 0.3.0.
    rows_per_sample: ClassVar[bool] = False
    #: How many sequences of each training row one forward pass with gradients takes (chosen and rejected answers:
    #: 2): ``training.gradient_checkpointing: auto`` multiplies the micro-batch of its memory estimate by it, so a
    #: pairwise stage's batch of 4 rows is estimated as the 8 sequences it really is. Since 0.3.0.
    sequences_per_row: ClassVar[int] = 1

    def roles(self, options: OptionsT) -> tuple[ModelRole, ...]:
        """The models the stage loads, each with its head; ``options`` are the stage's options, so an option can
        choose a head (``ModelRole("policy", head=options.head)``). ``RunContext.load_model(name)`` loads the role
        of that name (a name not listed loads as a trainable causal LM).

        The default is one causal-LM role per name in :attr:`model_roles`, each trainable (``load_model``'s
        ``trainable=False`` freezes one) with the custom heads :attr:`head_modules`. Since 0.3.0.
        """
        return tuple(ModelRole(name, head_modules=self.head_modules) for name in self.model_roles)

    def role(self, name: str, options: OptionsT) -> ModelRole:
        """The role called ``name`` among :meth:`roles`, else a trainable causal LM of that name. Since 0.3.0."""
        return next((role for role in self.roles(options) if role.name == name), ModelRole(name))

    def prepare_model(self, model: Any, run: RunContext, role: str) -> Any:
        """Change a loaded base model before the adapter is applied (e.g. add a custom head named in the role's
        ``head_modules``: ``model.v_head = torch.nn.Linear(...)``); return it. Called for every role. A reward or
        value head needs nothing here: give the role ``head="sequence_classification"`` or ``"value"``."""
        return model

    def preprocess(self, samples: list[Any], encoder: Encoder, options: OptionsT) -> Sequence[dict[str, Any]]:
        """Turn canonical samples (:class:`Conversation` or ``str`` for ``text``) into model-input rows (a list, or
        the sequence ``Encoder.encode_supervised_batch`` returns).

        Runs in worker processes (``data.preprocessing_workers``) over chunks of the data: the stage instance,
        ``options`` and the rows must be picklable. Drop a sample by leaving it out (the engine reports counts).
        """
        raise NotImplementedError

    def arguments_class(self) -> type:
        """The training-arguments class (``transformers.TrainingArguments`` or a TRL config)."""
        from transformers import TrainingArguments

        return TrainingArguments

    def collator(self, run: RunContext) -> Any:
        """The data collator of the default trainer."""
        raise NotImplementedError

    def next_steps(self, run_dir: str, options: OptionsT | None = None) -> list[str]:
        """Lines printed when a run of this stage finishes: what to do with its result. ``options``: the run's stage
        options (default: the options schema's defaults). The default follows the policy role's head:
        ``ft-core chat`` for a causal LM, else how to load the model with its head to score with it. Since 0.3.0."""
        if options is None:
            options = self.options_schema()
        head = self.role("policy", options).head
        if head == "causal_lm":
            return [f"results in {run_dir}; chat with it: ft-core chat {run_dir}"]
        return [
            f"results in {run_dir}: a model with a {head} head (it scores, it does not chat)",
            f"score with it in Python: model, tokenizer = ft_core.bootstrap.load_trained_model({str(run_dir)!r}); "
            "model(**tokenizer(texts, return_tensors='pt', padding=True)).logits",
        ]

    def build_trainer(self, run: RunContext, train_dataset: Any, eval_dataset: Any) -> Any:
        """Return a trainer (``transformers.Trainer`` or a TRL trainer) ready to ``train()``."""
        return run.build_trainer(
            model=run.load_model("policy"),
            args=run.training_arguments(self.arguments_class()),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=self.collator(run),
        )


class TrainingLogger(Component[OptionsT]):
    """Reports metrics somewhere (TensorBoard, W&B, MLflow, ...)."""

    def callback(self, options: OptionsT, run_dir: str) -> Any:
        """Return a ``transformers.TrainerCallback`` (it should log on the main process only)."""
        raise NotImplementedError


class DatasetFormat(Component[OptionsT]):
    """Converts raw rows of a dataset file into canonical samples."""

    #: ``conversation`` or ``text``: what :meth:`convert` returns.
    produces: ClassVar[str] = "conversation"

    def convert(self, row: dict[str, Any], spec: DatasetSpec) -> Conversation | str:
        """Convert one row; raise ``ValueError`` with a specific message when the row is malformed."""
        raise NotImplementedError


#: The attribute :func:`mark_fused_loss` sets on a model.
FUSED_LOSS_ATTRIBUTE = "ft_core_fused_loss"


def mark_fused_loss(model: Any) -> None:
    """Say that ``model``'s training forward computes the loss without materialising the logits (a fused linear
    cross-entropy, as Liger's): the engine's memory estimates (merged micro-steps, ``training.memory_budget``) then
    leave the logits out. A :class:`ModelPatch` that installs such a forward calls it in ``patch_model``."""
    setattr(model, FUSED_LOSS_ATTRIBUTE, True)


def has_fused_loss(model: Any) -> bool:
    """Whether :func:`mark_fused_loss` was called on ``model`` (the base model, not a PEFT wrapper)."""
    return getattr(model, FUSED_LOSS_ATTRIBUTE, False) is True


class ModelPatch(Component[OptionsT]):
    """Patches a model or its config (flash-attn, Liger, Unsloth, NEFTune, RoPE scaling, ...). A patch whose
    forward computes the loss without the logits calls :func:`mark_fused_loss` on the model."""

    def patch_config(self, model_config: Any, options: OptionsT) -> None:
        """Adjust the model config before weights load."""

    def patch_model(self, model: Any, options: OptionsT) -> Any:
        """Patch the loaded model (before the adapter is applied); return it."""
        return model


class InferenceEngine(Component[OptionsT]):
    """Generates text from a base model or a trained run (Hugging Face generate, vLLM, ...)."""

    def load(self, target: ChatTarget, options: OptionsT) -> ChatModel:
        """Load ``target`` and return a :class:`~ft_core.api.inference.ChatModel`."""
        raise NotImplementedError


class CliCommand(Component[OptionsT]):
    """A ``ft-core`` sub-command."""

    help: ClassVar[str] = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the command's arguments."""

    def run(self, args: argparse.Namespace) -> int:
        """Run the command; return the exit status. ``args.services`` is the engine's
        :class:`~ft_core.api.services.Services` (run folders and models as chat targets, datasets as conversations,
        trained models with their heads); ``args.plugins`` is the loaded plugin manager."""
        raise NotImplementedError
