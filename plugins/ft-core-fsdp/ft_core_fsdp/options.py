"""The ``fsdp`` options, the rules a run under FSDP2 must pass, and the ``fsdp_config`` they give the trainer."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Literal

from ft_core.api import OptionsError, RunConfig

#: Optimizers whose state FSDP2 can shard parameter by parameter (GaLore, APOLLO, BAdam and Muon need whole
#: weight matrices or switch the trained blocks as they go).
SHARDABLE_OPTIMIZERS = ("adamw",)


@dataclass(frozen=True)
class FsdpOptions:
    """Options of the ``fsdp`` config section (used under ``distributed.strategy: fsdp``)."""

    #: Free each layer's gathered weights after its forward pass (ZeRO-3-like, least memory); ``false`` keeps
    #: them until the backward pass (ZeRO-2-like: one all-gather less per layer, more memory).
    reshard_after_forward: bool = True
    #: Keep the sharded parameters, gradients and optimizer state in CPU memory (GPU runs; slower, least GPU
    #: memory); the optimizer step runs on the CPU.
    cpu_offload: bool = False
    #: Checkpoint format: ``sharded`` (each process writes its shard: fast, resumes with the same process
    #: count) or ``full`` (gathered weights in one Hugging Face file per checkpoint). The finished run's ``model/``
    #: is always a plain Hugging Face folder.
    checkpoints: Literal["sharded", "full"] = "sharded"
    #: Module classes sharded as one unit (e.g. ``[LlamaDecoderLayer]``); empty: the model's own
    #: ``_no_split_modules`` (its decoder layer).
    wrap: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.checkpoints not in ("sharded", "full"):
            raise OptionsError(f"checkpoints: expected sharded or full, got {self.checkpoints!r}")
        bad = [name for name in self.wrap if not name.isidentifier()]
        if bad:
            raise OptionsError(f"wrap: class names expected (e.g. LlamaDecoderLayer), got {', '.join(bad)}")


def fsdp_config(options: FsdpOptions) -> dict[str, Any]:
    """``TrainingArguments.fsdp_config`` for FSDP2 (``fully_shard`` through accelerate) with these options."""
    config: dict[str, Any] = {
        "version": 2,
        "reshard_after_forward": options.reshard_after_forward,
        "cpu_offload": options.cpu_offload,
        "state_dict_type": "SHARDED_STATE_DICT" if options.checkpoints == "sharded" else "FULL_STATE_DICT",
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
    }
    if options.wrap:
        config["transformer_layer_cls_to_wrap"] = list(options.wrap)
    return config


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def problems(config: RunConfig, options: FsdpOptions) -> list[str]:
    """Why this run cannot train under FSDP2 (each with what to do instead); empty when it can."""
    found = []
    quantization = config.one("quantization")
    if quantization is not None:
        found.append(
            f"quantization: {quantization.name}: FSDP2 does not shard quantized (bitsandbytes / torchao) weights "
            "in ft-core; for QLoRA on several GPUs use distributed.strategy: ddp, or drop the quantization"
        )
    optimizer = config.optimizer
    if optimizer.name.rsplit(":", 1)[-1] not in SHARDABLE_OPTIMIZERS:
        found.append(
            f"optimizer: {optimizer.name} needs whole weight matrices and cannot run on FSDP2's sharded "
            "parameters; use optimizer: adamw, or distributed.strategy: ddp"
        )
    elif getattr(optimizer.options, "bits", 32) != 32 or getattr(optimizer.options, "paged", False):
        found.append(
            "optimizer: 8-bit / paged AdamW (bitsandbytes) does not run on FSDP2's sharded (DTensor) parameters; "
            "use bits: 32 and paged: false"
        )
    if config.training.use_cpu or not _cuda_available():
        found.append(
            "distributed.strategy: fsdp needs a CUDA GPU per process: accelerate runs FSDP only on GPU process "
            "groups (on the CPU it would silently train with DDP instead); use distributed.strategy: ddp or "
            "deepspeed on the CPU"
        )
    return found
