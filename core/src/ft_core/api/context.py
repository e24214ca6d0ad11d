"""What stages, components and lifecycle hooks work with: the run context (core services) and the encoder.

Both are abstract here and implemented by the engine; plugins only use them through these interfaces.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_core.api.resolved_template import ResolvedTemplate as ResolvedTemplate

if TYPE_CHECKING:  # pragma: no cover - typing only
    from collections.abc import Sequence

    from ft_core.api.config import RunConfig
    from ft_core.api.conversation import Conversation, Message
    from ft_core.api.descriptors import ModelFamily
    from ft_core.api.events import RunEvent
    from ft_core.api.plan import RunPlan

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

    def encode_supervised_batch(
        self, conversations: Sequence[Conversation]
    ) -> Sequence[dict[str, list[int]]]:
        """The supervised rows of many conversations: :meth:`encode_supervised` of each, concatenated in order. The
        engine's encoder tokenizes them together (one call of the fast tokenizer) and returns the same rows as a
        read-only sequence kept as columns, which the engine stores as they are. Since 0.3.0."""
        return [row for conversation in conversations for row in self.encode_supervised(conversation)]

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
    """A run as stages, components and lifecycle hooks see it: its frozen plan, resolved pieces and core services.

    Every attribute is set when the run starts (nothing is ``None`` until some later step).
    """

    #: The run plan: components, tokenizer, template, family, data statistics and every engine decision.
    plan: RunPlan
    config: RunConfig
    run_dir: Path
    process: ProcessInfo
    #: The tokenizer (pad token set, the run's chat template applied); ``plan.tokenizer``.
    tokenizer: Any
    #: The chat template of conversation stages (``None`` for ``text`` stages); ``plan.template``.
    template: ResolvedTemplate | None
    #: The model family covering the base model's ``model_type``, if a plugin registers one; ``plan.family``.
    family: ModelFamily | None
    #: True when the run trains on a CUDA GPU (``training.use_cpu`` not set and a GPU is present).
    uses_gpu: bool
    #: Per-run state of plugins, kept for the run's lifetime: key it by your distribution name
    #: (``run.state.setdefault("my-plugin", {})``) instead of keeping module globals.
    state: dict[str, Any]

    @abstractmethod
    def record(self, key: str, value: Any, reason: str = "") -> None:
        """Add a decision of yours to the run's decisions (the manifest's ``decisions``, beside the plan's), e.g.
        ``run.record("liger.kernels", ["rms_norm", "swiglu"], "on by default for llama on a CUDA GPU")``; the
        distribution that called it is recorded with it. JSON-ready values only."""

    @abstractmethod
    def load_model(self, role: str = "policy", *, trainable: bool | None = None) -> Any:
        """Load the model for ``role`` with the head the stage declares for it (``TrainingStage.roles``), through
        the named steps: config patches, quantizer, weights (or a ``ft_load_model`` plugin), model patches and, for a
        trainable model, the adapter (``ft_patch_model`` / ``ft_model_ready`` hooks run around it).
        ``trainable`` (default: the role's own) ``False`` gives a frozen model in eval mode (a reference model)."""

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
