"""ft-core on the reference throughput workload (../shared/bench): SFT, Llama-3-8B shape, 30 steps.

Usage (on the GPU machine, after ``make_synth.py WORK 8b 2000``):
    python tests/gpu/bench_sft.py WORK MODE [steps]      MODE: lora | lora_liger | qlora4
Prints ``RESULT {...}``: effective tokens/s (non-padding tokens trained / train runtime) and peak memory, counted
as LLaMA-Factory's ``lf_bench.py`` counts them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml

MODES = {
    "lora": {},
    "lora_liger": {"patches": ["liger"]},
    "qlora4": {
        "quantization": {"method": "bitsandbytes", "bits": 4, "quant_type": "nf4", "double_quant": True}
    },
}


def config_for(work: Path, mode: str, steps: int) -> dict:
    """The run config of ``mode``: the workload's rows, LoRA r16/alpha 32 on all linear layers, bf16."""
    return {
        "model": {"name_or_path": str(work / "model")},
        "template": {"name": "default", "check": "off"},
        "data": {
            "dataset": ["synth"],
            "dataset_dir": str(work / "data"),
            "cutoff_len": 2048,
            "cache_dir": str(work / "ft-cache"),
        },
        "adapter": {"method": "lora", "rank": 16, "alpha": 32, "targets": "all"},
        "training": {
            "output_dir": str(work / f"ft-out-{mode}"),
            "overwrite_output_dir": True,
            "max_steps": steps,
            "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 2,
            "learning_rate": 1e-4,
            "lr_scheduler_type": "constant",
            "logging_steps": 5,
            "save_steps": 100000,
            "precision": "bf16",
            "gradient_checkpointing": True,
            "dataloader_num_workers": 2,
            "plot_loss": False,
        },
        **MODES[mode],
    }


def main() -> None:
    work, mode = Path(sys.argv[1]), sys.argv[2]
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    import torch

    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.runner import load_and_validate, run_training

    path = work / f"ft-bench-{mode}.yaml"
    path.write_text(yaml.safe_dump(config_for(work, mode, steps)))
    plugins = load_plugins(strict=True)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.time()
    run_dir = run_training(load_and_validate(str(path), [], plugins), plugins)
    results = json.loads((run_dir / "train_results.json").read_text())
    print(
        "RESULT",
        json.dumps(
            {
                "system": "ft-core",
                "mode": mode,
                "steps": steps,
                "wall_s": round(time.time() - started, 1),
                "peak_alloc_GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
                "peak_reserved_GiB": round(torch.cuda.max_memory_reserved() / 2**30, 2) if cuda else None,
                **results,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
