"""ft-core plugin: Mixture-of-Depths (Raposo et al. 2024) as the ``mixture_of_depths`` model patch.

``mode: convert`` adds a router to every other decoder layer of a Llama-like model; while training, a routed layer
processes only the ``capacity`` share of each sequence's tokens its router ranks highest, and the other tokens skip
it. ``mode: load`` continues training a model a ``convert`` run saved. Implemented on transformers 5's own decoder
layers (the ``mixture-of-depth`` package ships copies of transformers 4 model code and does not run on 5).
Import-light: torch is imported when the patch applies, not at registration.
"""

from __future__ import annotations

from typing import Any

from ft_core.api import ModelPatch, Register, hookimpl
from ft_core_mod.patch import SUPPORTED_MODEL_TYPES, MixtureOfDepthsOptions, MixtureOfDepthsPatch

__all__ = ["SUPPORTED_MODEL_TYPES", "MixtureOfDepthsOptions", "MixtureOfDepthsPatch"]


@hookimpl
def ft_register_model_patches(register: Register[ModelPatch[Any]]) -> None:
    register("mixture_of_depths", MixtureOfDepthsPatch())
