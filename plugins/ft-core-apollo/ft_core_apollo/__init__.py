"""ft-core plugin: the ``apollo`` optimizer — APOLLO through ``apollo-torch``.

APOLLO keeps Adam's moments for a rank-``rank`` random (or SVD) projection of each targeted weight's gradient and
uses them only to estimate a per-channel (``scale_type: channel``) or per-tensor (``tensor``; APOLLO-Mini with
``rank: 1``) scaling of the raw gradient: the update is the gradient, rescaled. Every other trainable parameter
trains with plain AdamW in the same optimizer. ``layerwise: true`` steps each parameter from its own backward hook.

APOLLO trains whole weights: ``adapter.method: full`` (or ``freeze``); with LoRA it is refused at validation.

Import-light: torch and apollo-torch are imported when the optimizer is built, not at registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ft_core.api import OptimizerFactory, OptionsError, Register, hookimpl, linear_module_names

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ft_core.api import RunConfig

__all__ = ["Apollo", "ApolloOptions", "apollo_parameter_names"]


@dataclass(frozen=True)
class ApolloOptions:
    """Options of ``apollo`` (the learning rate, schedule and weight decay come from the ``training`` section)."""

    #: Rank of the gradient projection (``1`` with ``scale_type: tensor`` is APOLLO-Mini).
    rank: int = 16
    #: Steps between refreshing the projection.
    update_interval: int = 200
    #: Scale of the update (APOLLO's alpha; APOLLO-Mini uses 128).
    scale: float = 32.0
    #: ``random`` (Gaussian random projection) or ``svd``.
    proj: Literal["random", "svd"] = "random"
    #: Projection side: ``std`` (the smaller side of each matrix), ``reverse_std``, ``left`` or ``right``.
    proj_type: Literal["std", "reverse_std", "left", "right"] = "std"
    #: Granularity of the gradient scaling: ``channel`` or ``tensor``.
    scale_type: Literal["channel", "tensor"] = "channel"
    #: Linear layers whose weights APOLLO trains: ``all`` (every linear layer but the output head), a list, or
    #: ``"q_proj,v_proj"``.
    targets: list[str] | str = "all"
    #: Step each parameter in its own backward hook (needs ``gradient_accumulation_steps: 1``; no gradient
    #: clipping).
    layerwise: bool = False
    #: Adam's decay rates.
    betas: list[float] | None = None
    #: Adam's epsilon.
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise OptionsError(f"rank: expected an integer >= 1, got {self.rank}")
        if self.update_interval < 1:
            raise OptionsError(f"update_interval: expected an integer >= 1, got {self.update_interval}")
        if self.scale <= 0:
            raise OptionsError(f"scale: expected a positive number, got {self.scale}")
        if self.eps <= 0:
            raise OptionsError(f"eps: expected a positive number, got {self.eps}")
        betas = [0.9, 0.999] if self.betas is None else list(self.betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise OptionsError(f"betas: expected two numbers in [0, 1), got {self.betas}")
        object.__setattr__(self, "betas", betas)
        targets = self.targets
        if isinstance(targets, str) and targets != "all":
            targets = [t.strip() for t in targets.split(",") if t.strip()]
        if not targets:
            raise OptionsError("targets: expected 'all' or a non-empty list of linear layer names")
        object.__setattr__(self, "targets", targets)


def apollo_parameter_names(model: Any, targets: list[str] | str) -> set[str]:
    """Names of the trainable 2-D weights of the targeted ``nn.Linear`` layers (never the output head)."""
    from torch import nn

    wanted = set(linear_module_names(model, None) if targets == "all" else targets)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = set()
    for name, module in model.named_modules():
        targeted = isinstance(module, nn.Linear) and module is not head and name.rsplit(".", 1)[-1] in wanted
        if targeted and module.weight.requires_grad and module.weight.ndim == 2:
            names.add(f"{name}.weight" if name else "weight")
    return names


class Apollo(OptimizerFactory[ApolloOptions]):
    """``apollo_torch.APOLLOAdamW``: APOLLO groups for the targeted weights, plain AdamW groups for the rest."""

    options_schema: ClassVar[type] = ApolloOptions
    description: ClassVar[str] = "APOLLO: the gradient scaled by low-rank Adam statistics (apollo-torch)"

    def validate(self, options: ApolloOptions, config: RunConfig) -> list[str]:
        problems = []
        adapter = config.adapter
        if not adapter.component.saves_full_model:
            problems.append(
                f"optimizer.name: apollo scales the gradients of whole weight matrices, but adapter.method: "
                f"{adapter.name} trains low-rank adapters; use optimizer.name: adamw with {adapter.name}, or apollo "
                "with adapter.method: full or freeze"
            )
        if options.layerwise and config.training.gradient_accumulation_steps != 1:
            problems.append(
                "optimizer.layerwise: layer-wise APOLLO applies each gradient during the backward pass, so "
                f"training.gradient_accumulation_steps must be 1 (got {config.training.gradient_accumulation_steps});"
                " set it to 1 or layerwise: false"
            )
        return problems

    def param_groups(
        self, options: ApolloOptions, model: Any, default_groups: list[dict[str, Any]], args: Any
    ) -> list[dict[str, Any]] | None:
        """Each default group split in two: its APOLLO weights (with APOLLO's group settings) and the rest."""
        names = apollo_parameter_names(model, options.targets)
        targeted = {id(p) for n, p in model.named_parameters() if n in names}
        settings = {
            "rank": options.rank,
            "proj": options.proj,
            "scale_type": options.scale_type,
            "update_proj_gap": options.update_interval,
            "scale": options.scale,
            "proj_type": options.proj_type,
        }
        groups: list[dict[str, Any]] = []
        for group in default_groups:
            params = list(group["params"])
            rest = [p for p in params if id(p) not in targeted]
            low_rank = [p for p in params if id(p) in targeted]
            if rest:
                groups.append({**group, "params": rest})
            if low_rank:
                groups.append({**group, "params": low_rank, **settings})
        return groups

    def create(self, options: ApolloOptions, param_groups: list[dict[str, Any]], args: Any) -> Any:
        from apollo_torch import APOLLOAdamW as _APOLLOAdamW

        from ft_core.api.optimizers import LayerwiseOptimizer, with_plain_projectors

        def projector(optimizer: Any, group: dict[str, Any]) -> Any:
            return optimizer._initialize_projector(group, {"seed": 0})

        APOLLOAdamW = with_plain_projectors(_APOLLOAdamW, projector)

        betas = options.betas or [0.9, 0.999]
        kwargs = {
            "lr": args.learning_rate,
            "betas": (betas[0], betas[1]),
            "eps": options.eps,
            "weight_decay": args.weight_decay,
        }
        if not options.layerwise:
            return APOLLOAdamW(param_groups, **kwargs)
        return LayerwiseOptimizer(
            param_groups, lambda groups: APOLLOAdamW(groups, **kwargs), args.learning_rate
        )


@hookimpl
def ft_register_optimizers(register: Register[OptimizerFactory[Any]]) -> None:
    register("apollo", Apollo())
