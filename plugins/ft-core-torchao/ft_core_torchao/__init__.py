"""ft-core plugin: the ``torchao`` quantizer (FP8 or int8 frozen base weights for LoRA training).

Import-light: torch, transformers, peft and torchao are imported when the quantizer is used. Registration only
adds a log filter to two loggers (no import), see ``quantizer._QuietTorchAo``.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import Quantizer, Register, RunContext, hookimpl
from ft_core_torchao.quantizer import (
    MIN_TORCHAO,
    SCHEMES,
    TorchAoOptions,
    TorchAoQuantizer,
    ignore_quantized_weights_in_ddp,
    quiet_torchao_logs,
    torchao_config,
)

__all__ = [
    "MIN_TORCHAO",
    "SCHEMES",
    "TorchAoOptions",
    "TorchAoQuantizer",
    "ignore_quantized_weights_in_ddp",
    "torchao_config",
]


@hookimpl
def ft_register_quantizers(register: Register[Quantizer]) -> None:
    quiet_torchao_logs()
    register("torchao", TorchAoQuantizer())


@hookimpl
def ft_model_ready(model: Any, run: RunContext, role: str) -> None:
    """Keep torchao weights out of DistributedDataParallel's start-up broadcast (which fails on them)."""
    selection = run.config.one("quantization")
    if selection is not None and isinstance(selection.component, TorchAoQuantizer):
        ignore_quantized_weights_in_ddp(model)
