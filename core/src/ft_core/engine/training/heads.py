"""A run's custom head modules (``ModelRole.head_modules``): made trainable, saved with every checkpoint and the
artefact as ``heads.safetensors``, restored on resume. Finding, saving and loading them is the public API's
(:func:`~ft_core.api.modeling.find_heads`, :func:`~ft_core.api.modeling.save_heads`,
:func:`~ft_core.api.modeling.load_heads`); the engine re-exports them from here."""

from __future__ import annotations

from typing import Any

from ft_core.api.modeling import HEADS_FILE, find_heads, load_heads, save_heads, upcast_trainable_parameters
from ft_core.engine.training.callbacks import checkpoint_folder

__all__ = ["HEADS_FILE", "find_heads", "heads_callback", "load_heads", "save_heads", "train_heads"]


def train_heads(heads: dict[str, Any]) -> None:
    """Make every head parameter trainable, in fp32 (like adapter weights)."""
    for head in heads.values():
        head.requires_grad_(True)
        upcast_trainable_parameters(head)


def heads_callback(heads: dict[str, Any]) -> Any:
    """A ``TrainerCallback`` saving the heads into each checkpoint (main process)."""
    from transformers import TrainerCallback

    class HeadsCallback(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = checkpoint_folder(args, state)
            if state.is_world_process_zero and folder.is_dir():
                save_heads(heads, folder)

    return HeadsCallback()
