"""The engine's :class:`~ft_core.api.services.Services`: run folders, models and datasets for commands."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ft_core.api.config import DataSection
from ft_core.api.conversation import Conversation
from ft_core.api.inference import ChatTarget
from ft_core.api.services import Services
from ft_core.engine.plugins import Plugins


class EngineServices(Services):
    """Services backed by the engine and the loaded plugins."""

    def __init__(self, plugins: Plugins) -> None:
        self.plugins = plugins

    def chat_target(self, reference: str, adapters: Sequence[str] = ()) -> ChatTarget:
        from ft_core.engine.inference.target import resolve_chat_target

        return resolve_chat_target(reference, self.plugins, adapters)

    def load_conversations(
        self, names: Sequence[str], *, dataset_dir: str = "data", max_samples: int | None = None
    ) -> list[Conversation]:
        from ft_core.engine.data.loader import load_samples

        data = DataSection(dataset=list(names), dataset_dir=dataset_dir, max_samples=max_samples)
        samples = load_samples(list(names), data, self.plugins, "conversation", seed=0)
        return [sample for sample in samples if isinstance(sample, Conversation)]

    def load_trained_model(
        self, run_dir: str, *, dtype: str = "auto", add_heads: Callable[[Any], None] | None = None
    ) -> tuple[Any, Any]:
        from ft_core.engine.inference.target import load_trained_model

        return load_trained_model(run_dir, self.plugins, dtype=dtype, add_heads=add_heads)
