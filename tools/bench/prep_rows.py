"""The synthetic alpaca rows of the data-preparation benchmark (the generator of ``shared/bench/lf_prep_bench.py``:
same seed, same rows, so both systems preprocess identical data)."""

from __future__ import annotations

import json
import random
from pathlib import Path


def write_rows(folder: Path, count: int) -> Path:
    """Write ``count`` rows as ``a.json`` plus a ``dataset_info.json`` naming it ``a``; returns ``folder``."""
    rng = random.Random(0)
    words = [f"word{i}" for i in range(20000)]

    def text(k: int) -> str:
        return " ".join(rng.choice(words) for _ in range(k))

    rows = [
        {
            "instruction": text(rng.randint(8, 60)),
            "input": text(rng.randint(0, 30)),
            "output": text(int(min(900, max(8, rng.lognormvariate(4.5, 0.8))))),
        }
        for _ in range(count)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.json").write_text(json.dumps(rows), encoding="utf-8")
    (folder / "dataset_info.json").write_text(json.dumps({"a": {"file_name": "a.json"}}), encoding="utf-8")
    return folder
