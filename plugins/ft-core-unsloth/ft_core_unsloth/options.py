"""Options of the ``unsloth`` config section and of the ``unsloth_lora`` adapter method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ft_core.api import LoraSettings, OptionsError


@dataclass(frozen=True)
class UnslothOptions:
    """Options of the top-level ``unsloth:`` section."""

    #: Load the policy model with ``unsloth.FastLanguageModel.from_pretrained`` and train it with Unsloth's LoRA
    #: (``adapter.method: unsloth_lora``). Off by default: installing the plugin alone changes nothing.
    enabled: bool = False
    #: Activation checkpointing when ``training.gradient_checkpointing`` is not ``false``: ``unsloth`` (Unsloth's
    #: checkpointing with activations offloaded to CPU memory) or ``standard`` (``torch.utils.checkpoint``).
    gradient_checkpointing: Literal["unsloth", "standard"] = "unsloth"
    #: Allow a run on the CPU through Unsloth's CPU fallback (slow; only to try a setup without a GPU). Off: a
    #: run that would train on the CPU with Unsloth selected is a validation error.
    allow_cpu: bool = False

    def __post_init__(self) -> None:
        if self.gradient_checkpointing not in ("unsloth", "standard"):
            raise OptionsError(
                f"gradient_checkpointing must be 'unsloth' or 'standard', got {self.gradient_checkpointing!r}"
            )


@dataclass
class UnslothLoraOptions(LoraSettings):
    """Options of ``adapter.method: unsloth_lora``: the shared :class:`~ft_core.api.LoraSettings` (rank, alpha,
    dropout, targets, modules_to_save, bias, use_rslora; Unsloth's fused LoRA kernels are used with ``dropout: 0``
    and ``bias: none``) and the initialisations Unsloth supports."""

    #: Initialisation of the A matrices: ``default`` (Kaiming uniform) or ``gaussian``; B starts at zero.
    init: Literal["default", "gaussian"] = "default"
