"""Liger kernels by default: the ``liger`` config section (``enabled: auto | true | false``).

With ``enabled: auto`` (the default) every model of a run on a CUDA GPU whose ``config.model_type`` Liger supports
gets the kernels (``LigerOptions()`` defaults) when liger-kernel and triton are installed; otherwise nothing
changes. A CPU run is never touched, nor a model Unsloth loaded (Unsloth brings its own kernels). ``true`` makes a run that cannot use them an error instead; ``false`` turns
the automatic patch off. Listing ``liger`` in ``patches`` applies it explicitly, with its options, and the
automatic patch steps aside.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from ft_core.api import FtCoreError, OptionsError, RunConfig, RunContext
from ft_core_liger.patch import (
    FUSED_FORWARD_MODEL_TYPES,
    PIP_INSTALL,
    SUPPORTED_MODEL_TYPES,
    LigerOptions,
    LigerPatch,
    unsupported_reason,
    unusable_reason,
)

logger = logging.getLogger(__name__)

#: The config section.
SECTION = "liger"


@dataclass(frozen=True)
class LigerSection:
    """The ``liger:`` section."""

    #: ``auto``: Liger kernels on CUDA GPU runs of the model types liger-kernel supports (llama, qwen2/3, mistral,
    #: gemma, phi3, ...) when liger-kernel is installed, except on a model Unsloth loaded; ``true``: the same, and an error when they cannot apply; ``false``: off (``patches: [liger]``
    #: still applies them explicitly).
    enabled: bool | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        if self.enabled not in (True, False, "auto"):
            raise OptionsError(f"enabled: true, false or auto, got {self.enabled!r}")


def explicitly_patched(config: RunConfig) -> bool:
    """Whether ``patches`` lists ``liger`` (then the patch applies with its own options)."""
    return any(selection.name == "liger" for selection in config.many("patches"))


def validate(config: RunConfig) -> list[str]:
    """``enabled: true`` on a run that cannot use Liger (CPU, liger-kernel missing) is a problem."""
    section: LigerSection = config.section(SECTION)
    if section.enabled is not True or explicitly_patched(config):
        return []
    if config.training.use_cpu:
        return [f"{SECTION}.enabled: true needs a CUDA GPU, but training.use_cpu is true; use auto or false"]
    reason = unusable_reason()
    return [f"{SECTION}.enabled: true, but {reason}"] if reason else []


def default_reason(config: RunConfig) -> str | None:
    """Why the plugin acts in a run whose config does not mention it: a CUDA GPU run with liger-kernel installed
    (``ft_activate_by_default``), or ``None``."""
    if config.training.use_cpu or unusable_reason() is not None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return (
        "Liger kernels on CUDA GPU runs of the model types they support (liger.enabled: auto; turn off with "
        "plugins: {disable: [liger]})"
    )


def unsloth_reason(model: Any, run: RunContext) -> str | None:
    """Why ``model`` is Unsloth's (its kernels replace Liger's), or ``None``."""
    if getattr(getattr(model, "config", None), "unsloth_version", None):
        return "the model was loaded by Unsloth, which brings its own kernels"
    try:  # the section exists only when ft-core-unsloth is installed
        unsloth = run.config.section("unsloth")
    except (KeyError, LookupError, AttributeError):
        return None
    if getattr(unsloth, "enabled", False) is True:
        return "unsloth.enabled: Unsloth brings its own kernels"
    return None


def skip_reason(model: Any, run: RunContext) -> str | None:
    """Why the automatic patch does not apply to ``model`` in ``run``, or ``None`` when it does."""
    reason = unsloth_reason(model, run)
    if reason is not None:
        return reason
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    return unusable_reason() or unsupported_reason(model)


def options_for(run: RunContext) -> LigerOptions:
    """Every kernel; the fused linear cross-entropy (which returns no logits when labels are given in training
    mode) only for stages without head modules of their own."""
    stage = run.config.stage
    role = stage.component.role("policy", stage.options)
    return LigerOptions(fused_linear_cross_entropy=role.head == "causal_lm" and not role.head_modules)


def warmup_options(model_config: Any, run: RunContext) -> LigerOptions | None:
    """The kernels the policy model will get, judged from its config before the weights load (for
    :mod:`ft_core_liger.warmup`), or ``None`` when Liger will not apply: automatically for the fused-forward
    model types, or through ``patches: [liger]`` for any type liger-kernel supports."""
    section: LigerSection = run.config.section(SECTION)
    if section.enabled is False or not run.uses_gpu or unusable_reason() is not None:
        return None
    if getattr(model_config, "unsloth_version", None) or unsloth_reason(model_config, run) is not None:
        return None
    model_type = getattr(model_config, "model_type", None)
    explicit = [selection for selection in run.config.many("patches") if selection.name == "liger"]
    if explicit:
        return explicit[0].options if model_type in SUPPORTED_MODEL_TYPES else None
    return options_for(run) if model_type in FUSED_FORWARD_MODEL_TYPES else None


def _say(run: RunContext, message: str) -> None:
    if run.process.is_main_process:
        logger.info(message)


def apply_automatically(model: Any, run: RunContext, role: str) -> bool:
    """The ``ft_patch_model`` side of ``liger.enabled``: patch ``model`` when the section asks for it and the run
    can use Liger; logs one line per run (for the policy model). Returns whether it patched."""
    section: LigerSection = run.config.section(SECTION)
    if section.enabled is False or explicitly_patched(run.config) or not run.uses_gpu:
        return False
    reason = skip_reason(model, run)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if reason is None and section.enabled == "auto" and model_type not in FUSED_FORWARD_MODEL_TYPES:
        # Liger's own forward for the other types (softcapping, MoE, vision) is not verified here on transformers 5.
        reason = (
            f"automatic only for {', '.join(sorted(FUSED_FORWARD_MODEL_TYPES))}; liger.enabled: true applies it to "
            f"{model_type!r} too"
        )
    if reason is not None:
        if section.enabled is True and unsloth_reason(model, run) is None:
            raise FtCoreError(f"{SECTION}.enabled: true, but {reason}; use liger.enabled: auto or false")
        if role == "policy":
            _say(run, f"liger kernels: off ({reason})")
            run.record("liger.kernels", [], reason)
        return False
    options = options_for(run)
    LigerPatch().patch_model(model, options)
    if role == "policy":
        kernels = [
            name.replace("_", " ")
            for name in ("fused_linear_cross_entropy", "rms_norm", "swiglu", "rope", "cross_entropy")
            if getattr(options, name)
        ]
        _say(run, f"liger kernels: on ({', '.join(kernels)}; turn off with liger: {{enabled: false}})")
        run.record(
            "liger.kernels", kernels, f"liger.enabled: {section.enabled} on a CUDA GPU run of {model_type}"
        )
    return True


__all__ = [
    "PIP_INSTALL",
    "SECTION",
    "LigerSection",
    "apply_automatically",
    "default_reason",
    "skip_reason",
    "unsloth_reason",
    "validate",
    "warmup_options",
]
