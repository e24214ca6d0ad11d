"""The ``deepspeed`` options, the rules a run under DeepSpeed ZeRO must pass, and the DeepSpeed config they give
``TrainingArguments(deepspeed=...)``."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Literal

from ft_core.api import OptionsError, RunConfig

#: Optimizers ZeRO can partition (a torch optimizer over flat parameter groups); GaLore, APOLLO, BAdam and Muon
#: need whole weight matrices or switch the trained blocks as they go.
PARTITIONABLE_OPTIMIZERS = ("adamw",)


@dataclass(frozen=True)
class DeepSpeedOptions:
    """Options of the ``deepspeed`` config section (used under ``distributed.strategy: deepspeed``)."""

    #: ZeRO stage: ``2`` partitions optimizer state and gradients; ``3`` also the parameters (models that do not
    #: fit on one GPU).
    stage: Literal[2, 3] = 3
    #: Keep the optimizer state in CPU memory; the optimizer step runs on the CPU (GPU runs).
    offload_optimizer: bool = False
    #: Keep the parameters in CPU memory between uses (stage 3, GPU runs).
    offload_params: bool = False
    #: Overlap gradient reduction with the backward pass (more memory for buckets, usually faster).
    overlap_comm: bool = False
    #: ZeRO communication bucket size in elements; ``null``: chosen from the model's hidden size by transformers
    #: (stage 3) or 5e8 (stage 2).
    bucket_size: int | None = None

    def __post_init__(self) -> None:
        if self.stage not in (2, 3):
            raise OptionsError(f"stage: expected 2 or 3, got {self.stage!r}")
        if self.offload_params and self.stage != 3:
            raise OptionsError(
                "offload_params: parameter offload needs stage: 3 (stage 2 keeps whole parameters)"
            )
        if self.bucket_size is not None and self.bucket_size < 1:
            raise OptionsError(f"bucket_size: a positive number of elements, got {self.bucket_size}")


def _offload() -> dict[str, Any]:
    return {"device": "cpu", "pin_memory": True}


def deepspeed_config(options: DeepSpeedOptions) -> dict[str, Any]:
    """The DeepSpeed config (``auto`` values are filled in by transformers from the training arguments: batch
    sizes, accumulation, clipping, precision), as LLaMA-Factory's ``ds_z2_config.json`` / ``ds_z3_config.json``."""
    bucket: int | str = options.bucket_size if options.bucket_size is not None else "auto"
    zero: dict[str, Any] = {
        "stage": options.stage,
        "overlap_comm": options.overlap_comm,
        "contiguous_gradients": True,
        "reduce_bucket_size": bucket,
    }
    if options.stage == 2:
        fixed = options.bucket_size or 500_000_000  # transformers fills no "auto" here (LLaMA-Factory's 5e8)
        zero.update(
            reduce_bucket_size=fixed,
            allgather_partitions=True,
            allgather_bucket_size=fixed,
            reduce_scatter=True,
            round_robin_gradients=True,
        )
    else:
        zero.update(
            sub_group_size=1_000_000_000,
            stage3_prefetch_bucket_size=bucket,
            stage3_param_persistence_threshold="auto",
            stage3_max_live_parameters=1_000_000_000,
            stage3_max_reuse_distance=1_000_000_000,
            stage3_gather_16bit_weights_on_model_save=True,  # the artefact: whole weights, a plain HF folder
        )
    if options.offload_optimizer:
        zero["offload_optimizer"] = _offload()
    if options.offload_params:
        zero["offload_param"] = _offload()
    config: dict[str, Any] = {
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16},
        "zero_optimization": zero,
    }
    if options.offload_optimizer:
        # ft-core's optimizer plugin builds a torch AdamW; DeepSpeed would otherwise insist on its own CPU Adam
        config["zero_force_ds_cpu_optimizer"] = False
    return config


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def problems(config: RunConfig, options: DeepSpeedOptions) -> list[str]:
    """Why this run cannot train under DeepSpeed ZeRO (each with what to do instead); empty when it can."""
    found = []
    if importlib.util.find_spec("deepspeed") is None:
        found.append(
            "distributed.strategy: deepspeed needs the deepspeed package: pip install 'ft-core-deepspeed[deepspeed]' "
            "(on a CUDA GPU machine; it builds from source)"
        )
    quantization = config.one("quantization")
    if quantization is not None and options.stage == 3:
        found.append(
            f"quantization: {quantization.name}: ZeRO-3 cannot partition quantized weights; use deepspeed.stage: 2 "
            "for QLoRA, or distributed.strategy: ddp"
        )
    optimizer = config.optimizer
    if optimizer.name.rsplit(":", 1)[-1] not in PARTITIONABLE_OPTIMIZERS:
        found.append(
            f"optimizer: {optimizer.name} needs whole weight matrices and cannot run on ZeRO's partitioned "
            "parameters; use optimizer: adamw, or distributed.strategy: ddp"
        )
    elif getattr(optimizer.options, "bits", 32) != 32 or getattr(optimizer.options, "paged", False):
        found.append(
            "optimizer: 8-bit / paged AdamW (bitsandbytes) does not run under DeepSpeed ZeRO; use bits: 32 and "
            "paged: false"
        )
    gpu = _cuda_available()
    if config.training.use_cpu is False and not gpu:
        found.append(
            "training.use_cpu: false asks for CUDA GPUs and none is visible; DeepSpeed GPU runs need a CUDA GPU "
            "(remove use_cpu to train on the CPU, e.g. to try a config)"
        )
    elif (options.offload_optimizer or options.offload_params) and (config.training.use_cpu or not gpu):
        found.append(
            "deepspeed.offload_optimizer / offload_params: this run trains on the CPU, where everything is in CPU "
            "memory already; offloading needs a CUDA GPU (set both to false here)"
        )
    return found
