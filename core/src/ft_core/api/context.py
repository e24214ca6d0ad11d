"""What stages, components and lifecycle hooks work with: the run context (core services) and the encoder.

Both are abstract here and implemented by the engine; plugins only use them through these interfaces.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ft_core.api.config import RunConfig
    from ft_core.api.conversation import Conversation, Message
    from ft_core.api.descriptors import ModelFamily
    from ft_core.api.events import RunEvent

#: Label of a token that is not trained.
IGNORE_INDEX = -100


@dataclass(frozen=True)
class ProcessInfo:
    """This process's place in a (possibly multi-process) run, as ``torchrun`` / ``accelerate launch`` set it."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main_process(self) -> bool:
        """True on the process that writes outputs, manifest, caches and plots (rank 0)."""
        return self.rank == 0

    @classmethod
    def current(cls) -> ProcessInfo:
        """This process's place, from the launcher's environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``); a
        single process when they are unset. Plugins print progress lines only where ``is_main_process``."""
        return cls(
            rank=int(os.environ.get("RANK", "0")),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            world_size=int(os.environ.get("WORLD_SIZE", "1")),
        )


@dataclass(frozen=True)
class ResolvedTemplate:
    """The chat template a run uses, and where it came from (recorded in the run manifest).

    ``version`` is the providing distribution's version, or ``sha256:<12 hex>`` of the Jinja text for a
    template derived from the tokenizer.
    """

    name: str
    jinja: str
    stop_words: tuple[str, ...]
    distribution: str
    version: str
    derived_from_tokenizer: bool
    tokenizer_template_may_differ: bool = False
    #: False for templates that rewrite earlier turns (each assistant turn is then encoded as its own row).
    prefix_stable: bool = True
    #: Answers end with the next turn's marker (a stop word) or EOS, trained after each answer.
    stop_at_next_turn: bool = False
    #: Extra Jinja variables: the template's defaults overridden by ``template.kwargs``.
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    #: Splits generated text into ``(content, tool_calls)`` (``None``: the template has no tool format).
    parse_tool_calls: Callable[[str], tuple[str, list[dict[str, Any]]]] | None = field(
        default=None, compare=False, repr=False
    )

    def manifest(self) -> dict[str, Any]:
        """The (name, distribution, version, ...) record for the run manifest, without the Jinja text."""
        record = {
            key: value for key, value in asdict(self).items() if key not in ("jinja", "parse_tool_calls")
        }
        record["stop_words"] = list(self.stop_words)
        record["supports_tools"] = self.parse_tool_calls is not None
        return record


class Encoder(ABC):
    """Turns samples into token ids with the run's tokenizer and chat template, exactly (picklable: stages use it
    in worker processes). Conversation rows are ``input_ids`` / ``labels`` (:data:`IGNORE_INDEX` where not trained) /
    ``attention_mask``, cut to ``cutoff_len``."""

    tokenizer: Any
    cutoff_len: int

    @abstractmethod
    def encode_conversation(self, conversation: Conversation) -> dict[str, list[int]] | None:
        """Supervised row of a conversation (every assistant turn trained, as ``data.train_on_prompt`` /
        ``data.mask_history`` say), or ``None`` when no trained token survives the cut."""

    def encode_supervised(self, conversation: Conversation) -> list[dict[str, list[int]]]:
        """The supervised rows of a conversation: one (:meth:`encode_conversation`) for prefix-stable templates; one
        per assistant turn, each exactly as inference renders it, for templates that rewrite earlier turns
        (reasoning templates). Stages that train on conversations call this."""
        row = self.encode_conversation(conversation)
        return [] if row is None else [row]

    @abstractmethod
    def encode_completion(
        self, conversation: Conversation, answer: Message | None = None
    ) -> tuple[list[int], list[int]]:
        """``(prompt_ids, completion_ids)``: the conversation up to its last assistant turn rendered with the
        generation prompt, and that turn (or ``answer`` in its place) with its end-of-turn marker, tokenized
        exactly as in the whole rendering (untruncated)."""

    @abstractmethod
    def encode_prompt(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> list[int]:
        """Token ids prompting the model for the next assistant turn (``add_generation_prompt``)."""

    @abstractmethod
    def encode_text(self, texts: list[str]) -> list[list[int]]:
        """Plain documents as token ids (BOS as the tokenizer adds it, EOS appended)."""


class RunContext(ABC):
    """A run as stages, components and lifecycle hooks see it: config, resolved pieces and core services."""

    config: RunConfig
    run_dir: Path
    process: ProcessInfo
    #: The tokenizer (pad token set, the run's chat template applied).
    tokenizer: Any
    #: The chat template of conversation stages (``None`` for ``text`` stages).
    template: ResolvedTemplate | None
    #: The model family covering the base model's ``model_type``, if a plugin registers one.
    family: ModelFamily | None

    @property
    @abstractmethod
    def uses_gpu(self) -> bool:
        """True when the run trains on a CUDA GPU (``training.use_cpu`` not set and a GPU is present)."""

    @abstractmethod
    def load_model(self, role: str = "policy", *, trainable: bool = True) -> Any:
        """Load the base model for ``role``: config patches, quantizer, weights (or a ``ft_load_model`` plugin),
        model patches and, for a trainable model, the adapter (``ft_patch_model`` / ``ft_model_ready`` hooks run
        around it). ``trainable=False`` gives a frozen model in eval mode (a reference or reward model)."""

    @abstractmethod
    def training_arguments(self, arguments_class: type | None = None, **overrides: Any) -> Any:
        """The ``training`` section as ``arguments_class`` (``TrainingArguments`` by default, or a TRL config),
        with ``overrides`` and ``ft_adjust_training_arguments`` applied."""

    @abstractmethod
    def build_trainer(
        self,
        *,
        model: Any,
        args: Any,
        train_dataset: Any,
        eval_dataset: Any = None,
        data_collator: Any = None,
        trainer_class: type | None = None,
        **trainer_kwargs: Any,
    ) -> Any:
        """A trainer of ``trainer_class`` (``transformers.Trainer`` by default; any subclass, e.g. TRL's) with the
        run's optimizer plugin, callbacks (events, loggers, plugins), token counting and cancellation."""

    @abstractmethod
    def encoder(self) -> Encoder:
        """The run's :class:`Encoder`."""

    @abstractmethod
    def emit(self, event: RunEvent) -> None:
        """Send a run event to every ``ft_run_event`` implementation (console, metrics file, web board ...)."""

    @abstractmethod
    def main_process_first(self) -> AbstractContextManager[None]:
        """Context manager: the main process runs the block first, the others after it (a barrier)."""
