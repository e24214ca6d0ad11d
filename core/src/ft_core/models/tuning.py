"""Helpers shared by adapter plugins (LoRA, freeze, full, ...): which parameters train and how they are kept.

torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from ft_core.components import AdapterMethod, ModelFamily
from ft_core.errors import FtCoreError


def upcast_trainable_parameters(model: Any) -> int:
    """Cast every trainable fp16/bf16 parameter to fp32 (stable optimizer updates); returns how many."""
    import torch

    count = 0
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype in (torch.float16, torch.bfloat16):
            parameter.data = parameter.data.float()
            count += 1
    return count


def count_parameters(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (tied parameters counted once)."""
    trainable = total = 0
    for parameter in model.parameters():
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
    return trainable, total


def report_trainable(model: Any, method: str) -> str:
    """Print and return ``"<method>: trainable params: N || all params: M || trainable%: P"``."""
    trainable, total = count_parameters(model)
    line = (
        f"{method}: trainable params: {trainable:,d} || all params: {total:,d} || "
        f"trainable%: {100 * trainable / max(total, 1):.4f}"
    )
    print(line, file=sys.stderr)
    return line


def name_matches(name: str, wanted: str) -> bool:
    """True when the dotted ``wanted`` path occurs as whole components in the dotted ``name``."""
    return f".{wanted}." in f".{name}."


def decoder_layers(model: Any, family: ModelFamily | None) -> Any:
    """The decoder-layer ``ModuleList``: ``family.decoder_layers`` when it resolves, else the longest ModuleList."""
    from torch import nn

    if family is not None:
        found = model
        try:
            for attribute in family.decoder_layers.split("."):
                found = getattr(found, attribute)
        except AttributeError:
            found = None
        if isinstance(found, nn.ModuleList):
            return found
    candidates = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not candidates:
        raise FtCoreError(f"{type(model).__name__} has no list of decoder layers (no nn.ModuleList found)")
    return max(candidates, key=len)


class WholeModelAdapter(AdapterMethod):
    """Base of adapter methods whose artefact is the whole model (full, freeze): saved and reloaded as is."""

    saves_full_model: ClassVar[bool] = True

    def load_for_inference(self, artefact_dir: str, load_base: Any) -> Any:
        """Load the saved causal LM in its saved dtype; the base model is not needed."""
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(artefact_dir, dtype="auto").eval()
