"""The ``hqq`` quantizer: the frozen base model's linear weights in 1 to 8 bits by HQQ, quantized on the fly.

HQQ (Half-Quadratic Quantization, mobiusml/hqq) fits each group's scale and zero point to the weights alone, so
it needs no calibration data and quantizes a model in seconds. transformers 5.x's ``HqqConfig`` path does not load
(transformers 5.25 raises ``NotImplementedError: QuantizationMethod.HQQ is not available yet`` while the weights
load, and refuses CPU device maps), so this plugin uses hqq's own API: core loads the unquantized weights on the
CPU (``quantizes_after_load``) and :meth:`HqqQuantizer.quantize` replaces every linear layer but the output head by
an ``hqq.core.quantize.HQQLinear`` built on the process's device, one layer at a time: the full-precision model
never sits on the GPU. PEFT puts its ``HqqLoraLinear`` on these layers; hqq's PyTorch backend runs the forward and
backward passes (dequantize, matmul) on CUDA GPUs and on the CPU alike.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ft_core.api import FtCoreError, OptionsError, Quantizer, RunConfig, RunContext

logger = logging.getLogger(__name__)

#: The oldest hqq this plugin supports (checked with 0.2.8.post1).
MIN_HQQ = "0.2.8"
PIP_INSTALL = f"pip install 'hqq>={MIN_HQQ}'"
#: The bit widths HQQ packs and trains (hqq also lists 1.58, stored in 2 bits: use bits 2).
BITS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8)
#: Distributed strategies that shard parameters, which HQQ's packed layers are not written for.
_SHARDING = ("fsdp", "deepspeed")

DType = Literal["auto", "bfloat16", "float16", "float32"]


@dataclass
class HqqOptions:
    """Options of ``quantization.method: hqq``."""

    #: Bits per weight: 1, 2, 3, 4, 5, 6 or 8 (5 and 6 are stored in 8 bits by hqq 0.2.x).
    bits: int = 4
    #: Weights per (scale, zero point) group: a multiple of 8 that divides the grouped dimension of every quantized
    #: layer (the input size with ``axis: 1``, the output size with ``axis: 0``); ``null`` = one group per row.
    group_size: int | None = 64
    #: The dimension groups run along: 1 (along each output row, hqq's default and what its fast inference
    #: backends need) or 0 (along each input column; often more accurate at 1 to 3 bits).
    axis: int = 1
    #: dtype the dequantized weights compute in: ``auto`` = the dtype the model loads in (``model.dtype``, else the
    #: run's training precision: bf16 on a bf16-capable GPU, fp32 on the CPU).
    compute_dtype: DType = "auto"
    #: Modules left unquantized, in addition to the output head (which always is): names such as ``down_proj``,
    #: dotted paths or regular expressions; a list or ``"a,b"``.
    skip_modules: list[str] | str = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or self.bits not in BITS:
            raise OptionsError(
                f"bits must be one of {', '.join(map(str, BITS))}, got {self.bits!r} (HQQ's 1.58-bit weights are "
                "stored in 2 bits: use bits: 2)"
            )
        if self.group_size is not None and (
            isinstance(self.group_size, bool)
            or not isinstance(self.group_size, int)
            or self.group_size < 8
            or self.group_size % 8
        ):
            raise OptionsError(
                f"group_size must be a positive multiple of 8 (e.g. 64) or null, got {self.group_size!r}"
            )
        if isinstance(self.axis, bool) or self.axis not in (0, 1):
            raise OptionsError(f"axis must be 0 or 1, got {self.axis!r}")
        if self.compute_dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise OptionsError(
                f"compute_dtype must be auto, bfloat16, float16 or float32, got {self.compute_dtype!r}"
            )
        if isinstance(self.skip_modules, str):
            self.skip_modules = [s.strip() for s in self.skip_modules.split(",") if s.strip()]
        if any(not isinstance(s, str) or not s.strip() for s in self.skip_modules):
            raise OptionsError(f"skip_modules must be module names, got {self.skip_modules!r}")

    def describe(self) -> str:
        groups = f"groups of {self.group_size}" if self.group_size else "one group per row"
        return f"{self.bits}-bit ({groups}, axis {self.axis})"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def installation_problem() -> str | None:
    """Why hqq cannot be used (not installed, too old), or ``None``; imports nothing heavy."""
    if importlib.util.find_spec("hqq") is None:
        return f"the hqq package is not installed: {PIP_INSTALL}"
    try:
        version = importlib.metadata.version("hqq")
    except importlib.metadata.PackageNotFoundError:  # importable from a source tree: trust it
        return None
    if _version_tuple(version) < _version_tuple(MIN_HQQ):
        return f"hqq {version} is too old (this plugin needs >= {MIN_HQQ}): {PIP_INSTALL}"
    return None


def _require_hqq() -> None:
    problem = installation_problem()
    if problem:
        raise FtCoreError(f"quantization.method: {problem}")


def _matches(name: str, pattern: str) -> bool:
    """A suffix at a module boundary, or a regex from the start up to a module boundary."""
    if name == pattern or name.endswith(f".{pattern}"):
        return True
    try:
        return re.match(rf"(?:{pattern})(?:(?<=\.)|(?=\.|$))", name) is not None
    except re.error:
        return False


def _linear_layers(model: Any, options: HqqOptions) -> dict[str, Any]:
    """The ``nn.Linear`` layers of ``model`` that get quantized: all but the output head (and tied weights, as
    transformers leaves them) and ``skip_modules``. A ``skip_modules`` pattern that matches nothing is an error."""
    from torch import nn
    from transformers.quantizers.base import get_keys_to_not_convert

    named = dict(model.named_modules())
    unmatched = [p for p in options.skip_modules if not any(_matches(n, p) for n in named if n)]
    linear = {n: m for n, m in named.items() if type(m) is nn.Linear}
    if unmatched:
        short = sorted({n.rsplit(".", 1)[-1] for n in linear})
        raise FtCoreError(
            f"quantization.skip_modules: {', '.join(repr(p) for p in unmatched)} matches no module of "
            f"{type(model).__name__}; linear modules are: {', '.join(short)}"
        )
    skips = [*get_keys_to_not_convert(model), *options.skip_modules]
    return {n: m for n, m in linear.items() if not any(_matches(n, s) for s in skips)}


def check_group_size(model: Any, options: HqqOptions) -> None:
    """Every quantized layer's grouped dimension divides by ``group_size`` (raises :class:`FtCoreError`)."""
    if not options.group_size:
        return
    key = "in_features" if options.axis == 1 else "out_features"
    sizes = sorted({getattr(m, key) for m in _linear_layers(model, options).values()})
    bad = [size for size in sizes if size % options.group_size]
    if bad:
        divisors = [d for d in range(8, bad[0] + 1, 8) if bad[0] % d == 0 and all(s % d == 0 for s in bad)]
        hint = f"use a multiple of 8 that divides {bad[0]} (e.g. {divisors[-1]})" if divisors else "use null"
        raise FtCoreError(
            f"quantization.group_size: {options.group_size} does not divide the {key[:-9]}put size "
            f"{bad[0]} of some linear layers of {type(model).__name__} (axis {options.axis}); {hint}, "
            "or group_size: null (one group per row)"
        )


def _meta_model(model_config: Any) -> Any:
    """An empty (meta-device) causal LM of ``model_config``, or ``None`` where it cannot be built."""
    try:
        import torch
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(model_config)
    except Exception:  # remote-code models, other heads: checked again when quantizing
        return None


def _device_name(device: Any) -> str:
    return f"cuda:{device}" if isinstance(device, int) else str(device)


def quantize_model(model: Any, options: HqqOptions, device: Any = "cpu") -> Any:
    """Replace the linear layers of ``model`` (loaded unquantized, on the CPU) by HQQ layers on ``device``
    (``"cpu"``, a CUDA index or ``"cuda:N"``), layer by layer, then move the rest of the model there. The layers
    compute in ``options.compute_dtype`` (``auto``: the model's dtype). Returns the model."""
    _require_hqq()
    import torch
    from hqq.core.quantize import BaseQuantizeConfig, HQQBackend, HQQLinear

    layers = _linear_layers(model, options)
    if not layers:
        raise FtCoreError(
            f"quantization.method: hqq found no linear layer to quantize in {type(model).__name__}"
        )
    check_group_size(model, options)
    target = _device_name(device)
    dtype = model.dtype if options.compute_dtype == "auto" else getattr(torch, options.compute_dtype)
    HQQLinear.set_backend(HQQBackend.PYTORCH)  # dequantize + matmul, with a backward pass, on any device
    config = BaseQuantizeConfig(nbits=options.bits, group_size=options.group_size, axis=options.axis)
    modules = dict(model.named_modules())
    for name, linear in layers.items():
        parent, _, child = name.rpartition(".")
        setattr(
            modules[parent] if parent else model,
            child,
            HQQLinear(linear, config, compute_dtype=dtype, device=target),
        )
    for module in model.modules():
        if isinstance(module, HQQLinear):
            continue
        for parameter in module._parameters.values():
            if parameter is not None and parameter.device != torch.device(target):
                parameter.data = parameter.data.to(target)
        for key, buffer in module._buffers.items():
            if buffer is not None:
                module._buffers[key] = buffer.to(target)
    model.hqq_quantized = True  # hqq's own marker of a quantized model
    return model


def load_quantized_model(
    model_dir: str, options: HqqOptions, *, device: Any = "cpu", dtype: Any = None, auto_class: Any = None
) -> Any:
    """The model saved in ``model_dir`` loaded on the CPU in ``dtype`` (default fp32) and quantized by
    :func:`quantize_model` onto ``device``: the quantized base an HQQ run trained on, to load its adapter onto
    (``peft.PeftModel.from_pretrained(load_quantized_model(base, options), run_dir + "/model")``). HQQ is
    deterministic, so the same weights and options give the same quantized base."""
    import torch
    from transformers import AutoModelForCausalLM

    model = (auto_class or AutoModelForCausalLM).from_pretrained(
        model_dir, dtype=dtype or torch.float32, device_map={"": "cpu"}
    )
    return quantize_model(model, options, device)


class HqqQuantizer(Quantizer[HqqOptions]):
    """HQQ through its own API (transformers 5.x's ``HqqConfig`` does not load); trains through an adapter only."""

    options_schema: ClassVar[type] = HqqOptions
    description: ClassVar[str] = (
        "HQQ 1/2/3/4/5/6/8-bit base weights, quantized on the fly without calibration data; CPU and CUDA"
    )
    trains_with_adapters_only: ClassVar[bool] = True
    quantizes_after_load: ClassVar[bool] = True

    def validate(self, options: HqqOptions, config: RunConfig) -> list[str]:
        """hqq must be installed; fp16 compute needs a GPU; parameter-sharding strategies are refused."""
        problem = installation_problem()
        problems = [f"quantization.method: {problem}"] if problem else []
        if options.compute_dtype == "float16" and config.training.use_cpu:
            problems.append(
                "quantization.compute_dtype: float16 matmuls need a GPU, but training.use_cpu is true; use auto "
                "or float32"
            )
        strategy = config.distributed.strategy
        if strategy in _SHARDING:
            problems.append(
                f"quantization.method: hqq layers cannot be sharded by distributed.strategy: {strategy} (their "
                "packed weights are not sharded parameters); use strategy ddp (each GPU holds the whole quantized "
                "model), or quantization.method: bitsandbytes with quant_storage for sharded QLoRA"
            )
        return problems

    def load_kwargs(self, options: HqqOptions, model_config: Any) -> dict[str, Any]:
        """Nothing for ``from_pretrained`` (the weights load unquantized); checks ``group_size`` and
        ``skip_modules`` against the model's layers (an empty model) before the weights load."""
        _require_hqq()
        model = _meta_model(model_config)
        if model is not None:
            check_group_size(model, options)
        return {}

    def quantize(self, model: Any, options: HqqOptions, device: Any) -> Any:
        """Quantize the model's linear layers onto ``device`` (:func:`quantize_model`)."""
        return quantize_model(model, options, device)

    def prepare(self, model: Any, options: HqqOptions, run: RunContext) -> Any:
        """Freeze every base parameter (activation checkpointing is core's, applied after ``prepare``)."""
        from hqq.core.quantize import HQQLinear

        layers = [m for m in model.modules() if isinstance(m, HQQLinear)]
        if not layers:
            raise FtCoreError(
                f"quantization.method: no layer of {type(model).__name__} was quantized by hqq (was it loaded "
                "with this quantizer, or is it already quantized another way?)"
            )
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        if run.process.is_main_process:
            dtype = str(layers[0].compute_dtype).replace("torch.", "")
            logger.info(f"hqq: {options.describe()}, compute {dtype}: {len(layers)} HQQLinear layers")
        return model
