"""Single long rows for the long-context measurement (``--long N`` of ``bench_sft.py`` and ``lf_bench_modes.py``):
a data set of rows whose answers alone run past ``N`` tokens (the workload's answers, one after another; its
word-level tokenizer makes one token of each word), so that with ``cutoff_len: N`` every trained sequence is
exactly ``N`` tokens long in both systems. Both read the same ``dataset_info.json`` entry.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Rows in a long data set: two optimizer steps of one row, and spares.
ROWS = 4


def add_long_dataset(work: Path, length: int) -> str:
    """Register ``synth_long_<length>`` in the workload (once) and return its name."""
    data = work / "data"
    info_path = data / "dataset_info.json"
    info = json.loads(info_path.read_text())
    name = f"synth_long_{length}"
    if name in info:
        return name
    rows = json.loads((data / info["synth"]["file_name"]).read_text())
    words = " ".join(row["output"] for row in rows).split()
    if len(words) < ROWS * length:
        words = words * (ROWS * length // max(len(words), 1) + 1)
    long_rows = [
        {
            "instruction": rows[index]["instruction"],
            "input": "",
            "output": " ".join(words[index * length : (index + 1) * length]),
        }
        for index in range(ROWS)
    ]
    (data / f"{name}.json").write_text(json.dumps(long_rows))
    info[name] = {"file_name": f"{name}.json"}
    info_path.write_text(json.dumps(info))
    return name


def long_options(work: Path, length: int) -> dict[str, object]:
    """LLaMA-Factory's arguments for a long-context run of ``length`` tokens: one row per step, no accumulation."""
    return {
        "dataset": add_long_dataset(work, length),
        "cutoff_len": length,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 1,
        "output_dir": str(work / "out_lf_long"),
    }
