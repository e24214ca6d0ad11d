"""ft-core plugin: the ``galore`` optimizer — GaLore (gradient low-rank projection) through ``galore-torch``.

The 2-D weights of the targeted linear layers train with their gradients projected onto a rank-``rank`` subspace
(Adam's moments live in that subspace; the projection is refreshed every ``update_interval`` steps, from a full or,
with ``svd: randomized``, a randomized SVD of the gradient); every other trainable parameter trains with plain
AdamW in the same optimizer. ``layerwise: true`` steps each parameter from its own backward hook (LLaMA-Factory's
``galore_layerwise``), so only one full gradient exists at a time.

GaLore is for full-weight training (``adapter.method: full`` or ``freeze``); with LoRA it is refused at validation.

Import-light: torch and galore-torch are imported when the optimizer is built, not at registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ft_core.api import OptimizerFactory, OptionsError, Register, hookimpl, linear_module_names

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ft_core.api import RunConfig

__all__ = ["GaLore", "GaLoreOptions", "galore_parameter_names"]


@dataclass(frozen=True)
class GaLoreOptions:
    """Options of ``galore`` (the learning rate, schedule and weight decay come from the ``training`` section)."""

    #: Rank of the gradient projection.
    rank: int = 16
    #: Steps between recomputing the projection (an SVD of the gradient).
    update_interval: int = 200
    #: Scale of the projected-back update (GaLore's alpha).
    scale: float = 2.0
    #: Projection side: ``std`` (the smaller side of each matrix), ``reverse_std``, ``left``, ``right`` or ``full``.
    proj_type: Literal["std", "reverse_std", "left", "right", "full"] = "std"
    #: How each projection is computed: ``full`` (galore-torch's full SVD of the gradient) or ``randomized``
    #: (``torch.svd_lowrank``: only the approximate top-``rank`` subspace, far faster on large weights).
    svd: Literal["full", "randomized"] = "full"
    #: Linear layers whose weights GaLore projects: ``all`` (every linear layer but the output head), a list, or
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
        if self.svd not in ("full", "randomized"):
            raise OptionsError(f"svd: expected 'full' or 'randomized', got {self.svd!r}")
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


def galore_parameter_names(model: Any, targets: list[str] | str) -> set[str]:
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


class GaLore(OptimizerFactory[GaLoreOptions]):
    """``galore_torch.GaLoreAdamW``: projected groups for the targeted weights, plain AdamW groups for the rest."""

    options_schema: ClassVar[type] = GaLoreOptions
    description: ClassVar[str] = (
        "GaLore: AdamW on low-rank projected gradients of the linear weights (galore-torch)"
    )

    def validate(self, options: GaLoreOptions, config: RunConfig) -> list[str]:
        problems = []
        adapter = config.adapter
        if not adapter.component.saves_full_model:
            problems.append(
                f"optimizer.name: galore projects the gradients of whole weight matrices, but adapter.method: "
                f"{adapter.name} trains low-rank adapters; use optimizer.name: adamw with {adapter.name}, or galore "
                "with adapter.method: full or freeze"
            )
        if options.layerwise and config.training.gradient_accumulation_steps != 1:
            problems.append(
                "optimizer.layerwise: layer-wise GaLore applies each gradient during the backward pass, so "
                f"training.gradient_accumulation_steps must be 1 (got {config.training.gradient_accumulation_steps});"
                " set it to 1 or layerwise: false"
            )
        return problems

    def param_groups(
        self, options: GaLoreOptions, model: Any, default_groups: list[dict[str, Any]], args: Any
    ) -> list[dict[str, Any]] | None:
        """Each default group split in two: its GaLore weights (with ``rank``, ``update_proj_gap``, ``scale``,
        ``proj_type``, ``svd``) and the rest."""
        names = galore_parameter_names(model, options.targets)
        projected = {id(p) for n, p in model.named_parameters() if n in names}
        settings = {
            "rank": options.rank,
            "update_proj_gap": options.update_interval,
            "scale": options.scale,
            "proj_type": options.proj_type,
            "svd": options.svd,
        }
        groups: list[dict[str, Any]] = []
        for group in default_groups:
            params = list(group["params"])
            rest = [p for p in params if id(p) not in projected]
            low_rank = [p for p in params if id(p) in projected]
            if rest:
                groups.append({**group, "params": rest})
            if low_rank:
                groups.append({**group, "params": low_rank, **settings})
        return groups

    def create(self, options: GaLoreOptions, param_groups: list[dict[str, Any]], args: Any) -> Any:
        from galore_torch import GaLoreAdamW as _GaLoreAdamW
        from galore_torch.galore_projector import GaLoreProjector

        from ft_core.api.optimizers import LayerwiseOptimizer, with_plain_projectors
        from ft_core_galore.projector import RandomizedGaLoreProjector

        def projector(optimizer: Any, group: dict[str, Any]) -> Any:
            # The group's svd: saved with the optimizer's groups, so a resumed optimizer keeps it; a group without
            # one (saved before the option existed) follows the options.
            randomized = group.get("svd", options.svd) == "randomized"
            kind = RandomizedGaLoreProjector if randomized else GaLoreProjector
            return kind(
                group["rank"],
                update_proj_gap=group["update_proj_gap"],
                scale=group["scale"],
                proj_type=group["proj_type"],
            )

        GaLoreAdamW = with_plain_projectors(_GaLoreAdamW, projector, build_in_step=True)

        betas = options.betas or [0.9, 0.999]
        kwargs = {
            "lr": args.learning_rate,
            "betas": (betas[0], betas[1]),
            "eps": options.eps,
            "weight_decay": args.weight_decay,
            "no_deprecation_warning": True,
        }
        if not options.layerwise:
            return GaLoreAdamW(param_groups, **kwargs)
        return LayerwiseOptimizer(
            param_groups, lambda groups: GaLoreAdamW(groups, **kwargs), args.learning_rate
        )


@hookimpl
def ft_register_optimizers(register: Register[OptimizerFactory[Any]]) -> None:
    register("galore", GaLore())
