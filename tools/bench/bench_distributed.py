"""ft-core under a distributed strategy on the reference workload (../shared/bench), one process per GPU.

Usage (under a launcher; ``bench_distributed.sh`` runs it):
    torchrun --nproc_per_node 2 tools/bench/bench_distributed.py WORK MODE [steps]
    torchrun --nproc_per_node 2 tools/bench/bench_distributed.py --tiny WORK MODE [steps]   # CPU smoke run

Modes (``--list``): ``ddp_lora``, ``fsdp_lora``, ``zero3_lora`` (LoRA r16 with LLaMA-Factory's settings, as
``bench_sft.py lora``), ``fsdp_full``, ``zero3_full`` (full fine-tuning), ``fsdp_full_offload``,
``zero3_full_offload`` (CPU offload of the sharded state). Per-device batch 4 x accumulation 2 on each GPU, so the
global batch grows with the GPU count; tokens/s are for all GPUs together.

Every rank prints ``RANK {...}`` with its peak GPU memory; rank 0 then prints ``RESULT {...}`` with the run's
``train_results.json`` (effective tokens/s over all ranks) and the peaks of every rank it can read (the ranks write
them to WORK/peaks-MODE/).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sft import LF_EQUIVALENT, _merge, _supported, base_config, build_tiny_workload

LORA: dict[str, Any] = {}
FULL: dict[str, Any] = {"adapter": {"method": "full"}, "training": {"learning_rate": 1e-5}}
MODES: dict[str, dict[str, Any]] = {
    "ddp_lora": {**LORA, "distributed": {"strategy": "ddp"}},
    "fsdp_lora": {**LORA, "distributed": {"strategy": "fsdp"}},
    "zero3_lora": {**LORA, "distributed": {"strategy": "deepspeed"}, "deepspeed": {"stage": 3}},
    "fsdp_full": {**FULL, "distributed": {"strategy": "fsdp"}},
    "zero3_full": {**FULL, "distributed": {"strategy": "deepspeed"}, "deepspeed": {"stage": 3}},
    "fsdp_full_offload": {**FULL, "distributed": {"strategy": "fsdp"}, "fsdp": {"cpu_offload": True}},
    "zero3_full_offload": {
        **FULL,
        "distributed": {"strategy": "deepspeed"},
        "deepspeed": {"stage": 3, "offload_optimizer": True, "offload_params": True},
    },
}


def config_for(work: Path, mode: str, steps: int, tiny: bool) -> dict[str, Any]:
    """The run config of ``mode``: the reference workload, LLaMA-Factory's settings, the strategy."""
    config = _merge(_merge(base_config(work, mode, steps, tiny), LF_EQUIVALENT), MODES[mode])
    config["training"]["output_dir"] = str(work / f"ft-dist-{mode}")
    if "adapter" in MODES[mode]:  # full fine-tuning: no LoRA options
        config["adapter"] = dict(MODES[mode]["adapter"])
    if tiny:
        config.pop("liger", None)
        if config["distributed"]["strategy"] == "deepspeed":
            config["deepspeed"] = {
                **config["deepspeed"],
                "offload_optimizer": False,
                "offload_params": False,
            }
    return config


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, nargs="?")
    parser.add_argument("mode", nargs="?", choices=sorted(MODES))
    parser.add_argument("steps", nargs="?", type=int, default=30)
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny CPU workload (gloo / DeepSpeed's CPU backend)"
    )
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list or args.mode is None:
        print("\n".join(MODES))
        return None
    import torch
    import yaml

    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.runner import load_and_validate, run_training

    rank = int(os.environ.get("RANK", "0"))
    work, mode = args.work, args.mode
    work.mkdir(parents=True, exist_ok=True)
    if args.tiny and rank == 0:
        build_tiny_workload(work)
    plugins = load_plugins(strict=not args.tiny)
    config = _supported(config_for(work, mode, args.steps, args.tiny), plugins)
    path = work / f"ft-dist-{mode}-rank{rank}.yaml"  # one file per rank: no rank reads a half-written one
    path.write_text(yaml.safe_dump(config))
    if args.tiny:
        import torch.distributed as dist

        if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            dist.init_process_group("gloo")
            dist.barrier()  # rank 0 built the workload
    cuda = torch.cuda.is_available() and not args.tiny
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.reset_peak_memory_stats()
    started = time.time()
    run_dir = run_training(load_and_validate(str(path), [], plugins), plugins)
    peaks = {
        "rank": rank,
        "peak_alloc_GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "peak_reserved_GiB": round(torch.cuda.max_memory_reserved() / 2**30, 2) if cuda else None,
    }
    folder = work / f"peaks-{mode}"
    folder.mkdir(exist_ok=True)
    (folder / f"rank{rank}.json").write_text(json.dumps(peaks))
    print("RANK", json.dumps(peaks), flush=True)
    if rank != 0:
        return None
    time.sleep(2)  # the other ranks write their peaks as they finish
    ranks = [json.loads(p.read_text()) for p in sorted(folder.glob("rank*.json"))]
    results = json.loads((run_dir / "train_results.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    result = {
        "system": "ft-core",
        "mode": mode,
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "steps": args.steps,
        "wall_s": round(time.time() - started, 1),
        "strategy": manifest.get("decisions", {}).get("strategy"),
        "peak_alloc_GiB_per_rank": [r["peak_alloc_GiB"] for r in ranks],
        "peak_reserved_GiB_per_rank": [r["peak_reserved_GiB"] for r in ranks],
        **results,
    }
    print("RESULT", json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
