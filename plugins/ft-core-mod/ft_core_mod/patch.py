"""The ``mixture_of_depths`` model patch: convert a model to Mixture-of-Depths, or load a converted one."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from ft_core.api import FtCoreError, ModelPatch, OptionsError, RunConfig

logger = logging.getLogger(__name__)

#: Model types whose decoder layers take ``hidden_states`` with ``position_embeddings``, ``position_ids`` and an
#: attention mask as keyword arguments and return the new hidden states (transformers 5's Llama-like layers).
SUPPORTED_MODEL_TYPES: frozenset[str] = frozenset(
    {
        "llama",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "gemma",
        "olmo2",
        "phi3",
        "granite",
    }
)
#: Defaults of ``capacity`` and ``every`` for ``mode: convert`` (the paper's 12.5 %, every other layer).
DEFAULT_CAPACITY = 0.125
DEFAULT_EVERY = 2


@dataclass(frozen=True)
class MixtureOfDepthsOptions:
    """Options of ``patches: [{name: mixture_of_depths, ...}]``."""

    #: ``convert``: add routers to a plain model; ``load``: the model is one a ``convert`` run saved (its routing
    #: and routers are restored).
    mode: Literal["convert", "load"] = "convert"
    #: Fraction of each sequence's tokens a routed layer processes while training (``convert``; default 0.125).
    capacity: float | None = None
    #: Route every N-th decoder layer (``convert``; default 2: layers 1, 3, 5, ...).
    every: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("convert", "load"):
            raise OptionsError(f"mode must be 'convert' or 'load', got {self.mode!r}")
        if self.mode == "load" and (self.capacity is not None or self.every is not None):
            raise OptionsError(
                "capacity and every are set by mode: convert; mode: load takes them from the converted model's "
                "config.json (mixture_of_depths)"
            )
        if self.capacity is not None and not 0.0 < self.capacity <= 1.0:
            raise OptionsError(f"capacity must be in (0, 1] (the paper uses 0.125), got {self.capacity}")
        if self.every is not None and self.every < 1:
            raise OptionsError(f"every must be >= 1 (2 routes every other layer), got {self.every}")


def _local_config(name_or_path: str) -> dict[str, Any] | None:
    try:
        config = json.loads((Path(name_or_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def problems(options: MixtureOfDepthsOptions, config: RunConfig) -> list[str]:
    """Why ``config`` cannot train with Mixture-of-Depths (empty when it can)."""
    found = []
    if config.adapter.name != "full":
        found.append(
            f"patches[mixture_of_depths]: the routers train with the whole model and are saved with it; "
            f"adapter.method: {config.adapter.name} cannot train or save them: use adapter.method: full"
        )
    if config.data.packing is True:
        found.append(
            "patches[mixture_of_depths]: data.packing: true cannot be combined with Mixture-of-Depths (a routed "
            "layer picks tokens per row; packed rows would share one capacity); set data.packing: false or auto"
        )
    model_config = _local_config(config.model.name_or_path)
    if model_config is None:
        return found
    model_type = model_config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        found.append(unsupported(str(model_type)))
    converted = isinstance(model_config.get("mixture_of_depths"), dict)
    if options.mode == "load" and not converted:
        found.append(
            f"patches[mixture_of_depths]: mode: load needs a converted model, but {config.model.name_or_path} has "
            "no mixture_of_depths entry in config.json; use mode: convert"
        )
    if options.mode == "convert" and converted:
        found.append(
            f"patches[mixture_of_depths]: {config.model.name_or_path} is converted already (config.json has "
            "mixture_of_depths); use mode: load"
        )
    return found


def unsupported(model_type: str) -> str:
    return (
        f"patches[mixture_of_depths]: model_type {model_type!r} is not supported (supported: "
        f"{', '.join(sorted(SUPPORTED_MODEL_TYPES))}); remove mixture_of_depths from patches"
    )


class MixtureOfDepthsPatch(ModelPatch[MixtureOfDepthsOptions]):
    """Mixture-of-Depths: routed layers process only their top ``capacity`` tokens while training."""

    options_schema: ClassVar[type] = MixtureOfDepthsOptions
    description: ClassVar[str] = (
        "Mixture-of-Depths: a router per routed decoder layer; while training only the top capacity x L tokens "
        "run through it (mode: convert | load)"
    )

    def validate(self, options: MixtureOfDepthsOptions, config: RunConfig) -> list[str]:
        return problems(options, config)

    def patch_model(self, model: Any, options: MixtureOfDepthsOptions) -> Any:
        from ft_core_mod.routing import CONFIG_KEY, convert, load_routers

        model_type = getattr(model.config, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise FtCoreError(unsupported(str(model_type)))
        recorded = getattr(model.config, CONFIG_KEY, None)
        if options.mode == "load":
            if not isinstance(recorded, dict):
                raise FtCoreError(
                    f"patches[mixture_of_depths]: mode: load, but {model.name_or_path} is not a converted model "
                    "(no mixture_of_depths in its config); use mode: convert"
                )
            layers = convert(model, float(recorded["capacity"]), int(recorded["every"]))
            load_routers(model, model.name_or_path)
            action = "loaded"
        else:
            capacity = DEFAULT_CAPACITY if options.capacity is None else options.capacity
            layers = convert(model, capacity, DEFAULT_EVERY if options.every is None else options.every)
            action = "converted"
        routing = getattr(model.config, CONFIG_KEY)
        logger.info(
            f"mixture_of_depths: {action}; {len(layers)} routed layers {layers}, capacity {routing['capacity']:g} "
            "while training"
        )
        return model
