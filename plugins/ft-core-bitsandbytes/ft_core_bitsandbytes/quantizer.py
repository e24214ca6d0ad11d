"""The ``bitsandbytes`` quantizer: 4-bit NF4/FP4 weights (QLoRA) or 8-bit LLM.int8 weights, quantized at load.

Weights are quantized by transformers' bitsandbytes integration while they load (``quantization_config=
BitsAndBytesConfig(...)``); :meth:`BitsAndBytesQuantizer.prepare` then readies the model for adapter training
(frozen base, compute dtype of the run, optional fp32 upcasts, non-reentrant gradient checkpointing).

bitsandbytes >= 0.49 runs both 4-bit and 8-bit layers on the CPU as well as on CUDA GPUs (its CPU backend plus
PyTorch fallbacks; checked with 0.50.2), so CPU QLoRA works — slowly, and 8-bit far slower than 4-bit on CPU.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ft_core.api import FtCoreError, OptionsError, Quantizer, RunConfig, RunContext, TrainingSection

logger = logging.getLogger(__name__)

#: The oldest bitsandbytes this plugin supports (its CPU backend runs 4-bit and 8-bit layers).
MIN_BITSANDBYTES = "0.49"
PIP_INSTALL = f"pip install 'bitsandbytes>={MIN_BITSANDBYTES}'"

DType = Literal["bfloat16", "float16", "float32"]
_PRECISION_DTYPES: dict[str, DType] = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@dataclass
class BitsAndBytesOptions:
    """Options of ``quantization.method: bitsandbytes`` (or ``bnb``).

    Options of the other bit width are errors (``quant_type`` with ``bits: 8``, ``llm_int8_threshold`` with
    ``bits: 4``, ...); the 4-bit defaults (nf4, double quantization) are filled in after validation.
    """

    #: 4 = 4-bit NF4/FP4 weights (QLoRA); 8 = 8-bit LLM.int8() weights.
    bits: Literal[4, 8] = 4
    #: 4-bit data type: ``nf4`` (NormalFloat4, the QLoRA paper's) or ``fp4``. 4-bit only; default ``nf4``.
    quant_type: Literal["nf4", "fp4"] | None = None
    #: Quantize the 4-bit quantization constants too (saves about 0.4 bit per parameter). 4-bit only; default true.
    double_quant: bool | None = None
    #: dtype the 4-bit layers compute in: ``auto`` = the run's training precision (bf16 on a bf16-capable GPU,
    #: fp16 on other GPUs, fp32 on the CPU, or what ``training.precision`` says). 4-bit only.
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    #: dtype the packed 4-bit weights are stored in: ``uint8`` (default) or a float dtype, normally the compute
    #: dtype (what FSDP / DeepSpeed ZeRO-3 sharding of a QLoRA model needs). 4-bit only.
    quant_storage: Literal["uint8", "bfloat16", "float16", "float32"] | None = None
    #: Modules left unquantized, in addition to the output head (which always is): names such as ``down_proj``,
    #: dotted paths or regular expressions, matched as transformers matches them; a list or ``"a,b"``.
    skip_modules: list[str] | str = field(default_factory=list)
    #: LLM.int8() outlier threshold: activations above it are multiplied in 16 bits. 8-bit only; default 6.0.
    llm_int8_threshold: float | None = None
    #: Cast unquantized weights to fp32 before training: ``none`` (LLaMA-Factory's default: least memory),
    #: ``norms`` (layer/RMS norms only, like LLaMA-Factory's ``upcast_layernorm``) or ``all`` (norms, embeddings
    #: and output head, as peft's ``prepare_model_for_kbit_training`` / the QLoRA paper do).
    upcast: Literal["none", "norms", "all"] = "none"
    #: Train through ft-core's lean 4-bit matmul (scales dequantized once, one dequantization and one matmul per
    #: call, forward and backward) instead of bitsandbytes' ``matmul_4bit``: the same arithmetic with a fraction
    #: of the host time per call. Costs 3 bytes per 64 weights with ``double_quant``. 4-bit only; default true.
    fast_matmul: bool | None = None

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise OptionsError(f"bits must be 4 or 8, got {self.bits!r}")
        self.skip_modules = self.skip_module_names
        if any(not isinstance(s, str) or not s.strip() for s in self.skip_modules):
            raise OptionsError(f"skip_modules must be module names, got {self.skip_modules!r}")
        if self.bits == 8:
            four_bit_only = {
                "quant_type": self.quant_type,
                "double_quant": self.double_quant,
                "compute_dtype": None if self.compute_dtype == "auto" else self.compute_dtype,
                "quant_storage": self.quant_storage,
                "fast_matmul": self.fast_matmul,
            }
            given = [f"{key}: {value}" for key, value in four_bit_only.items() if value is not None]
            if given:
                raise OptionsError(
                    f"{', '.join(given)}: 4-bit options, but bits is 8 (LLM.int8 has no 4-bit data type, compute "
                    "or storage dtype); remove them or set bits: 4"
                )
            if self.llm_int8_threshold is None:
                self.llm_int8_threshold = 6.0
            if self.llm_int8_threshold < 0:
                raise OptionsError(f"llm_int8_threshold must be >= 0, got {self.llm_int8_threshold}")
            return
        if self.llm_int8_threshold is not None:
            raise OptionsError("llm_int8_threshold only applies to 8-bit quantization (bits: 8); remove it")
        if self.quant_type is None:
            self.quant_type = "nf4"
        if self.double_quant is None:
            self.double_quant = True
        if self.fast_matmul is None:
            self.fast_matmul = True

    @property
    def skip_module_names(self) -> list[str]:
        """``skip_modules`` as a list of names (a ``"a,b"`` string split at its commas)."""
        if isinstance(self.skip_modules, str):
            return [s.strip() for s in self.skip_modules.split(",") if s.strip()]
        return self.skip_modules


def resolve_compute_dtype(options: BitsAndBytesOptions, training: TrainingSection | None) -> DType:
    """The 4-bit compute dtype: ``options.compute_dtype`` unless ``auto``, else the run's training precision,
    resolved as the engine resolves ``training.precision: auto`` (bf16 on a bf16-capable CUDA GPU, fp16 on other
    GPUs, fp32 on the CPU). ``training=None`` resolves ``auto`` for the machine (no config at hand)."""
    if options.compute_dtype != "auto":
        return options.compute_dtype
    precision = training.precision if training is not None else "auto"
    if precision in _PRECISION_DTYPES:
        return _PRECISION_DTYPES[precision]
    import torch

    use_cpu = bool(training is not None and training.use_cpu)
    if use_cpu or not torch.cuda.is_available():
        return "float32"
    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def installation_problem() -> str | None:
    """Why bitsandbytes cannot be used (not installed, too old), or ``None``; imports nothing heavy."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return f"the bitsandbytes package is not installed: {PIP_INSTALL}"
    try:
        version = importlib.metadata.version("bitsandbytes")
    except importlib.metadata.PackageNotFoundError:  # importable from a source tree: trust it
        return None
    if _version_tuple(version) < _version_tuple(MIN_BITSANDBYTES):
        return (
            f"bitsandbytes {version} is too old (this plugin needs >= {MIN_BITSANDBYTES}, whose CPU backend runs "
            f"4-bit and 8-bit layers): {PIP_INSTALL}"
        )
    return None


class _QuietBitsAndBytes(logging.Filter):
    """Drops bitsandbytes log noise: the CPU backend's advice to ``pip install kernels`` (an optional package
    that downloads a kernel from the Hugging Face Hub; the built-in CPU path works without it) and the repeats of
    LLM.int8's "inputs will be cast ... to float16" warning, which it logs on every forward of every layer (the
    first one of each dtype is kept)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "kernels-community" in message:
            return False
        if message.startswith("MatMul8bitLt: inputs will be cast"):
            if message in self.seen:
                return False
            self.seen.add(message)
        return True


def quiet_bitsandbytes_logs() -> None:
    """Install :class:`_QuietBitsAndBytes` on bitsandbytes' loggers (idempotent; imports nothing)."""
    for name in ("bitsandbytes.backends.cpu.ops", "bitsandbytes.autograd._functions"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietBitsAndBytes) for f in logger.filters):
            logger.addFilter(_QuietBitsAndBytes())


def _import_bitsandbytes() -> Any:
    problem = installation_problem()
    if problem:
        raise FtCoreError(f"quantization.method: {problem}")
    quiet_bitsandbytes_logs()
    try:
        import bitsandbytes
    except Exception as exc:  # a broken native library raises RuntimeError/OSError, not only ImportError
        raise FtCoreError(
            f"quantization.method: bitsandbytes is installed but cannot be imported ({type(exc).__name__}: {exc}); "
            f"run `python -m bitsandbytes` for a diagnosis, or reinstall it: {PIP_INSTALL}"
        ) from exc
    return bitsandbytes


def _default_skips(model_config: Any) -> list[str]:
    """What transformers leaves unquantized by default (output head, tied weights, last module).

    transformers drops these defaults as soon as ``llm_int8_skip_modules`` is given, which would quantize the
    output head; they are computed here on an empty (meta-device) model so that ``skip_modules`` only adds.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.quantizers.base import get_keys_to_not_convert

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(model_config)
        return sorted(get_keys_to_not_convert(model))
    except Exception:  # remote-code models, other transformers releases: the common head name
        return ["lm_head"]


def _linear_layers(model: Any) -> tuple[list[Any], list[Any]]:
    bnb = _import_bitsandbytes()

    modules = list(model.modules())
    four = [m for m in modules if isinstance(m, bnb.nn.Linear4bit)]
    eight = [m for m in modules if isinstance(m, bnb.nn.Linear8bitLt)]
    return four, eight


def _matches(name: str, pattern: str) -> bool:
    """transformers' rule for ``llm_int8_skip_modules``: a suffix, or a regex from the start up to a module
    boundary."""
    if name.endswith(pattern):
        return True
    try:
        return re.match(rf"(?:{pattern})(?:(?<=\.)|(?=\.|$))", name) is not None
    except re.error:
        return False


def _check_skip_modules(model: Any, skip_modules: list[str]) -> None:
    names = [name for name, _ in model.named_modules() if name]
    unmatched = [p for p in skip_modules if not any(_matches(name, p) for name in names)]
    if unmatched:
        from torch import nn

        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise FtCoreError(
            f"quantization.skip_modules: {', '.join(repr(p) for p in unmatched)} matches no module of "
            f"{type(model).__name__}; linear modules are: {', '.join(linear)}"
        )


def _upcast_norms(model: Any) -> int:
    """Cast the weights of every normalisation layer (LayerNorm, RMSNorm, ...) to fp32; returns how many."""
    import torch
    from torch import nn

    count = 0
    for module in model.modules():
        if isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or "norm" in type(module).__name__.lower():
            for parameter in module.parameters(recurse=False):
                if parameter.dtype in (torch.float16, torch.bfloat16):
                    parameter.data = parameter.data.float()
                    count += 1
    return count


class BitsAndBytesQuantizer(Quantizer[BitsAndBytesOptions]):
    """bitsandbytes through transformers' ``BitsAndBytesConfig``; trains through an adapter only (QLoRA)."""

    options_schema: ClassVar[type] = BitsAndBytesOptions
    description: ClassVar[str] = "bitsandbytes 4-bit NF4/FP4 (QLoRA) or 8-bit LLM.int8 weights; CPU and CUDA"
    trains_with_adapters_only: ClassVar[bool] = True

    def validate(self, options: BitsAndBytesOptions, config: RunConfig) -> list[str]:
        """bitsandbytes must be installed and recent enough; its CPU backend serves CPU runs, so no GPU is
        required (checked without importing it)."""
        problem = installation_problem()
        return [f"quantization.method: {problem}"] if problem else []

    def load_kwargs(self, options: BitsAndBytesOptions, model_config: Any) -> dict[str, Any]:
        """``quantization_config=BitsAndBytesConfig(...)`` for ``from_pretrained``.

        ``compute_dtype: auto`` is resolved for this machine here (the run's precision is not known yet);
        :meth:`prepare` sets the dtype that the run's ``training.precision`` asks for.
        """
        _import_bitsandbytes()
        import torch
        from transformers import BitsAndBytesConfig

        skips = [*_default_skips(model_config), *options.skip_modules] if options.skip_modules else None
        if options.bits == 8:
            config = BitsAndBytesConfig(
                load_in_8bit=True,
                llm_int8_threshold=6.0
                if options.llm_int8_threshold is None
                else float(options.llm_int8_threshold),
                llm_int8_skip_modules=skips,
            )
        else:
            config = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type=options.quant_type,
                bnb_4bit_use_double_quant=bool(options.double_quant),
                bnb_4bit_compute_dtype=getattr(torch, resolve_compute_dtype(options, None)),
                bnb_4bit_quant_storage=options.quant_storage or "uint8",
                llm_int8_skip_modules=skips,
            )
        return {"quantization_config": config}

    def prepare(self, model: Any, options: BitsAndBytesOptions, run: RunContext) -> Any:
        """Ready the quantized model for adapter training: freeze the base weights, set the 4-bit compute dtype
        of the run's precision, keep 4-bit weights in their trainable layout on CPUs and apply ``upcast``.

        Activation checkpointing is left to core: it applies the run's ``training.gradient_checkpointing`` plan
        (``auto``, ``true``, ``false`` or ``offload``) after ``prepare``, with input gradients enabled."""
        import torch

        training = run.config.training
        four, eight = _linear_layers(model)
        if not four and not eight:
            raise FtCoreError(
                f"quantization.method: no layer of {type(model).__name__} was quantized by bitsandbytes (was the "
                "model loaded with this quantizer's load_kwargs, or is it already quantized another way?)"
            )
        _check_skip_modules(model, options.skip_module_names)
        dtype, fast = None, 0
        if options.bits == 4:
            dtype = resolve_compute_dtype(options, training)
            for module in four:
                module.compute_dtype = getattr(torch, dtype)
                # On AVX512-BF16 CPUs an eval-mode, no-grad forward (the trainer's evaluation) repacks the weights
                # in place into an inference-only layout whose kernel has no backward: training after the first
                # evaluation would silently stop propagating gradients through the base layers.
                if hasattr(module, "support_avx512bf16_for_cpu"):
                    module.support_avx512bf16_for_cpu = False
            if options.fast_matmul:
                from ft_core_bitsandbytes.fast_matmul import enable_fast_matmul

                fast = enable_fast_matmul(four)
            quantizer = getattr(model, "hf_quantizer", None)
            if quantizer is not None:
                quantizer.quantization_config.bnb_4bit_compute_dtype = getattr(torch, dtype)
        if options.upcast == "all":
            from peft import prepare_model_for_kbit_training

            # checkpointing: core's plan, applied after prepare
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        else:
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            if options.upcast == "norms":
                _upcast_norms(model)
        layers = f"{len(four)} Linear4bit" if options.bits == 4 else f"{len(eight)} Linear8bitLt"
        layers += f" layers ({fast} through ft-core's fast 4-bit matmul)" if fast else " layers"
        detail = (
            f"{options.quant_type}{' + double quant' if options.double_quant else ''}, compute {dtype}"
            if options.bits == 4
            else f"LLM.int8, threshold {options.llm_int8_threshold}"
        )
        if run.process.is_main_process:
            logger.info(f"bitsandbytes: {options.bits}-bit ({detail}): {layers}")
        return model
