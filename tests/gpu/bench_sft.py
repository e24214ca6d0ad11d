"""ft-core on the reference throughput workload (../shared/bench): LoRA SFT, Llama-3-8B shape.

Usage (on the GPU machine, after ``make_synth.py WORK 8b 2000``):
    python tests/gpu/bench_sft.py WORK [steps]
Prints ``RESULT {...}`` with effective tokens/s (non-padding tokens trained / train runtime) and peak memory,
counted the same way as LLaMA-Factory's ``lf_bench.py`` in the same folder.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml


def main() -> None:
    work = Path(sys.argv[1])
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    import torch

    from ft_core.run.runner import load_and_validate, run_training

    config = {
        "model": {"name_or_path": str(work / "model")},
        "template": "default",
        "data": {
            "dataset": ["synth"],
            "dataset_dir": str(work / "data"),
            "cutoff_len": 2048,
            "cache_dir": str(work / "ft-cache"),
            "overwrite_cache": True,
        },
        "adapter": {"method": "lora", "rank": 16, "alpha": 32, "targets": "all"},
        "training": {
            "output_dir": str(work / "ft-out"),
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
    }
    path = work / "ft-bench.yaml"
    path.write_text(yaml.safe_dump(config))
    torch.cuda.reset_peak_memory_stats()
    started = time.time()
    validated, plugins = load_and_validate(str(path), [])
    run_dir = run_training(validated, plugins)
    results = json.loads((run_dir / "train_results.json").read_text())
    print(
        "RESULT",
        json.dumps(
            {
                "system": "ft-core",
                "steps": steps,
                "wall_s": round(time.time() - started, 1),
                "peak_alloc_GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                "peak_reserved_GiB": round(torch.cuda.max_memory_reserved() / 2**30, 2),
                **results,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
