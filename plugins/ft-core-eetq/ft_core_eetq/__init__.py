"""ft-core plugin: the ``eetq`` quantizer (EETQ int8 weight-only frozen base weights, CUDA GPUs only).

Import-light: torch, transformers, peft, kernels and eetq are imported when the quantizer is used.
"""

from __future__ import annotations

from ft_core.api import Quantizer, Register, hookimpl
from ft_core_eetq.quantizer import EetqOptions, EetqQuantizer, installation_problems

__all__ = ["EetqOptions", "EetqQuantizer", "installation_problems"]


@hookimpl
def ft_register_quantizers(register: Register[Quantizer]) -> None:
    register("eetq", EetqQuantizer())
