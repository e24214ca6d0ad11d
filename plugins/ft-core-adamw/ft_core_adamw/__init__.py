"""ft-core plugin: the ``adamw`` optimizer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ft_core.components import OptimizerFactory
from ft_core.hookspecs import Register, hookimpl


@dataclass(frozen=True)
class AdamWOptions:
    """Options of ``adamw`` (learning rate and weight decay come from the ``training`` section)."""

    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    #: Use the fused CUDA kernel; ``null`` leaves the choice to torch.
    fused: bool | None = None

    def __post_init__(self) -> None:
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {self.betas}")


class AdamW(OptimizerFactory):
    """``torch.optim.AdamW`` over the trainable parameters."""

    options_schema: ClassVar[type] = AdamWOptions
    description: ClassVar[str] = "torch.optim.AdamW (decoupled weight decay)"

    def cls_and_kwargs(self, options: AdamWOptions, learning_rate: float) -> tuple[type, dict[str, Any]]:
        import torch

        kwargs: dict[str, Any] = {"lr": learning_rate, "betas": tuple(options.betas), "eps": options.eps}
        if options.fused is not None:
            kwargs["fused"] = options.fused
        return torch.optim.AdamW, kwargs


@hookimpl
def ft_register_optimizers(register: Register) -> None:
    register("adamw", AdamW())
