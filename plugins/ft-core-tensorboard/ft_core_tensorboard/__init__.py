"""ft-core plugin: the ``tensorboard`` logger (event files readable by TensorBoard).

Import-light: torch, transformers and tensorboard are imported when the callback is built, not at registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ft_core.api import Register, TrainingLogger, hookimpl

__all__ = ["TensorBoardLogger", "TensorBoardOptions"]


@dataclass(frozen=True)
class TensorBoardOptions:
    """Options of the ``tensorboard`` logger."""

    #: Folder for event files (default: ``<output_dir>/tensorboard``).
    log_dir: str | None = None


class TensorBoardLogger(TrainingLogger[TensorBoardOptions]):
    """Writes scalars (loss, learning rate, grad norm, eval metrics) as TensorBoard event files."""

    options_schema: ClassVar[type] = TensorBoardOptions
    description: ClassVar[str] = "TensorBoard event files"

    def callback(self, options: TensorBoardOptions, run_dir: str) -> Any:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        log_dir = Path(options.log_dir) if options.log_dir else Path(run_dir) / "tensorboard"
        log_dir.mkdir(parents=True, exist_ok=True)
        return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))


@hookimpl
def ft_register_loggers(register: Register[TrainingLogger[Any]]) -> None:
    register("tensorboard", TensorBoardLogger())
