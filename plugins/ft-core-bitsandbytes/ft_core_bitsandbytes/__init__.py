"""ft-core plugin: the ``bitsandbytes`` quantizer (4-bit NF4/FP4 for QLoRA, 8-bit LLM.int8).

Registered as ``bitsandbytes`` and as ``bnb`` (LLaMA-Factory's ``quantization_method: bnb``).
Import-light: torch, transformers, peft and bitsandbytes are imported when the quantizer is used. Registration
only adds a log filter to two bitsandbytes loggers (no import), because peft imports bitsandbytes whenever it is
installed and bitsandbytes then logs advice that does not apply (see ``quantizer._QuietBitsAndBytes``).
"""

from __future__ import annotations

from ft_core.api import Quantizer, Register, hookimpl
from ft_core_bitsandbytes.quantizer import (
    MIN_BITSANDBYTES,
    BitsAndBytesOptions,
    BitsAndBytesQuantizer,
    quiet_bitsandbytes_logs,
    resolve_compute_dtype,
)

__all__ = ["MIN_BITSANDBYTES", "BitsAndBytesOptions", "BitsAndBytesQuantizer", "resolve_compute_dtype"]


@hookimpl
def ft_register_quantizers(register: Register[Quantizer]) -> None:
    quiet_bitsandbytes_logs()
    quantizer = BitsAndBytesQuantizer()
    register("bitsandbytes", quantizer)
    register("bnb", quantizer)
