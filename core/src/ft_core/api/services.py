"""What commands get from the engine without importing it: ``args.services`` in :meth:`CliCommand.run`.

The CLI hands every command an implementation of :class:`Services` (the engine's); plugins' commands (serve, export,
predict, eval, ...) use it to turn run folders and model references into models and datasets into conversations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ft_core.api.conversation import Conversation
    from ft_core.api.inference import ChatTarget


class Services(ABC):
    """Engine services for commands."""

    @abstractmethod
    def chat_target(self, reference: str, adapters: Sequence[str] = ()) -> ChatTarget:
        """A finished run folder (base + adapter with the run's chat template, system prompt and stop words) or a
        model reference (a Hugging Face folder, a Hub id, a ``.gguf`` file, the embedded alias) as a
        :class:`ChatTarget`, with ``adapters`` (PEFT adapter or run folders; since 0.4.0) merged into it in order;
        raises :class:`~ft_core.api.errors.FtCoreError` saying what is wrong with ``reference``."""

    @abstractmethod
    def load_conversations(
        self, names: Sequence[str], *, dataset_dir: str = "data", max_samples: int | None = None
    ) -> list[Conversation]:
        """The conversations of datasets ``names`` (``dataset_info.json`` in ``dataset_dir``, or the demo sets),
        converted as a run reads them; malformed rows raise :class:`~ft_core.api.errors.DataError` naming them."""

    @abstractmethod
    def load_trained_model(
        self, run_dir: str, *, dtype: str = "auto", add_heads: Callable[[Any], None] | None = None
    ) -> tuple[Any, Any]:
        """A finished run's trained model with its head (eval mode) and its tokenizer (``add_heads`` re-adds a
        stage's custom head modules before their weights load)."""
