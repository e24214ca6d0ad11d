"""ft-core plugin: the ``adamw`` optimizer (``torch.optim.AdamW``; 8-bit and paged AdamW through bitsandbytes).

Import-light: torch and transformers are imported when the optimizer is built, not at registration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ft_core.api import OptimizerFactory, OptionsError, Register, decaying_parameter_names, hookimpl

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ft_core.api import RunConfig

__all__ = ["AdamW", "AdamWOptions"]


@dataclass(frozen=True)
class AdamWOptions:
    """Options of ``adamw`` (the learning rate and schedule come from the ``training`` section)."""

    #: Adam's decay rates of the first and second moment estimates.
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    #: Term added to the denominator for numerical stability.
    eps: float = 1e-8
    #: Use the fused CUDA kernel; ``null`` leaves the choice to torch.
    fused: bool | None = None
    #: Decoupled weight decay of the weights (never of biases and norms); ``null`` = ``training.weight_decay``.
    weight_decay: float | None = None
    #: Bits of the optimizer state: ``32`` (torch) or ``8`` (bitsandbytes' blockwise 8-bit AdamW; CUDA only).
    bits: Literal[32, 8] = 32
    #: Keep the optimizer state in paged (unified) memory that spills to the CPU under GPU memory pressure
    #: (bitsandbytes' paged AdamW; CUDA only).
    paged: bool = False

    def __post_init__(self) -> None:
        if self.bits not in (32, 8):
            raise OptionsError(f"bits: expected 32 or 8, got {self.bits}")
        if self.fused and (self.bits == 8 or self.paged):
            raise OptionsError("fused: torch's fused kernel is for bits: 32 without paged; leave fused unset")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise OptionsError(f"betas: expected two numbers in [0, 1), got {self.betas}")
        if self.eps <= 0:
            raise OptionsError(f"eps: expected a positive number, got {self.eps}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise OptionsError(f"weight_decay: expected a number >= 0 (or null), got {self.weight_decay}")


class AdamW(OptimizerFactory[AdamWOptions]):
    """``torch.optim.AdamW`` over the engine's parameter groups (or its own, when ``weight_decay`` is set)."""

    options_schema: ClassVar[type] = AdamWOptions
    description: ClassVar[str] = "torch.optim.AdamW (decoupled weight decay); 8-bit / paged via bitsandbytes"

    @staticmethod
    def uses_bitsandbytes(options: AdamWOptions) -> bool:
        return options.bits == 8 or options.paged

    def validate(self, options: AdamWOptions, config: RunConfig) -> list[str]:
        """8-bit and paged AdamW need bitsandbytes and a CUDA GPU: refused on a CPU run."""
        if not self.uses_bitsandbytes(options):
            return []
        import importlib.util

        what = " ".join(
            filter(None, ["paged" if options.paged else "", "8-bit" if options.bits == 8 else ""])
        )
        if importlib.util.find_spec("bitsandbytes") is None:
            return [
                f"optimizer: {what} AdamW needs bitsandbytes: pip install bitsandbytes (or bits: 32, paged: false)"
            ]
        use_cpu = config.training.use_cpu
        if use_cpu is None:
            import torch

            use_cpu = not torch.cuda.is_available()
        if use_cpu:
            return [
                f"optimizer: {what} AdamW (bitsandbytes) runs on CUDA GPUs only and this run trains on the CPU; "
                "use bits: 32 and paged: false here"
            ]
        return []

    def param_groups(
        self, options: AdamWOptions, model: Any, default_groups: list[dict[str, Any]], args: Any
    ) -> list[dict[str, Any]] | None:
        """The default groups, with ``options.weight_decay`` on the decaying parameters when it is set.

        The decay of a group is what the optimizer applies (``torch.optim`` uses a group's own ``weight_decay``
        over the optimizer's default), so the option has to go into the groups to take effect.
        """
        if options.weight_decay is None:
            return None
        names = decaying_parameter_names(model)
        decaying = {id(p) for n, p in model.named_parameters() if n in names}
        groups: list[dict[str, Any]] = []
        for group in default_groups:
            params = list(group["params"])
            decay = [p for p in params if id(p) in decaying]
            rest = [p for p in params if id(p) not in decaying]
            if decay:
                groups.append({**group, "params": decay, "weight_decay": options.weight_decay})
            if rest:
                groups.append({**group, "params": rest})
        return groups

    def create(self, options: AdamWOptions, param_groups: list[dict[str, Any]], args: Any) -> Any:
        import torch

        weight_decay = args.weight_decay if options.weight_decay is None else options.weight_decay
        kwargs: dict[str, Any] = {
            "lr": args.learning_rate,
            "betas": tuple(options.betas),
            "eps": options.eps,
            "weight_decay": weight_decay,
        }
        if self.uses_bitsandbytes(options):
            import bitsandbytes as bnb

            optimizer_class: type
            if options.paged:
                optimizer_class = bnb.optim.PagedAdamW8bit if options.bits == 8 else bnb.optim.PagedAdamW
            else:
                optimizer_class = bnb.optim.AdamW8bit
            return optimizer_class(param_groups, **kwargs)
        if options.fused is not None:
            kwargs["fused"] = options.fused
        return torch.optim.AdamW(param_groups, **kwargs)


@hookimpl
def ft_register_optimizers(register: Register[OptimizerFactory[Any]]) -> None:
    register("adamw", AdamW())
