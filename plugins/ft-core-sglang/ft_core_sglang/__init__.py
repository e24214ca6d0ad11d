"""ft-core plugin: the ``sglang`` inference engine, serving the base model with a run's LoRA adapter on SGLang.

Import-light: SGLang, torch and transformers are imported when the engine loads a model, not at registration. SGLang
is not a dependency of this distribution (its wheels pull CUDA): install it with ``pip install "sglang[all]"`` (or this
distribution's ``[backend]`` extra); the engine needs a CUDA GPU.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.api import ChatTarget, FtCoreError, InferenceEngine, OptionsError, Register, hookimpl

__all__ = ["SglangEngine", "SglangEngineOptions", "check_backend"]

#: What to install for this engine.
INSTALL_HINT = "pip install \"sglang[all]\" (or pip install 'ft-core-sglang[backend]')"


@dataclass(frozen=True)
class SglangEngineOptions:
    """Options of the ``sglang`` engine (passed to SGLang's server arguments, named as the ``vllm`` engine's)."""

    #: Share of each GPU's memory for weights and the KV cache (SGLang's ``mem_fraction_static``; ``None``: its
    #: default).
    gpu_memory_utilization: float | None = None
    #: Longest prompt plus reply in tokens (SGLang's ``context_length``; ``None``: the model's own limit).
    max_model_len: int | None = None
    #: GPUs to shard the model over (SGLang's ``tp_size``).
    tensor_parallel_size: int = 1
    #: Weights' dtype: ``auto``, ``bfloat16``, ``float16`` or ``float32``.
    dtype: str = "auto"
    #: Largest LoRA rank to serve (``None``: SGLang reads it from the adapter).
    max_lora_rank: int | None = None
    #: Most requests running at once (SGLang's ``max_running_requests``; ``None``: its default).
    max_running_requests: int | None = None
    #: Seed of SGLang's sampler (SGLang's ``random_seed``).
    seed: int = 0

    def __post_init__(self) -> None:
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise OptionsError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise OptionsError(f"max_model_len must be >= 1, got {self.max_model_len}")
        if self.tensor_parallel_size < 1:
            raise OptionsError(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if self.dtype not in ("auto", "bfloat16", "float16", "float32", "half", "float"):
            raise OptionsError(f"dtype must be auto, bfloat16, float16 or float32, got {self.dtype!r}")
        if self.max_lora_rank is not None and self.max_lora_rank < 1:
            raise OptionsError(f"max_lora_rank must be >= 1, got {self.max_lora_rank}")
        if self.max_running_requests is not None and self.max_running_requests < 1:
            raise OptionsError(f"max_running_requests must be >= 1, got {self.max_running_requests}")


def _installed(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def cuda_device_count() -> int:
    """CUDA GPUs torch sees (0 without torch or CUDA)."""
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def check_backend(options: SglangEngineOptions) -> None:
    """Fail with a clear error, before loading anything heavy, when SGLang or the GPUs it needs are missing."""
    if not _installed("sglang"):
        raise FtCoreError(
            f"the sglang engine needs SGLang, which is not installed, and a CUDA GPU: {INSTALL_HINT}; "
            "or serve with --engine hf (CPU or GPU)"
        )
    gpus = cuda_device_count()
    if gpus < options.tensor_parallel_size:
        found = "no CUDA GPU is present" if gpus == 0 else f"only {gpus} CUDA GPU(s) are present"
        raise FtCoreError(
            f"the sglang engine needs a CUDA GPU ({options.tensor_parallel_size} for tensor_parallel_size="
            f"{options.tensor_parallel_size}), but {found}; serve with --engine hf on this machine"
        )


class SglangEngine(InferenceEngine[SglangEngineOptions]):
    """Generate with SGLang (CUDA GPUs): batched generation, streaming, a run's LoRA adapter on its base model."""

    options_schema: ClassVar[type] = SglangEngineOptions
    description: ClassVar[str] = "SGLang (CUDA GPU): base model + LoRA adapter, batched generation, streaming"

    def load(self, target: ChatTarget, options: SglangEngineOptions) -> Any:
        from ft_core_sglang.model import SglangChatModel

        options = options if isinstance(options, SglangEngineOptions) else SglangEngineOptions()
        check_backend(options)
        return SglangChatModel(target, options)


@hookimpl
def ft_register_inference_engines(register: Register[InferenceEngine[Any]]) -> None:
    register("sglang", SglangEngine())
