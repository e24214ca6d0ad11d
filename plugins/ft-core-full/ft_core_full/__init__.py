"""ft-core plugin: the ``full`` adapter method (every parameter trains; the whole model is saved).

Import-light: torch is imported when the adapter is used, not at registration.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ft_core.api import (
    AdapterMethod,
    ModelFamily,
    NoOptions,
    Register,
    WholeModelAdapter,
    hookimpl,
    report_trainable,
    upcast_trainable_parameters,
)

__all__ = ["FullAdapter"]


class FullAdapter(WholeModelAdapter[NoOptions]):
    """Full fine-tuning; half-precision weights are kept in fp32 while they train."""

    options_schema: ClassVar[type] = NoOptions
    description: ClassVar[str] = "train every parameter (full fine-tuning); saves the whole model"

    def apply(self, model: Any, options: NoOptions, family: ModelFamily | None) -> Any:
        model.requires_grad_(True)
        upcast_trainable_parameters(model)
        report_trainable(model, "full")
        return model


@hookimpl
def ft_register_adapters(register: Register[AdapterMethod[Any]]) -> None:
    register("full", FullAdapter())
