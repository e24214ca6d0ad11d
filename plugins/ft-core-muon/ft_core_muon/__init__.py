"""ft-core plugin: the ``muon`` optimizer — Muon (``torch.optim.Muon``) for the hidden weight matrices, AdamW for
the rest.

Muon replaces each hidden matrix's momentum update by its orthogonalisation (Newton-Schulz iterations: the update's
singular values are all pushed to about 1). Embeddings, the output head, norms and biases train with AdamW, as
Muon's authors prescribe. With ``adjust_lr: match_rms_adamw`` (the default) Muon's update RMS matches AdamW's, so
one ``training.learning_rate`` and weight decay serve both.

Import-light: torch is imported when the optimizer is built, not at registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ft_core.api import OptimizerFactory, OptionsError, Register, hookimpl

__all__ = ["Muon", "MuonOptions", "hidden_matrix_names"]


@dataclass(frozen=True)
class MuonOptions:
    """Options of ``muon`` (the learning rate, schedule and weight decay come from the ``training`` section)."""

    #: Muon's momentum.
    momentum: float = 0.95
    #: Nesterov momentum for Muon.
    nesterov: bool = True
    #: Newton-Schulz iterations of the orthogonalisation.
    ns_steps: int = 5
    #: Muon's learning-rate adjustment per matrix: ``match_rms_adamw`` (``0.2 * sqrt(max(rows, cols))``, so the
    #: AdamW learning rate fits both) or ``original`` (``sqrt(max(1, rows / cols))``).
    adjust_lr: Literal["match_rms_adamw", "original"] = "match_rms_adamw"
    #: AdamW's decay rates (embeddings, head, norms, biases).
    adamw_betas: list[float] | None = None
    #: AdamW's epsilon.
    adamw_eps: float = 1e-8

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise OptionsError(f"momentum: expected a number in [0, 1), got {self.momentum}")
        if self.ns_steps < 1:
            raise OptionsError(f"ns_steps: expected an integer >= 1, got {self.ns_steps}")
        if self.adamw_eps <= 0:
            raise OptionsError(f"adamw_eps: expected a positive number, got {self.adamw_eps}")
        betas = [0.9, 0.999] if self.adamw_betas is None else list(self.adamw_betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise OptionsError(f"adamw_betas: expected two numbers in [0, 1), got {self.adamw_betas}")
        object.__setattr__(self, "adamw_betas", betas)


def hidden_matrix_names(model: Any) -> set[str]:
    """Trainable 2-D parameters that are neither the input embeddings nor the output head."""
    outside: set[int] = set()
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        module = getattr(model, getter)() if hasattr(model, getter) else None
        if module is not None:
            outside.update(id(p) for p in module.parameters())
    return {
        n for n, p in model.named_parameters() if p.requires_grad and p.ndim == 2 and id(p) not in outside
    }


class Muon(OptimizerFactory[MuonOptions]):
    """``torch.optim.Muon`` on the hidden matrices and ``torch.optim.AdamW`` on the rest, stepped as one."""

    options_schema: ClassVar[type] = MuonOptions
    description: ClassVar[str] = "Muon (torch.optim.Muon) for hidden weight matrices, AdamW for the rest"

    def param_groups(
        self, options: MuonOptions, model: Any, default_groups: list[dict[str, Any]], args: Any
    ) -> list[dict[str, Any]] | None:
        """Each default group split in two: its hidden matrices (marked ``use_muon``) and the rest."""
        hidden = {id(p) for n, p in model.named_parameters() if n in hidden_matrix_names(model)}
        groups: list[dict[str, Any]] = []
        for group in default_groups:
            params = list(group["params"])
            matrices = [p for p in params if id(p) in hidden]
            rest = [p for p in params if id(p) not in hidden]
            if matrices:
                groups.append({**group, "params": matrices, "use_muon": True})
            if rest:
                groups.append({**group, "params": rest, "use_muon": False})
        return groups

    def create(self, options: MuonOptions, param_groups: list[dict[str, Any]], args: Any) -> Any:
        import torch

        from ft_core_muon.optimizer import MuonWithAdamW

        def plain(group: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in group.items() if k != "use_muon"}

        muon_groups = [plain(g) for g in param_groups if g.get("use_muon")]
        adamw_groups = [plain(g) for g in param_groups if not g.get("use_muon")]
        if any(p.ndim != 2 for g in muon_groups for p in g["params"]):
            raise OptionsError("muon: a plugin put a parameter that is not a matrix into a Muon group")
        muon = (
            torch.optim.Muon(
                muon_groups,
                lr=args.learning_rate,
                weight_decay=args.weight_decay,
                momentum=options.momentum,
                nesterov=options.nesterov,
                ns_steps=options.ns_steps,
                adjust_lr_fn=options.adjust_lr,
            )
            if muon_groups
            else None
        )
        betas = options.adamw_betas or [0.9, 0.999]
        adamw = (
            torch.optim.AdamW(
                adamw_groups,
                lr=args.learning_rate,
                betas=(betas[0], betas[1]),
                eps=options.adamw_eps,
                weight_decay=args.weight_decay,
            )
            if adamw_groups
            else None
        )
        return MuonWithAdamW(muon, adamw)


@hookimpl
def ft_register_optimizers(register: Register[OptimizerFactory[Any]]) -> None:
    register("muon", Muon())
