"""When a run may use Unsloth (validation), and loading the policy model with ``FastLanguageModel``.

Nothing here imports torch, transformers or unsloth at module level; :func:`import_unsloth` imports Unsloth when a
run that selected it is validated (Unsloth patches transformers when it is imported, so the earlier the better).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ft_core.api import FtCoreError, RunConfig, RunContext, TrainingSection

logger = logging.getLogger(__name__)

#: The config section this plugin adds.
SECTION = "unsloth"
#: The adapter method this plugin registers.
ADAPTER = "unsloth_lora"
PIP_INSTALL = "pip install unsloth unsloth_zoo"

#: ``config.model_type`` values Unsloth trains: its hand-written fast paths (llama, mistral, qwen2, qwen3,
#: qwen3_moe, gemma, gemma2) and families its generic ``FastModel`` path compiles (gemma3, phi3, granite, cohere).
SUPPORTED_MODEL_TYPES = frozenset(
    {
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "qwen3_moe",
        "gemma",
        "gemma2",
        "gemma3",
        "gemma3_text",
        "phi3",
        "granite",
        "cohere",
    }
)
#: Quantizer names of bitsandbytes (``bnb`` is LLaMA-Factory's spelling).
BITSANDBYTES = ("bitsandbytes", "bnb")
#: Model patches that replace the same kernels Unsloth replaces.
CONFLICTING_PATCHES = ("liger",)
#: Attribute of a model loaded by this plugin holding its :class:`LoadSettings` (read by the adapter).
SETTINGS_ATTRIBUTE = "_ft_core_unsloth"


@dataclass(frozen=True)
class LoadSettings:
    """What the ``unsloth_lora`` adapter needs to know about the run (``AdapterMethod.apply`` gets no run)."""

    #: ``use_gradient_checkpointing`` for ``FastLanguageModel.get_peft_model``: ``"unsloth"``, True or False.
    gradient_checkpointing: str | bool
    #: ``training.seed``.
    random_state: int
    #: ``data.cutoff_len``.
    max_seq_length: int


def enabled(config: RunConfig) -> bool:
    """Whether the config selects Unsloth (``unsloth.enabled: true``)."""
    try:
        return bool(config.section(SECTION).enabled)
    except KeyError:  # the section is not registered (plugin loaded without its registration)
        return False


def installed() -> bool:
    """Whether the ``unsloth`` package can be found (imports nothing)."""
    try:
        return importlib.util.find_spec("unsloth") is not None
    except (ValueError, ImportError):  # a module in sys.modules without a spec
        return "unsloth" in sys.modules


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU."""
    import torch

    return bool(torch.cuda.is_available())


def trains_on_cpu(training: TrainingSection) -> bool:
    """True when the run trains on the CPU (``training.use_cpu``, or no GPU present), as the engine decides."""
    if training.use_cpu is not None:
        return bool(training.use_cpu)
    return not cuda_available()


def model_type_of(name_or_path: str) -> str | None:
    """``model_type`` from ``config.json`` of a local model folder, or ``None`` (not a folder, no config)."""
    config = Path(name_or_path) / "config.json"
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def unsupported_model_type(model_type: str | None) -> str | None:
    """The problem with ``model_type`` for Unsloth, or ``None`` (supported, or unknown until the model loads)."""
    if model_type is None or model_type in SUPPORTED_MODEL_TYPES:
        return None
    return (
        f"model_type {model_type!r} is not supported by Unsloth (supported: "
        f"{', '.join(sorted(SUPPORTED_MODEL_TYPES))}); set unsloth.enabled: false to train it with ft-core's own "
        "loader"
    )


def _quantization_problems(config: RunConfig) -> list[str]:
    quantizer = config.one("quantization")
    if quantizer is None:
        return []
    if quantizer.name not in BITSANDBYTES:
        return [
            f"quantization.method: {quantizer.name} cannot be combined with unsloth.enabled (Unsloth quantizes with "
            "bitsandbytes 4-bit only); use quantization.method: bitsandbytes with bits: 4, or unsloth.enabled: false"
        ]
    problems = []
    if getattr(quantizer.options, "bits", 4) != 4:
        problems.append(
            "quantization.bits: Unsloth trains 4-bit bitsandbytes models (QLoRA) only; set bits: 4, or "
            "unsloth.enabled: false for 8-bit"
        )
    if getattr(quantizer.options, "upcast", "none") != "none":
        problems.append(
            "quantization.upcast: Unsloth sets the dtypes of a 4-bit model's unquantized weights itself; remove "
            "upcast (or set unsloth.enabled: false)"
        )
    return problems


def problems(config: RunConfig, options: Any) -> list[str]:
    """Why ``config`` cannot run with Unsloth (``options``: the ``unsloth`` section, enabled), cheapest first;
    empty when it can."""
    if not installed():
        return [
            f"unsloth.enabled: the unsloth package is not installed; install it on a CUDA machine (`{PIP_INSTALL}`), "
            "or set unsloth.enabled: false"
        ]
    found: list[str] = []
    adapter = config.adapter.name
    if adapter == "lora":
        found.append(
            "adapter.method: lora is applied by PEFT, which bypasses Unsloth's fused LoRA kernels; with "
            f"unsloth.enabled use adapter.method: {ADAPTER} (same options)"
        )
    elif adapter != ADAPTER:
        found.append(
            f"adapter.method: {adapter} cannot be combined with unsloth.enabled (ft-core trains LoRA adapters "
            f"through Unsloth: adapter.method: {ADAPTER}); set unsloth.enabled: false for {adapter}"
        )
    found += _quantization_problems(config)
    for patch in config.many("patches"):
        if patch.name in CONFLICTING_PATCHES:
            found.append(
                f"patches: {patch.name} and Unsloth both replace the model's kernels (RMSNorm, RoPE, MLP, "
                f"cross-entropy); remove {patch.name} from patches, or set unsloth.enabled: false"
            )
    # ft-core-liger's automatic patch (liger.enabled: auto) steps aside by itself for a model Unsloth loaded.
    on_cpu = trains_on_cpu(config.training)
    model_type = model_type_of(config.model.name_or_path)
    problem = unsupported_model_type(model_type)
    if problem:
        found.append(f"model.name_or_path: {problem}")
    if on_cpu and not options.allow_cpu:
        why = "training.use_cpu is true" if config.training.use_cpu else "no CUDA GPU is available"
        found.append(
            f"unsloth.enabled: Unsloth's kernels need a CUDA GPU, but this run trains on the CPU ({why}); set "
            "unsloth.enabled: false (or unsloth.allow_cpu: true for Unsloth's slow CPU fallback)"
        )
    return found


def import_unsloth() -> Any:
    """Import ``unsloth`` (patching transformers, TRL and PEFT as Unsloth does) and return the module; a failure
    is an :class:`FtCoreError` naming the cause."""
    try:
        return importlib.import_module("unsloth")
    except Exception as exc:  # unsloth raises NotImplementedError / RuntimeError for unusable setups too
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise FtCoreError(
            f"unsloth.enabled: unsloth is installed but cannot be imported ({type(exc).__name__}: {detail}); "
            f"check `python -c 'import unsloth'` on this machine, reinstall it (`{PIP_INSTALL}`), or set "
            "unsloth.enabled: false"
        ) from exc


def checkpointing_mode(training: TrainingSection, options: Any) -> str | bool:
    """``use_gradient_checkpointing`` for Unsloth: off when ``training.gradient_checkpointing`` is ``false``,
    else ``"unsloth"`` (offloaded) or ``True`` (standard) as ``unsloth.gradient_checkpointing`` says."""
    if training.gradient_checkpointing is False:
        return False
    return "unsloth" if options.gradient_checkpointing == "unsloth" else True


def from_pretrained_kwargs(
    run: RunContext, model_folder: str, model_config: Any, load_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Keyword arguments of ``FastLanguageModel.from_pretrained`` for the run's policy model.

    The model is loaded from ``model_folder`` (the engine resolved embedded names and GGUF files to it); the dtype,
    the bitsandbytes ``quantization_config`` and the device placement come from the engine's ``load_kwargs``;
    ``max_seq_length`` is ``data.cutoff_len``.
    """
    config = run.config
    options = config.section(SECTION)
    quantization_config = load_kwargs.get("quantization_config")
    four_bit = bool(getattr(quantization_config, "load_in_4bit", False))
    on_cpu = trains_on_cpu(config.training)
    device_map = load_kwargs.get("device_map") or ({"": "cpu"} if on_cpu else {"": run.process.local_rank})
    kwargs: dict[str, Any] = {
        "model_name": str(model_folder),
        "max_seq_length": config.data.cutoff_len,
        "dtype": load_kwargs.get("dtype"),
        "load_in_4bit": four_bit,
        "load_in_8bit": False,
        "full_finetuning": False,
        "device_map": device_map,
        "trust_remote_code": bool(load_kwargs.get("trust_remote_code", config.model.trust_remote_code)),
        "use_gradient_checkpointing": checkpointing_mode(config.training, options),
        "random_state": config.training.seed,
        # the run's tokenizer is already loaded (and its chat template checked): leave Unsloth's copy as it is
        "fix_tokenizer": False,
    }
    if four_bit:
        kwargs["quantization_config"] = quantization_config  # nf4/fp4, double quant, storage, skip modules
    if getattr(config.model, "rope_scaling", None) and getattr(model_config, "rope_scaling", None):
        kwargs["rope_scaling"] = model_config.rope_scaling
    return kwargs


def load(
    run: RunContext, role: str, model_config: Any, load_kwargs: dict[str, Any], model_folder: str, head: str
) -> Any | None:
    """The ``ft_load_model`` implementation: the policy model (a causal LM) from ``model_folder`` through
    ``FastLanguageModel`` when the run selects Unsloth, else ``None`` (the engine loads it)."""
    if role != "policy" or not enabled(run.config):
        return None
    if head != "causal_lm":
        raise FtCoreError(
            f"unsloth.enabled: Unsloth loads causal LMs, but the {run.config.stage.name} stage's policy model has a "
            f"{head} head; set unsloth.enabled: false (and adapter.method: lora) to train it"
        )
    problem = unsupported_model_type(getattr(model_config, "model_type", None))
    if problem:
        raise FtCoreError(f"model.name_or_path: {problem}")
    unsloth = import_unsloth()
    kwargs = from_pretrained_kwargs(run, model_folder, model_config, load_kwargs)
    loaded = unsloth.FastLanguageModel.from_pretrained(**kwargs)
    model = loaded[0] if isinstance(loaded, tuple) else loaded
    setattr(
        model,
        SETTINGS_ATTRIBUTE,
        LoadSettings(
            gradient_checkpointing=kwargs["use_gradient_checkpointing"],
            random_state=kwargs["random_state"],
            max_seq_length=kwargs["max_seq_length"],
        ),
    )
    if run.process.is_main_process:
        version = getattr(unsloth, "__version__", "?")
        logger.info(
            f"unsloth {version}: {model_config.model_type} loaded with FastLanguageModel (dtype {kwargs['dtype']}, "
            f"{'4-bit' if kwargs['load_in_4bit'] else '16-bit'}, max_seq_length {kwargs['max_seq_length']}, "
            f"checkpointing {kwargs['use_gradient_checkpointing']})"
        )
    return model
