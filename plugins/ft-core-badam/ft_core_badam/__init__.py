"""ft-core plugin: the ``badam`` optimizer — BAdam (block coordinate descent with Adam) through ``badam``.

``mode: layer`` trains one block (a decoder layer) at a time: the other blocks are frozen, Adam's state exists for
the active block only, and every ``switch_every`` optimizer steps the next block becomes active (``switch_mode``:
``ascending``, ``descending``, ``random`` or ``fixed``). ``mode: ratio`` updates a fraction ``update_ratio`` of
every weight matrix's entries each step (sparse Adam; the mask moves every ``switch_every`` steps).

BAdam trains whole weights: ``adapter.method: full`` (or ``freeze``); with LoRA it is refused at validation.

Import-light: torch and badam are imported when the optimizer is built, not at registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ft_core.api import FtCoreError, OptimizerFactory, OptionsError, Register, RunContext, hookimpl

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ft_core.api import RunConfig

__all__ = ["BAdam", "BAdamOptions"]


@dataclass(frozen=True)
class BAdamOptions:
    """Options of ``badam`` (the learning rate, schedule and weight decay come from the ``training`` section)."""

    #: ``layer``: one decoder layer trains at a time; ``ratio``: a fraction of every weight's entries.
    mode: Literal["layer", "ratio"] = "layer"
    #: Optimizer steps between block switches (``layer``) or mask moves (``ratio``).
    switch_every: int = 50
    #: ``layer``: order of the blocks: ``ascending``, ``descending`` (from the last layer), ``random`` or ``fixed``.
    switch_mode: Literal["ascending", "descending", "random", "fixed"] = "ascending"
    #: ``layer``: index of the first active block; ``null`` = the first of ``switch_mode``'s order.
    start_block: int | None = None
    #: ``ratio``: fraction of each weight's entries updated per step, in (0, 1].
    update_ratio: float = 0.05
    #: ``ratio``: ``adjacent`` (a contiguous run of entries) or ``scatter`` (random entries).
    mask_mode: Literal["adjacent", "scatter"] = "adjacent"
    #: Adam's decay rates.
    betas: list[float] | None = None
    #: Adam's epsilon.
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.switch_every < 1:
            raise OptionsError(f"switch_every: expected an integer >= 1, got {self.switch_every}")
        if not 0.0 < self.update_ratio <= 1.0:
            raise OptionsError(f"update_ratio: expected a number in (0, 1], got {self.update_ratio}")
        if self.start_block is not None and self.start_block < 0:
            raise OptionsError(f"start_block: expected an integer >= 0 (or null), got {self.start_block}")
        if self.eps <= 0:
            raise OptionsError(f"eps: expected a positive number, got {self.eps}")
        betas = [0.9, 0.999] if self.betas is None else list(self.betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise OptionsError(f"betas: expected two numbers in [0, 1), got {self.betas}")
        object.__setattr__(self, "betas", betas)


class BAdam(OptimizerFactory[BAdamOptions]):
    """``badam.BlockOptimizer`` over ``torch.optim.AdamW`` (layer mode; switching on schedule, see
    :mod:`ft_core_badam.block`) or ``badam.BlockOptimizerRatio``."""

    options_schema: ClassVar[type] = BAdamOptions
    description: ClassVar[str] = (
        "BAdam: Adam on one block of layers at a time, switched on a schedule (badam)"
    )

    def keeps_fp32_copies(self, options: BAdamOptions) -> bool:
        """Layer mode keeps an fp32 copy of the active block only (the model's weights stay in half precision);
        ratio mode updates the weights themselves."""
        return options.mode == "layer"

    def validate(self, options: BAdamOptions, config: RunConfig) -> list[str]:
        adapter = config.adapter
        if adapter.component.saves_full_model:
            return []
        return [
            f"optimizer.name: badam switches blocks of whole weights, but adapter.method: {adapter.name} trains "
            f"low-rank adapters; use optimizer.name: adamw with {adapter.name}, or badam with adapter.method: full"
        ]

    def param_groups(
        self, options: BAdamOptions, model: Any, default_groups: list[dict[str, Any]], args: Any
    ) -> list[dict[str, Any]] | None:
        """The default groups, each with ``param_names`` (BAdam finds the blocks by name)."""
        names = {id(p): n for n, p in model.named_parameters()}
        return [{**group, "param_names": [names[id(p)] for p in group["params"]]} for group in default_groups]

    def create(self, options: BAdamOptions, param_groups: list[dict[str, Any]], args: Any) -> Any:
        import torch

        if not all("param_names" in g and len(g["param_names"]) == len(g["params"]) for g in param_groups):
            raise FtCoreError(
                "optimizer badam: a plugin's ft_adjust_parameter_groups dropped the groups' param_names, which "
                "BAdam needs to find its blocks; keep param_names in step with params"
            )
        named = [(n, p) for g in param_groups for n, p in zip(g["param_names"], g["params"], strict=True)]
        groups = [{k: v for k, v in g.items() if k != "param_names"} for g in param_groups]
        betas = options.betas or [0.9, 0.999]
        if options.mode == "ratio":
            from badam import BlockOptimizerRatio

            has_head = any("lm_head" in n for n, _ in named)
            return BlockOptimizerRatio(
                param_groups=groups,
                named_parameters_list=named,
                update_ratio=options.update_ratio,
                switch_every=options.switch_every,
                mask_mode=options.mask_mode,
                lr=args.learning_rate,
                betas=(betas[0], betas[1]),
                eps=options.eps,
                verbose=0,
                include_embedding=False,
                include_lm_head=not has_head,  # no separate head (tied): nothing to leave out
            )
        from ft_core_badam.block import ScheduledBlockOptimizer, count_blocks

        blocks = count_blocks([n for n, _ in named])
        if blocks == 0:
            raise FtCoreError(
                "optimizer badam (mode: layer): no trainable decoder layers (names with layers.N.)"
            )
        if options.start_block is not None and options.start_block >= blocks:
            raise FtCoreError(
                f"optimizer.start_block: {options.start_block}, but the model has {blocks} blocks (0 to {blocks - 1})"
            )
        start = 0 if options.start_block is None and options.switch_mode == "fixed" else options.start_block

        base = torch.optim.AdamW(
            groups,
            lr=args.learning_rate,
            betas=(betas[0], betas[1]),
            eps=options.eps,
            weight_decay=args.weight_decay,
        )
        return ScheduledBlockOptimizer(
            base_optimizer=base,
            named_parameters_list=named,
            switch_block_every=options.switch_every,
            switch_mode=options.switch_mode,
            start_block=start,
            verbose=0,
        )


@hookimpl
def ft_before_train(trainer: Any, run: RunContext) -> None:
    """``mode: ratio`` trains with sparse gradients, which torch's gradient clipping rejects: the trainer's
    accelerator clips with badam's sparse-aware ``clip_grad_norm_old_version`` instead."""
    selection = run.config.optimizer
    if not isinstance(selection.options, BAdamOptions) or selection.options.mode != "ratio":
        return
    from types import MethodType

    from badam import clip_grad_norm_old_version

    trainer.accelerator.clip_grad_norm_ = MethodType(clip_grad_norm_old_version, trainer.accelerator)


@hookimpl
def ft_register_optimizers(register: Register[OptimizerFactory[Any]]) -> None:
    register("badam", BAdam())
