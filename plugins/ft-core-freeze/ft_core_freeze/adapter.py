"""Freeze tuning: only chosen sub-modules of the last (or first) N decoder layers train (and the output layer of a
sequence-classification or value model, which starts untrained)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ft_core.api import (
    FtCoreError,
    ModelFamily,
    OptionsError,
    WholeModelAdapter,
    classification_head,
    decoder_layers,
    name_matches,
    report_trainable,
    upcast_trainable_parameters,
)


@dataclass
class FreezeOptions:
    """Options of ``adapter.method: freeze``."""

    #: Train the last N decoder layers; a negative value trains the first N instead.
    trainable_layers: int = 2
    #: Sub-modules of those layers that train (``mlp``, ``self_attn``, ``mlp.down_proj``, ...), or ``all``; a list
    #: or a comma-separated string (``"mlp,self_attn"``).
    trainable_modules: list[str] | str = field(default_factory=lambda: ["all"])
    #: Modules outside the decoder layers that train too (``embed_tokens``, ``norm``, ``lm_head``, ...); a list or
    #: a comma-separated string.
    extra_modules: list[str] | str = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.trainable_modules, str):  # LLaMA-Factory's comma list: "a,b"
            self.trainable_modules = [m.strip() for m in self.trainable_modules.split(",") if m.strip()]
        if isinstance(self.extra_modules, str):  # LLaMA-Factory's comma list: "a,b"
            self.extra_modules = [m.strip() for m in self.extra_modules.split(",") if m.strip()]
        if self.trainable_layers == 0 and not self.extra_modules:
            raise OptionsError("trainable_layers is 0 and no extra_modules are given: nothing would train")
        if not self.trainable_modules:
            raise OptionsError("trainable_modules must list sub-module names or be ['all']")


def _layer_indices(count: int, trainable_layers: int) -> range:
    if abs(trainable_layers) > count:
        raise FtCoreError(
            f"adapter.trainable_layers: {trainable_layers} asks for more layers than the model's {count} decoder "
            f"layers; use a value between -{count} and {count}"
        )
    return range(count - trainable_layers, count) if trainable_layers >= 0 else range(-trainable_layers)


def _check_found(key: str, wanted: Sequence[str], names: list[str], choices: list[str]) -> None:
    missing = [w for w in wanted if not any(name_matches(n, w) for n in names)]
    if missing:
        raise FtCoreError(
            f"adapter.{key}: {', '.join(repr(m) for m in missing)} not found. Available: {', '.join(choices)}"
        )


class FreezeAdapter(WholeModelAdapter[FreezeOptions]):
    """Freeze tuning (like LLaMA-Factory's ``finetuning_type: freeze``); saves the whole model."""

    options_schema: ClassVar[type] = FreezeOptions
    description: ClassVar[str] = (
        "train only the last/first N decoder layers (freeze tuning); saves the whole model"
    )

    def apply(self, model: Any, options: FreezeOptions, family: ModelFamily | None) -> Any:
        layers = decoder_layers(model, family)
        chosen = _layer_indices(len(layers), options.trainable_layers)
        model.requires_grad_(False)
        inner_names = [name for name, _ in layers[0].named_parameters()]
        every_module = "all" in options.trainable_modules
        if not every_module:
            children = [name for name, _ in layers[0].named_children()]
            _check_found("trainable_modules", options.trainable_modules, inner_names, [*children, "all"])
        for index in chosen:
            for name, parameter in layers[index].named_parameters():
                if every_module or any(name_matches(name, m) for m in options.trainable_modules):
                    parameter.requires_grad_(True)
        if options.extra_modules:
            in_layers = {id(p) for p in layers.parameters()}
            outside = [
                (n, p) for n, p in model.named_parameters(remove_duplicate=False) if id(p) not in in_layers
            ]
            choices = sorted({n.rsplit(".", 2)[-2] for n, _ in outside if "." in n})
            _check_found("extra_modules", options.extra_modules, [n for n, _ in outside], choices)
            for name, parameter in outside:
                if any(name_matches(name, m) for m in options.extra_modules):
                    parameter.requires_grad_(True)
        head = classification_head(model)
        if head is not None:  # a reward or value model's score layer is new: it always trains
            head.requires_grad_(True)
        upcast_trainable_parameters(model)
        report_trainable(model, "freeze")
        return model
