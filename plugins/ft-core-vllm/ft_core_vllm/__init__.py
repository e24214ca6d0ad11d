"""ft-core plugin: the ``vllm`` inference engine, serving the base model with a run's LoRA adapter on vLLM.

Import-light: vLLM, torch and transformers are imported when the engine loads a model, not at registration. vLLM
is not a dependency of this distribution (its wheels pull CUDA): install it with ``pip install vllm`` (or this
distribution's ``[backend]`` extra); the engine needs a CUDA GPU.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

from ft_core.api import ChatTarget, FtCoreError, InferenceEngine, OptionsError, Register, hookimpl

__all__ = ["VllmEngine", "VllmEngineOptions", "check_backend"]

#: What to install for this engine.
INSTALL_HINT = "pip install vllm (or pip install 'ft-core-vllm[backend]')"


@dataclass(frozen=True)
class VllmEngineOptions:
    """Options of the ``vllm`` engine (passed to vLLM's engine arguments)."""

    #: Share of each GPU's memory vLLM may take (weights, activations and the KV cache).
    gpu_memory_utilization: float = 0.9
    #: Longest prompt plus reply in tokens (``None``: the model's own limit).
    max_model_len: int | None = None
    #: GPUs to shard the model over.
    tensor_parallel_size: int = 1
    #: Weights' dtype: ``auto``, ``bfloat16``, ``float16`` or ``float32``.
    dtype: str = "auto"
    #: Largest LoRA rank to serve (``None``: the adapter's rank, rounded up to one vLLM supports).
    max_lora_rank: int | None = None
    #: Most sequences in one batch step (``None``: vLLM's default).
    max_num_seqs: int | None = None
    #: Run without CUDA graphs (slower; starts faster and takes less memory).
    enforce_eager: bool = False
    #: Seed of vLLM's sampler (a request's own ``seed`` wins).
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.gpu_memory_utilization <= 1:
            raise OptionsError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise OptionsError(f"max_model_len must be >= 1, got {self.max_model_len}")
        if self.tensor_parallel_size < 1:
            raise OptionsError(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if self.dtype not in ("auto", "bfloat16", "float16", "float32", "half", "float"):
            raise OptionsError(f"dtype must be auto, bfloat16, float16 or float32, got {self.dtype!r}")
        if self.max_lora_rank is not None and self.max_lora_rank < 1:
            raise OptionsError(f"max_lora_rank must be >= 1, got {self.max_lora_rank}")
        if self.max_num_seqs is not None and self.max_num_seqs < 1:
            raise OptionsError(f"max_num_seqs must be >= 1, got {self.max_num_seqs}")


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


def check_backend(options: VllmEngineOptions) -> None:
    """Fail with a clear error, before loading anything heavy, when vLLM or the GPUs it needs are missing."""
    if not _installed("vllm"):
        raise FtCoreError(
            f"the vllm engine needs vLLM, which is not installed, and a CUDA GPU: {INSTALL_HINT}; "
            "or serve with --engine hf (CPU or GPU)"
        )
    gpus = cuda_device_count()
    if gpus < options.tensor_parallel_size:
        found = "no CUDA GPU is present" if gpus == 0 else f"only {gpus} CUDA GPU(s) are present"
        raise FtCoreError(
            f"the vllm engine needs a CUDA GPU ({options.tensor_parallel_size} for tensor_parallel_size="
            f"{options.tensor_parallel_size}), but {found}; serve with --engine hf on this machine"
        )


class VllmEngine(InferenceEngine[VllmEngineOptions]):
    """Generate with vLLM (CUDA GPUs): continuous batching, streaming, a run's LoRA adapter on its base model."""

    options_schema: ClassVar[type] = VllmEngineOptions
    description: ClassVar[str] = "vLLM (CUDA GPU): base model + LoRA adapter, continuous batching, streaming"

    def load(self, target: ChatTarget, options: VllmEngineOptions) -> Any:
        from ft_core_vllm.model import VllmChatModel

        options = options if isinstance(options, VllmEngineOptions) else VllmEngineOptions()
        check_backend(options)
        return VllmChatModel(target, options)


@hookimpl
def ft_register_inference_engines(register: Register[InferenceEngine[Any]]) -> None:
    register("vllm", VllmEngine())
