"""Options of the ``unsloth`` config section and of the ``unsloth_lora`` adapter method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ft_core.api import OptionsError


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
class UnslothLoraOptions:
    """Options of ``adapter.method: unsloth_lora`` (the ``lora`` adapter's options, as Unsloth supports them)."""

    #: Rank of the low-rank update matrices.
    rank: int = 8
    #: Scaling numerator: the update is scaled by ``alpha / rank`` (``alpha / sqrt(rank)`` with rsLoRA).
    alpha: float = 16.0
    #: Dropout on the LoRA input (Unsloth's fused LoRA kernels are used only with 0).
    dropout: float = 0.0
    #: Module names to adapt: ``all`` (every linear layer except the output head, or the model family's LoRA
    #: targets), a list, or ``"q_proj,v_proj"``.
    targets: list[str] | str = "all"
    #: Modules trained in full and saved with the adapter (e.g. ``embed_tokens``, ``lm_head``).
    modules_to_save: list[str] = field(default_factory=list)
    #: Which biases train: ``none`` (needed for Unsloth's fused kernels), ``all`` or ``lora_only``.
    bias: Literal["none", "all", "lora_only"] = "none"
    #: Rank-stabilised scaling ``alpha / sqrt(rank)``.
    use_rslora: bool = False
    #: Initialisation of the A matrices: ``default`` (Kaiming uniform) or ``gaussian``; B starts at zero.
    init: Literal["default", "gaussian"] = "default"

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise OptionsError(f"rank must be >= 1, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise OptionsError(f"dropout must be in [0, 1), got {self.dropout}")
        if isinstance(self.targets, str) and self.targets != "all":
            self.targets = [t.strip() for t in self.targets.split(",") if t.strip()]
        if not self.targets:
            raise OptionsError("targets must be 'all' or a non-empty list of module names")
