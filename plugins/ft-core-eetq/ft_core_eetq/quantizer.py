"""The ``eetq`` quantizer: the frozen base model's linear weights in int8 (per output channel, weight-only) by EETQ.

Built on transformers' ``EetqConfig``: transformers 5.x quantizes each linear weight while it loads with EETQ's
kernels, which it takes from the Hugging Face kernel repository ``kernels-community/quantization-eetq`` through the
``kernels`` package, and puts its ``EetqLinear`` (int8 weight, fp16 scales, a backward pass for the input gradient)
in the model. PEFT's LoRA layer for these layers (``EetqLoraLinear``) is enabled only when the ``eetq`` package
itself is importable, which has no PyPI wheel (build it from github.com/NetEase-FuXi/EETQ). EETQ's kernels are
CUDA-only: a CPU run is refused at validation.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ft_core.api import FtCoreError, OptionsError, Quantizer, RunConfig, RunContext

logger = logging.getLogger(__name__)

#: The Hub kernel repository transformers loads EETQ's kernels from.
KERNEL_REPO = "kernels-community/quantization-eetq"
EETQ_SOURCE = (
    "pip install 'git+https://github.com/NetEase-FuXi/EETQ.git' (no PyPI wheel; it builds CUDA kernels, or take a "
    "wheel from its releases page for your torch / CUDA)"
)
#: EETQ's kernels need this CUDA compute capability or newer.
MIN_CAPABILITY = (7, 0)
_ELSEWHERE = (
    "use quantization.method: hqq (any bits, CPU too) or bitsandbytes with bits: 8, which run on the CPU"
)


@dataclass
class EetqOptions:
    """Options of ``quantization.method: eetq``."""

    #: Bits per weight: EETQ is int8 only (``bits: 8``).
    bits: int = 8
    #: Modules left unquantized, in addition to the output head (which always is): module names such as
    #: ``down_proj`` or dotted paths; a list or ``"a,b"``.
    skip_modules: list[str] | str = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or self.bits != 8:
            raise OptionsError(
                f"bits must be 8 (EETQ stores int8 weights), got {self.bits!r}; for fewer bits use "
                "quantization.method: hqq (1-8 bits) or bitsandbytes (4-bit)"
            )
        if isinstance(self.skip_modules, str):
            self.skip_modules = [s.strip() for s in self.skip_modules.split(",") if s.strip()]
        if any(not isinstance(s, str) or not s.strip() for s in self.skip_modules):
            raise OptionsError(f"skip_modules must be module names, got {self.skip_modules!r}")


def _kernel_cached() -> bool:
    """Whether EETQ's Hub kernel is in the local Hugging Face cache (ft-core downloads nothing)."""
    from huggingface_hub import constants

    folder = os.path.join(constants.HF_HUB_CACHE, "models--" + KERNEL_REPO.replace("/", "--"))
    return os.path.isdir(folder)


def installation_problems() -> list[str]:
    """What is missing for EETQ training (``kernels``, EETQ's Hub kernel in the cache, ``eetq``); imports nothing
    heavy."""
    problems = []
    if importlib.util.find_spec("kernels") is None:
        problems.append(
            "quantization.method: eetq needs the kernels package (transformers loads EETQ's CUDA kernels with it): "
            "pip install 'kernels>=0.11'"
        )
    elif not _kernel_cached():
        problems.append(
            f"quantization.method: eetq needs EETQ's kernel {KERNEL_REPO} in the Hugging Face cache, and ft-core "
            'downloads nothing: fetch it once on a machine with the same CUDA setup with python -c "from kernels '
            f"import get_kernel; get_kernel('{KERNEL_REPO}', version=1)\""
        )
    if importlib.util.find_spec("eetq") is None:
        problems.append(
            "quantization.method: eetq needs the eetq package (PEFT puts LoRA on EETQ layers only when it is "
            f"importable): {EETQ_SOURCE}"
        )
    return problems


def hardware_problem(config: RunConfig) -> str | None:
    """Why this machine cannot run EETQ for ``config`` (a CPU run, no CUDA GPU, a GPU too old)."""
    if config.training.use_cpu:
        return f"EETQ's int8 kernels need a CUDA GPU, but training.use_cpu is true; {_ELSEWHERE}"
    import torch

    if not torch.cuda.is_available() or torch.version.hip is not None:
        return f"EETQ's int8 kernels need a CUDA GPU, and none is visible; {_ELSEWHERE}"
    capability = torch.cuda.get_device_capability()
    if capability < MIN_CAPABILITY:
        return (
            f"EETQ's int8 kernels need CUDA compute capability >= 7.0, but {torch.cuda.get_device_name()} has "
            f"{capability[0]}.{capability[1]}; {_ELSEWHERE}"
        )
    return None


def _eetq_layers(model: Any) -> list[Any]:
    from transformers.integrations.eetq import EetqLinear

    return [m for m in model.modules() if isinstance(m, EetqLinear)]


class EetqQuantizer(Quantizer[EetqOptions]):
    """EETQ int8 weights through transformers' ``EetqConfig``; trains through an adapter only."""

    options_schema: ClassVar[type] = EetqOptions
    description: ClassVar[str] = (
        "EETQ int8 per-channel weight-only base weights, no calibration; CUDA GPUs only"
    )
    trains_with_adapters_only: ClassVar[bool] = True

    def validate(self, options: EetqOptions, config: RunConfig) -> list[str]:
        """A CUDA GPU (compute capability >= 7.0) on a GPU run, and kernels, EETQ's Hub kernel and eetq."""
        hardware = hardware_problem(config)
        problems = [f"quantization.method: {hardware}"] if hardware else []
        return problems + installation_problems()

    def load_kwargs(self, options: EetqOptions, model_config: Any) -> dict[str, Any]:
        """``quantization_config=EetqConfig("int8", ...)``; the output head stays unquantized."""
        problems = installation_problems()
        if problems:
            raise FtCoreError("; ".join(problems))
        from transformers import EetqConfig

        skips = ["lm_head", *options.skip_modules] if options.skip_modules else None
        return {"quantization_config": EetqConfig("int8", modules_to_not_convert=skips)}

    def prepare(self, model: Any, options: EetqOptions, run: RunContext) -> Any:
        """Freeze the base and give each ``EetqLinear`` its ``in_features`` / ``out_features`` (its int8 weight is
        stored transposed), so that ``targets: all`` finds the layers."""
        layers = _eetq_layers(model)
        if not layers:
            raise FtCoreError(
                f"quantization.method: no layer of {type(model).__name__} was quantized by EETQ (was the model "
                "loaded with this quantizer's load_kwargs?)"
            )
        for layer in layers:
            layer.in_features, layer.out_features = (int(n) for n in layer.weight.shape)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        if run.process.is_main_process:
            logger.info(f"eetq: int8 weight-only: {len(layers)} EetqLinear layers")
        return model
