"""ft-core plugin: the ``llama_pro`` adapter method (LLaMA Pro block expansion, Wu et al. 2024).

Copies of chosen decoder blocks are interleaved into the model with their output projections zeroed (each new block
starts as the identity), and only the new blocks train, in full or through LoRA. The artefact is the whole expanded
model. Import-light: torch and peft are imported when the adapter is used, not at registration.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import AdapterMethod, Register, hookimpl
from ft_core_llama_pro.adapter import LlamaProAdapter, LlamaProOptions
from ft_core_llama_pro.expand import expand_blocks

__all__ = ["LlamaProAdapter", "LlamaProOptions", "expand_blocks"]


@hookimpl
def ft_register_adapters(register: Register[AdapterMethod[Any]]) -> None:
    register("llama_pro", LlamaProAdapter())
