"""A stage's head modules (``TrainingStage.head_modules``): made trainable, saved with checkpoints and the
artefact as ``heads.safetensors``, restored on resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ft_core.api.errors import FtCoreError
from ft_core.api.modeling import upcast_trainable_parameters
from ft_core.engine.training.callbacks import checkpoint_folder

HEADS_FILE = "heads.safetensors"


def find_heads(model: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The modules called ``names`` in ``model`` (also when an adapter wraps it), by head name."""
    found: dict[str, Any] = {}
    for name in names:
        matches = [m for path, m in model.named_modules() if path == name or path.endswith(f".{name}")]
        if not matches:
            raise FtCoreError(
                f"stage head {name!r} is not in {type(model).__name__}: add it in the stage's prepare_model"
            )
        found[name] = matches[0]
    return found


def train_heads(heads: dict[str, Any]) -> None:
    """Make every head parameter trainable, in fp32 (like adapter weights)."""
    for head in heads.values():
        head.requires_grad_(True)
        upcast_trainable_parameters(head)


def save_heads(heads: dict[str, Any], folder: Path) -> None:
    """Write the heads' weights to ``folder/heads.safetensors``."""
    from safetensors.torch import save_file

    tensors = {
        f"{name}.{key}": value.detach().contiguous().cpu()
        for name, head in heads.items()
        for key, value in head.state_dict().items()
    }
    save_file(tensors, str(folder / HEADS_FILE))


def load_heads(heads: dict[str, Any], folder: Path) -> bool:
    """Load ``folder/heads.safetensors`` into the heads; ``False`` when the folder has none."""
    path = folder / HEADS_FILE
    if not path.is_file():
        return False
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    for name, head in heads.items():
        prefix = f"{name}."
        head.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    return True


def heads_callback(heads: dict[str, Any]) -> Any:
    """A ``TrainerCallback`` saving the heads into each checkpoint (main process)."""
    from transformers import TrainerCallback

    class HeadsCallback(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = checkpoint_folder(args, state)
            if state.is_world_process_zero and folder.is_dir():
                save_heads(heads, folder)

    return HeadsCallback()
