"""ft-core plugin: the ``full`` adapter method (every parameter trains; the whole model is saved)."""

from __future__ import annotations

from typing import Any, ClassVar

from ft_core.components import ModelFamily
from ft_core.hookspecs import Register, hookimpl
from ft_core.models.tuning import WholeModelAdapter, report_trainable, upcast_trainable_parameters

__all__ = ["FullAdapter"]


class FullAdapter(WholeModelAdapter):
    """Full fine-tuning; half-precision weights are kept in fp32 while they train."""

    description: ClassVar[str] = "train every parameter (full fine-tuning); saves the whole model"

    def apply(self, model: Any, options: Any, family: ModelFamily | None) -> Any:
        model.requires_grad_(True)
        upcast_trainable_parameters(model)
        report_trainable(model, "full")
        return model


@hookimpl
def ft_register_adapters(register: Register) -> None:
    register("full", FullAdapter())
