"""Resolve what ``ft-core chat`` talks to: a trained run folder or a plain model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ft_core.errors import FtCoreError
from ft_core.plugins import Plugins
from ft_core.run import output


@dataclass
class ChatTarget:
    """A loadable chat model: where its tokenizer is and how to build the model."""

    description: str
    tokenizer_path: str
    load_model: Callable[[Any], Any]  # dtype -> model
    stop_words: list[str] = field(default_factory=list)
    #: The system prompt the run was trained with (``template.system``), used when chat is given none.
    system: str | None = None


def _load_pretrained(path: str, dtype: Any) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)


def resolve_chat_target(path: str, plugins: Plugins) -> ChatTarget:
    """A run folder (base + adapter, using the run's chat template) or a model reference."""
    from ft_core.models.embedded import resolve_model_path

    folder = Path(path)
    if (folder / output.MANIFEST).is_file():
        manifest = output.read_manifest(folder)
        if manifest.get("status") != "completed":
            raise FtCoreError(
                f"{folder}: the run has not finished (status {manifest.get('status')!r}); "
                f"resume it with `ft-core run {folder / output.RESOLVED_CONFIG}` first"
            )
        artefact = folder / manifest.get("artefact", output.ARTEFACT_DIR)
        adapter_name = next((c["name"] for c in manifest["components"] if c["section"] == "adapter"), None)
        base = manifest["base_model"]["path"]
        if adapter_name is None:
            raise FtCoreError(f"{folder / output.MANIFEST}: names no adapter method")
        adapter = plugins.get("adapter", adapter_name)
        template = manifest.get("template", {})
        return ChatTarget(
            description=f"{folder} ({adapter_name} on {manifest['base_model']['name_or_path']})",
            tokenizer_path=str(artefact),
            load_model=lambda dtype: adapter.load_for_inference(
                str(artefact), lambda: _load_pretrained(base, dtype)
            ),
            stop_words=list(template.get("stop_words", [])),
            system=template.get("system"),
        )
    resolved = resolve_model_path(path, None)
    return ChatTarget(
        description=path, tokenizer_path=resolved, load_model=lambda dtype: _load_pretrained(resolved, dtype)
    )
