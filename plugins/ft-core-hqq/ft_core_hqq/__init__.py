"""ft-core plugin: the ``hqq`` quantizer (HQQ 1/2/3/4/5/6/8-bit frozen base weights for LoRA training).

Import-light: torch, transformers, peft and hqq are imported when the quantizer is used.
"""

from __future__ import annotations

from ft_core.api import Quantizer, Register, hookimpl
from ft_core_hqq.quantizer import (
    BITS,
    MIN_HQQ,
    HqqOptions,
    HqqQuantizer,
    load_quantized_model,
    quantize_model,
)

__all__ = ["BITS", "MIN_HQQ", "HqqOptions", "HqqQuantizer", "load_quantized_model", "quantize_model"]


@hookimpl
def ft_register_quantizers(register: Register[Quantizer]) -> None:
    register("hqq", HqqQuantizer())
