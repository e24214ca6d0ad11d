"""Loading and freezing vision-language models (families with a :class:`~ft_core.api.descriptors.VisionSpec`)."""

from __future__ import annotations

from typing import Any

from ft_core.api.config import ModelSection
from ft_core.api.descriptors import ModelFamily
from ft_core.api.errors import FtCoreError


def model_class(family: ModelFamily | None, default: Any) -> Any:
    """The transformers auto class that loads the model: the family's ``vision.auto_class``, else ``default``."""
    if family is None or family.vision is None:
        return default
    import transformers

    cls = getattr(transformers, family.vision.auto_class, None)
    if cls is None:
        raise FtCoreError(
            f"transformers has no {family.vision.auto_class} (the model family's vision.auto_class)"
        )
    return cls


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _strip_wrappers(name: str) -> str:
    """A parameter name of the base model inside PEFT's wrapper (``base_model.model.``)."""
    for wrapper in ("base_model.model.",):
        if name.startswith(wrapper):
            return name[len(wrapper) :]
    return name


def apply_vision_freezing(
    model: Any, family: ModelFamily | None, model_section: ModelSection, adapter: Any
) -> int:
    """Freeze the vision tower and the multi-modal projector as ``model.freeze_vision_tower`` /
    ``model.freeze_multi_modal_projector`` say, after the adapter chose what trains; returns how many parameter
    tensors were frozen.

    Whole-model adapters (full, freeze) train what they chose minus the frozen parts. Adapters such as LoRA train
    only their own weights (and ``modules_to_save``), and never the vision tower or projector through ``targets:
    all``; with them, training the vision tower or the projector needs ``adapter.modules_to_save``, so the two
    switches must stay true.
    """
    if family is None or family.vision is None:
        return 0
    spec = family.vision
    if not getattr(adapter, "saves_full_model", False):
        unfrozen = [
            key
            for key, frozen in (
                ("freeze_vision_tower", model_section.freeze_vision_tower),
                ("freeze_multi_modal_projector", model_section.freeze_multi_modal_projector),
            )
            if not frozen
        ]
        if unfrozen:
            raise FtCoreError(
                f"model.{unfrozen[0]}: false needs a whole-model adapter (full or freeze); an adapter such as LoRA "
                "saves only its own weights. Keep it true and name the modules to train in adapter.modules_to_save "
                f"(e.g. {', '.join(repr(p.rsplit('.', 1)[-1]) for p in spec.projector_modules)})"
            )
        return 0
    frozen = 0
    for name, parameter in model.named_parameters():
        base = _strip_wrappers(name)
        if _under(base, spec.projector_modules):
            freeze = model_section.freeze_multi_modal_projector
        elif _under(base, spec.vision_modules):
            freeze = model_section.freeze_vision_tower
        else:
            continue
        if freeze and parameter.requires_grad:
            parameter.requires_grad_(False)
            frozen += 1
    return frozen
