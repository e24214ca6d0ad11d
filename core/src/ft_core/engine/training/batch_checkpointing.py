"""Activation checkpointing chosen per forward pass: ``training.gradient_checkpointing: auto`` on a GPU.

``auto`` plans for the largest micro-batch a run can see (:func:`~ft_core.engine.training.checkpointing.micro_batch`:
the batch size times the longest row, or a packed batch's bound). Most micro-batches are far smaller: preference
pairs of a padding-free batch, padded batches of short rows. When the largest one needs checkpointing, the plan also
keeps :class:`BatchCosts`, what each token of a forward pass costs under each option, and
:class:`BatchCheckpointing` picks, before each forward pass with gradients, the option with the least recompute
that fits that pass's tokens: no checkpointing for a batch that fits with every activation kept, every n-th layer,
and the plan's own mode (every layer, offloaded or not) for the largest ones. The estimate is the plan's
(:func:`~ft_core.engine.training.checkpointing.estimate_memory`), within the same budget.

Forward passes with gradients whose backward pass has not run yet (a stage running policy and value passes before
one backward pass) count together: each pass gets what the earlier ones left. A pass's bytes count until the
gradient reaches its first layer's output (a hook on that tensor), or the micro-step ends. Passes without gradients
(a reference model, generation) and eval passes are not checkpointed and not counted.

Imports torch only when a model is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

#: The attribute of the transformers model the installed :class:`BatchCheckpointing` is kept in.
ATTRIBUTE = "ft_core_batch_checkpointing"


@dataclass(frozen=True)
class BatchCosts:
    """What one token of a forward pass keeps on the GPU for the backward pass, per option, and the room for it."""

    #: ``(every_n_layers, bytes per token)`` with ``0`` for no checkpointing, fewest recomputed layers first, down
    #: to the plan's own ``every_n_layers``; the logits left out (:attr:`logit_bytes_per_token`).
    options: tuple[tuple[int, float], ...]
    #: The logits and the loss's fp32 copies per token: zero when the model's loss is fused (no logits made).
    logit_bytes_per_token: float
    #: Bytes the activations of a micro-step may fill (the usable memory less weights, gradients and optimizer).
    budget: float
    #: The model's decoder layers (the estimate's): the module list whose flags are set.
    layers: int

    def per_token(self, fused_loss: bool = False) -> list[tuple[int, float]]:
        """:attr:`options` with the logits counted, unless the loss is fused."""
        logits = 0.0 if fused_loss else self.logit_bytes_per_token
        return [(every_n, cost + logits) for every_n, cost in self.options]

    def largest_batch(self, every_n: int, fused_loss: bool = False) -> int:
        """The most tokens one forward pass may have under option ``every_n`` (``0``: no checkpointing)."""
        per_token = dict(self.per_token(fused_loss))[every_n]
        return int(self.budget // per_token) if per_token > 0 else 0

    def manifest(self) -> dict[str, int]:
        """The largest forward pass of each option, in tokens (logits counted), for the manifest and the log."""
        return {_name(every_n): self.largest_batch(every_n) for every_n, _ in self.options}


def _name(every_n: int) -> str:
    return {0: "off", 1: "every layer"}.get(every_n, f"every {every_n} layers")


class BatchCheckpointing:
    """Sets the ``gradient_checkpointing`` flag of a model's decoder layers before each forward pass with
    gradients, from that pass's tokens (:class:`BatchCosts`); ``fallback`` (the plan's ``every_n_layers``)
    where no option fits."""

    def __init__(self, costs: BatchCosts, layers: list[Any], fallback: int, fused_loss: bool) -> None:
        self.costs, self.layers, self.fallback = costs, layers, fallback
        self.per_token = costs.per_token(fused_loss)
        self.used = 0.0  # bytes the passes whose backward pass has not run keep
        self.pending = 0.0  # the bytes of the pass under way
        self.current: int | None = None
        self.counts: dict[int, int] = {}

    def choose(self, tokens: int) -> int:
        """The option for a pass of ``tokens`` tokens (``0``: no checkpointing); counts its bytes as used until
        :meth:`release`."""
        room = self.costs.budget - self.used
        fitting = [
            (every_n, per_token) for every_n, per_token in self.per_token if tokens * per_token <= room
        ]
        # none fits: the plan's own mode, which costs no more than the last option
        chosen, per_token = (
            fitting[0] if fitting else (self.fallback, self.per_token[-1][1] if self.per_token else 0.0)
        )
        self.pending = tokens * per_token
        self.used += self.pending
        return chosen

    def release(self, amount: float, grad: Any = None) -> None:
        """A pass's backward pass reached its first layer: its ``amount`` bytes are freed."""
        self.used = max(0.0, self.used - amount)

    def apply(self, every_n: int) -> None:
        """Set the layers' flags: none checkpointed (``0``), else layers ``0, n, 2n, ...``."""
        self.counts[every_n] = self.counts.get(every_n, 0) + 1
        if every_n == self.current:
            return
        for index, layer in enumerate(self.layers):
            layer.gradient_checkpointing = every_n > 0 and index % every_n == 0
        self.current = every_n

    def before_forward(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Forward pre-hook of the first decoder layer: its hidden states give the pass's tokens."""
        import torch

        if not (module.training and torch.is_grad_enabled()):
            return
        hidden = args[0] if args else kwargs.get("hidden_states")
        if not isinstance(hidden, torch.Tensor) or hidden.dim() < 2:
            return
        self.apply(self.choose(int(hidden.shape[:-1].numel())))

    def after_first_layer(self, module: Any, args: tuple[Any, ...], output: Any) -> None:
        """Forward hook of the first decoder layer: the gradient reaching its output releases the pass's bytes."""
        amount, self.pending = self.pending, 0.0
        hidden = output[0] if isinstance(output, tuple | list) and output else output
        if amount and getattr(hidden, "requires_grad", False):
            hidden.register_hook(partial(self.release, amount))

    def next_micro_step(self) -> None:
        """A micro-step is over: whatever its passes kept is freed (passes whose backward pass never ran too)."""
        self.used = 0.0

    def summary(self) -> str:
        """How many forward passes ran under each option."""
        parts = [f"{count} {_name(every_n)}" for every_n, count in sorted(self.counts.items())]
        return "gradient checkpointing per forward pass: " + (", ".join(parts) or "no pass with gradients")


def decoder_layers(model: Any, layers: int) -> list[Any]:
    """The ``layers`` checkpointable decoder layers of ``model`` (the transformers model): the module list of
    ``GradientCheckpointingLayer`` s of that length (a vision tower's layers are left alone); ``[]`` when none."""
    try:
        from transformers.modeling_layers import GradientCheckpointingLayer
    except ImportError:  # pragma: no cover - older transformers
        return []
    import torch

    for module in model.modules():
        if (
            isinstance(module, torch.nn.ModuleList)
            and len(module) == layers
            and all(isinstance(layer, GradientCheckpointingLayer) for layer in module)
        ):
            return list(module)
    return []


def install(model: Any, costs: BatchCosts, fallback: int, fused_loss: bool) -> BatchCheckpointing | None:
    """Choose checkpointing per forward pass on ``model`` (the transformers model, its checkpointing on); once:
    a second call returns the installed one. ``None`` when the model has no ``costs.layers`` decoder layers."""
    installed = getattr(model, ATTRIBUTE, None)
    if installed is not None:
        return installed
    found = decoder_layers(model, costs.layers)
    if not found:
        return None
    switcher = BatchCheckpointing(costs, found, fallback, fused_loss)
    found[0].register_forward_pre_hook(switcher.before_forward, with_kwargs=True)
    found[0].register_forward_hook(switcher.after_first_layer)
    setattr(model, ATTRIBUTE, switcher)
    return switcher
