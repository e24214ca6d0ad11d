"""The ``torchao`` quantizer: the frozen base model's linear weights in FP8 or int8 (torchao), for LoRA training.

Weights are quantized by transformers' torchao integration while they load (``quantization_config=
TorchAoConfig(<torchao config>)``), so the full-precision model never sits on the GPU. Schemes:

- ``float8_dynamic``: FP8 (e4m3) weights with per-row (or per-tensor) scales, activations quantized to FP8 on
  the fly: the forward matmuls of the base model run on FP8 tensor cores (CUDA compute capability >= 8.9);
- ``float8_weight_only``: FP8 weights, dequantized for a matmul in the training precision (any device);
- ``int8_weight_only``: int8 weights with per-row, per-tensor or per-group scales (any device, the CPU too).

:meth:`TorchAoQuantizer.prepare` freezes the model and turns the quantized linear layers into
:class:`~ft_core_torchao.linear.FrozenQuantizedLinear`, through which gradients reach the adapters of earlier
layers without keeping dequantized weights for the backward pass (see :mod:`ft_core_torchao.linear`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import re
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ft_core.api import FtCoreError, OptionsError, Quantizer, RunConfig, RunContext

logger = logging.getLogger(__name__)

#: The oldest torchao this plugin supports (checked with 0.18.0; its Float8Tensor / Int8Tensor weights).
MIN_TORCHAO = "0.18"
PIP_INSTALL = f"pip install 'torchao>={MIN_TORCHAO}'"
#: FP8 matmuls (``torch._scaled_mm``) need this CUDA compute capability (Ada, Hopper, Blackwell).
FP8_CAPABILITY = (8, 9)

Scheme = Literal["float8_dynamic", "float8_weight_only", "int8_weight_only", "int4_weight_only"]
#: The schemes that train (``int4_weight_only`` is accepted by the schema only to explain why it does not).
SCHEMES: tuple[str, ...] = ("float8_dynamic", "float8_weight_only", "int8_weight_only")
_WEIGHT_ONLY = ("float8_weight_only", "int8_weight_only")
_NOT_TRAINABLE = {
    "int4_weight_only": "PEFT cannot put LoRA adapters on torchao int4 weights (its torchao LoRA layer supports "
    "8-bit weights only, and torchao's int4 kernels are CUDA inference kernels); for 4-bit QLoRA use "
    "quantization.method: bitsandbytes with bits: 4",
}


@dataclass
class TorchAoOptions:
    """Options of ``quantization.method: torchao``."""

    #: ``float8_dynamic`` (FP8 weights and FP8 forward matmuls; CUDA compute capability >= 8.9),
    #: ``float8_weight_only`` (FP8 weights, matmuls in the training precision) or ``int8_weight_only``.
    #: ``int4_weight_only`` is refused with the reason (PEFT cannot train LoRA on torchao int4 weights).
    scheme: Scheme = "float8_dynamic"
    #: Scale granularity: ``row`` (one scale per output channel; float8_dynamic needs bf16 weights for it) or
    #: ``tensor`` (one scale per weight matrix).
    granularity: Literal["row", "tensor"] = "row"
    #: Weight-only schemes: one scale per ``group_size`` input columns of each row instead of ``granularity``
    #: (must divide the input size of every quantized layer); ``null`` = no groups.
    group_size: int | None = None
    #: Modules left unquantized, in addition to the output head (which always is): names such as ``down_proj``,
    #: dotted paths or regular expressions; a list or ``"a,b"``.
    skip_modules: list[str] | str = field(default_factory=list)
    #: float8_dynamic only: compute the gradient of each quantized layer's input with an FP8 matmul too (the
    #: gradient quantized to e4m3 per token) instead of a matmul with the dequantized weight.
    fp8_backward: bool = False

    def __post_init__(self) -> None:
        if self.scheme in _NOT_TRAINABLE:
            raise OptionsError(f"scheme {self.scheme} cannot be trained: {_NOT_TRAINABLE[self.scheme]}")
        if self.scheme not in SCHEMES:
            raise OptionsError(f"scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        if self.granularity not in ("row", "tensor"):
            raise OptionsError(f"granularity must be row or tensor, got {self.granularity!r}")
        if self.group_size is not None:
            if (
                isinstance(self.group_size, bool)
                or not isinstance(self.group_size, int)
                or self.group_size < 1
            ):
                raise OptionsError(f"group_size must be a positive integer or null, got {self.group_size!r}")
            if self.scheme not in _WEIGHT_ONLY:
                raise OptionsError(
                    f"group_size applies to the weight-only schemes ({', '.join(_WEIGHT_ONLY)}), not to "
                    f"{self.scheme} (its FP8 matmul takes row or tensor scales); remove group_size or use "
                    "granularity"
                )
        if self.fp8_backward and self.scheme != "float8_dynamic":
            raise OptionsError(
                f"fp8_backward applies to scheme float8_dynamic, not to {self.scheme}; remove it or use "
                "scheme: float8_dynamic"
            )
        if isinstance(self.skip_modules, str):
            self.skip_modules = [s.strip() for s in self.skip_modules.split(",") if s.strip()]
        if any(not isinstance(s, str) or not s.strip() for s in self.skip_modules):
            raise OptionsError(f"skip_modules must be module names, got {self.skip_modules!r}")

    @property
    def bits(self) -> int:
        """Bits per quantized weight (read by the engine's activation-checkpointing memory estimate)."""
        return 8

    def describe(self) -> str:
        scales = f"groups of {self.group_size}" if self.group_size else f"per-{self.granularity} scales"
        return f"{self.scheme} ({scales}{', FP8 backward' if self.fp8_backward else ''})"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def installation_problem() -> str | None:
    """Why torchao cannot be used (not installed, too old), or ``None``; imports nothing heavy."""
    if importlib.util.find_spec("torchao") is None:
        return f"the torchao package is not installed: {PIP_INSTALL} (a release built for your torch version)"
    try:
        version = importlib.metadata.version("torchao")
    except importlib.metadata.PackageNotFoundError:  # importable from a source tree: trust it
        return None
    if _version_tuple(version) < _version_tuple(MIN_TORCHAO):
        return f"torchao {version} is too old (this plugin needs >= {MIN_TORCHAO}): {PIP_INSTALL}"
    return None


class _QuietTorchAo(logging.Filter):
    """Drops torchao's import-time warnings that its CUDA kernel libraries cannot load on a CPU-only PyTorch
    build (they cannot be used there, and the CPU schemes do not need them), and PyTorch's deprecation note about
    torchao registering an enum with pytree. Kernel-load failures on a CUDA build are kept: they matter there."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "is an Enum subclass and is now natively supported" in message:
            return False
        if message.startswith("Failed to load") and "torchao" in message:
            torch = sys.modules.get("torch")
            return getattr(getattr(torch, "version", None), "cuda", None) is not None
        return True


def quiet_torchao_logs() -> None:
    """Install :class:`_QuietTorchAo` on the loggers concerned (idempotent; imports nothing)."""
    for name in ("torchao", "torch.utils._pytree"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietTorchAo) for f in logger.filters):
            logger.addFilter(_QuietTorchAo())


def _require_torchao() -> None:
    problem = installation_problem()
    if problem:
        raise FtCoreError(f"quantization.method: {problem}")
    quiet_torchao_logs()
    try:
        import torchao  # noqa: F401
    except Exception as exc:  # a torchao built for another torch fails in its own ways
        raise FtCoreError(
            f"quantization.method: torchao is installed but cannot be imported ({type(exc).__name__}: {exc}); "
            f"install the torchao release built for your torch version: {PIP_INSTALL}"
        ) from exc


def torchao_config(options: TorchAoOptions) -> Any:
    """The torchao ``AOBaseConfig`` of ``options`` (``set_inductor_config=False``: no global inductor
    settings are changed)."""
    _require_torchao()
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        Int8WeightOnlyConfig,
        PerGroup,
        PerRow,
        PerTensor,
    )

    if options.group_size:
        granularity = PerGroup(options.group_size)
    else:
        granularity = PerRow() if options.granularity == "row" else PerTensor()
    if options.scheme == "int8_weight_only":
        return Int8WeightOnlyConfig(granularity=granularity, set_inductor_config=False)
    if options.scheme == "float8_weight_only":
        return Float8WeightOnlyConfig(granularity=granularity, set_inductor_config=False)
    return Float8DynamicActivationFloat8WeightConfig(granularity=granularity, set_inductor_config=False)


def _matches(name: str, pattern: str) -> bool:
    """A suffix at a module boundary, or a regex from the start up to a module boundary."""
    if name == pattern or name.endswith(f".{pattern}"):
        return True
    try:
        return re.match(rf"(?:{pattern})(?:(?<=\.)|(?=\.|$))", name) is not None
    except re.error:
        return False


def _meta_model(model_config: Any) -> Any:
    """An empty (meta-device) model of ``model_config``, or ``None`` where it cannot be built."""
    try:
        import torch
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(model_config)
    except Exception:  # remote-code models, other transformers releases
        return None


def _default_skips(model: Any) -> list[str]:
    """What transformers leaves unquantized by default (output head, tied weights)."""
    if model is None:
        return ["lm_head"]
    from transformers.quantizers.base import get_keys_to_not_convert

    return sorted(get_keys_to_not_convert(model))


def _linear_names(model: Any) -> list[str]:
    from torch import nn

    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def modules_to_not_convert(options: TorchAoOptions, model: Any) -> list[str] | None:
    """``TorchAoConfig.modules_to_not_convert``: ``None`` (transformers' defaults: the output head) without
    ``skip_modules``; else the defaults plus the full names of the modules ``skip_modules`` matches, because
    transformers matches these patterns against parameter names from the start (``down_proj`` alone would
    match nothing)."""
    if not options.skip_modules:
        return None
    skips = _default_skips(model)
    if model is None:
        return [*skips, *options.skip_modules]
    names = [name for name, _ in model.named_modules() if name]
    unmatched = [p for p in options.skip_modules if not any(_matches(name, p) for name in names)]
    if unmatched:
        linear = sorted({name.rsplit(".", 1)[-1] for name in _linear_names(model)})
        raise FtCoreError(
            f"quantization.skip_modules: {', '.join(repr(p) for p in unmatched)} matches no module of "
            f"{type(model).__name__}; linear modules are: {', '.join(linear)}"
        )
    matched = [name for name in names if any(_matches(name, p) for p in options.skip_modules)]
    return sorted({*skips, *matched})


def _check_group_size(options: TorchAoOptions, model: Any, skips: list[str] | None) -> None:
    if not options.group_size or model is None:
        return
    skips = skips if skips is not None else _default_skips(model)
    modules = dict(model.named_modules())
    bad = sorted(
        {
            modules[name].in_features
            for name in _linear_names(model)
            if not any(_matches(name, s) for s in skips) and modules[name].in_features % options.group_size
        }
    )
    if bad:
        raise FtCoreError(
            f"quantization.group_size: {options.group_size} does not divide the input size {bad[0]} of some "
            f"linear layers of {type(model).__name__}; use a divisor of {bad[0]} or leave group_size unset"
        )


def _load_dtype(config: RunConfig) -> str:
    """The dtype the engine loads weights in: ``model.dtype``, else from ``training.precision`` (``auto``: bf16
    on a bf16-capable GPU, which every FP8-capable GPU is)."""
    if config.model.dtype != "auto":
        return config.model.dtype
    return {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}.get(
        config.training.precision, "bfloat16"
    )


def fp8_hardware_problem(config: RunConfig) -> str | None:
    """Why ``float8_dynamic`` cannot run on this machine for ``config`` (CPU run, no GPU, GPU too old)."""
    cpu_hint = (
        "use scheme: float8_weight_only (FP8 weights, matmuls in the training precision) or int8_weight_only, "
        "which run anywhere"
    )
    if config.training.use_cpu:
        return (
            "scheme float8_dynamic runs FP8 matmuls, which need a CUDA GPU of compute capability >= 8.9 (Ada, "
            f"Hopper, Blackwell), but training.use_cpu is true; {cpu_hint}"
        )
    import torch

    if not torch.cuda.is_available():
        return (
            "scheme float8_dynamic runs FP8 matmuls, which need a CUDA GPU of compute capability >= 8.9 (Ada, "
            f"Hopper, Blackwell), and no CUDA GPU is visible; {cpu_hint}"
        )
    capability = torch.cuda.get_device_capability()
    if torch.version.hip is None and capability < FP8_CAPABILITY:
        name = torch.cuda.get_device_name()
        return (
            f"scheme float8_dynamic runs FP8 matmuls, which need CUDA compute capability >= 8.9, but {name} has "
            f"{capability[0]}.{capability[1]}; use scheme: float8_weight_only or int8_weight_only (halved weight "
            "memory without FP8 matmuls)"
        )
    return None


class TorchAoQuantizer(Quantizer[TorchAoOptions]):
    """torchao FP8 / int8 weights through transformers' ``TorchAoConfig``; trains through an adapter only."""

    options_schema: ClassVar[type] = TorchAoOptions
    description: ClassVar[str] = (
        "torchao FP8 (with FP8 matmuls on compute capability >= 8.9) or int8 frozen base weights for LoRA"
    )
    trains_with_adapters_only: ClassVar[bool] = True

    def validate(self, options: TorchAoOptions, config: RunConfig) -> list[str]:
        """torchao must be installed; ``float8_dynamic`` needs an FP8-capable CUDA GPU and, with row scales,
        bf16 weights."""
        problem = installation_problem()
        problems = [f"quantization.method: {problem}"] if problem else []
        if options.scheme == "float8_dynamic":
            hardware = fp8_hardware_problem(config)
            if hardware:
                problems.append(f"quantization.scheme: {hardware}")
            dtype = _load_dtype(config)
            if options.granularity == "row" and dtype != "bfloat16":
                problems.append(
                    f"quantization.granularity: row-scaled float8_dynamic needs bfloat16 weights, but the model "
                    f"loads in {dtype} (model.dtype / training.precision); use training.precision: bf16 or "
                    "granularity: tensor"
                )
        return problems

    def load_kwargs(self, options: TorchAoOptions, model_config: Any) -> dict[str, Any]:
        """``quantization_config=TorchAoConfig(<scheme>, modules_to_not_convert=...)`` for ``from_pretrained``."""
        _require_torchao()
        from transformers import TorchAoConfig

        model = _meta_model(model_config) if (options.skip_modules or options.group_size) else None
        skips = modules_to_not_convert(options, model)
        _check_group_size(options, model, skips)
        return {"quantization_config": TorchAoConfig(torchao_config(options), modules_to_not_convert=skips)}

    def prepare(self, model: Any, options: TorchAoOptions, run: RunContext) -> Any:
        """Freeze every base parameter and make the quantized linear layers trainable *through* (gradients for
        the adapters of earlier layers, without dequantized weights kept for the backward pass)."""
        _require_torchao()
        from torch import nn

        from ft_core_torchao.linear import is_quantized, make_trainable_through, weight_bytes

        for parameter in model.parameters():
            parameter.requires_grad_(False)
        names = make_trainable_through(model, fp8_backward=options.fp8_backward)
        quantized = [m for m in model.modules() if isinstance(m, nn.Linear) and is_quantized(m.weight)]
        if not quantized:
            raise FtCoreError(
                f"quantization.method: no layer of {type(model).__name__} was quantized by torchao (was the model "
                "loaded with this quantizer's load_kwargs, or is it already quantized another way?)"
            )
        plain = [n for n, m in model.named_modules() if type(m) is nn.Linear and not is_quantized(m.weight)]
        if run.process.is_main_process:
            stored = sum(weight_bytes(m) for m in quantized) / 2**30
            line = (
                f"torchao: {options.describe()}: {len(quantized)} linear layers quantized "
                f"({stored:.2f} GiB of weights)"
            )
            if len(names) < len(quantized):
                line += f", {len(quantized) - len(names)} of them of custom Linear classes keep torchao's autograd"
            line += f"; unquantized: {_summary(plain) or 'none'}"
            logger.info(line)
        return model


def _summary(names: list[str], shown: int = 6) -> str:
    """``a, b, c and 4 more``: module names grouped by their last component."""
    short = sorted({name.rsplit(".", 1)[-1] for name in names})
    return ", ".join(short[:shown]) + (f" and {len(short) - shown} more" if len(short) > shown else "")


def ignore_quantized_weights_in_ddp(model: Any) -> list[str]:
    """List the torchao weights in ``model._ddp_params_and_buffers_to_ignore``: DistributedDataParallel
    broadcasts every parameter from rank 0 when it wraps a model, which torchao tensors do not support (and
    frozen weights loaded from the same checkpoint need not be). Returns the names."""
    from ft_core_torchao.linear import is_quantized

    names = [name for name, parameter in model.named_parameters() if is_quantized(parameter)]
    if names:
        existing = list(getattr(model, "_ddp_params_and_buffers_to_ignore", []) or [])
        model._ddp_params_and_buffers_to_ignore = sorted({*existing, *names})
    return names
