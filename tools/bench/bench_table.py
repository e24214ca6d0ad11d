"""The benchmark's summary: every ``RESULT`` line of ``bench_sft.py`` (ft-core) and ``lf_bench_modes.py``
(LLaMA-Factory) in the given logs, as one markdown table, each ft-core mode with its ratios to the LLaMA-Factory
mode it compares with (``bench_sft.MODES[mode].baseline``).

Usage: python tools/bench/bench_table.py LOG_OR_DIR... [--json FILE]

Tokens/s is each system's count of the non-padding tokens it trained over its train runtime (LLaMA-Factory's: the
attention masks ``lf_bench_modes.py`` adds up; its own estimate only when that is missing). The ratio columns are
ft-core / LLaMA-Factory: above 1 is faster for tokens/s, below 1 is less memory for peak allocated. Wall is the
run's whole time after the imports (loading, data preparation, compilation, training and saving), each system's
``wall_s``; the harness also prints each process's time, imports included.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: ft-core mode -> the LLaMA-Factory mode it is compared with (kept in step with bench_sft.MODES; plain data so
#: that this script runs without ft-core installed).
BASELINES = {
    "lora": "lora",
    "lora_liger": "lora_liger",
    "qlora4": "qlora4",
    "lora_fast": "lora",
    "qlora4_fast": "qlora4",
    "lora_fast_ckpt": "lora",
    "lora_fast_offload": "lora",
    "lora_budget": "lora",
    "lora_fast_ckpt_split": "lora",
    "lora_fp8": "lora",
    "lora_fp8_ckpt": "lora",
    "lora_fp8fb_ckpt": "lora",
    "qlora4_fast_ckpt": "qlora4",
    "lora_unsloth": "lora_unsloth",
    "qlora4_unsloth": "qlora4_unsloth",
    "lora_unsloth_packed": "lora_unsloth",
    "dpo_lora": "dpo",
    "dpo_lora_packed": "dpo",
    "kto_lora": "kto",
    "rm_lora": "rm",
    "orpo_lora": "orpo",
    "simpo_lora": "simpo",
    "ppo_lora": "ppo",
    "grpo_lora": None,
    "mem_qlora8": "qlora4",
    "mem_hqq4": "qlora4",
    "mem_hqq2": "qlora4",
    "mem_freeze": "freeze",
    "mem_galore": "galore",
    "mem_badam": "badam",
    "mem_apollo": "apollo",
    "mem_full": "lora",
}


def log_files(paths: list[Path]) -> list[Path]:
    """The files, and the ``*.log`` files of the folders, among ``paths``."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.log")) if path.is_dir() else [path]
    return files


def without_result(paths: list[Path]) -> list[Path]:
    """Logs holding no ``RESULT`` line of a system (a run that failed or timed out)."""
    return [file for file in log_files(paths) if not read_results([file], profiled=True)]


def read_results(paths: list[Path], profiled: bool = False) -> list[dict[str, Any]]:
    """Every ``RESULT {json}`` line with a ``system`` key in the files (folders: their ``*.log`` files); runs
    with ``--profile`` only when ``profiled``."""
    results = []
    for file in log_files(paths):
        for line in file.read_text(errors="replace").splitlines():
            if not line.startswith("RESULT "):
                continue
            try:
                record = json.loads(line[len("RESULT ") :])
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("system") and (profiled or not record.get("profiled")):
                results.append(record)
    return results


def tokens_per_sec(record: dict[str, Any]) -> float | None:
    """The system's own count of trained tokens per second (see the module docstring)."""
    return record.get("measured_tokens_per_sec") or record.get("effective_tokens_per_sec")


def _number(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{suffix}"


def _ratio(numerator: Any, denominator: Any) -> str:
    return f"{numerator / denominator:.2f}x" if numerator and denominator else "—"


def _mode(record: dict[str, Any]) -> str:
    """The mode, with the row length of a long-context run."""
    length = record.get("long_context")
    return f"{record['mode']} (one row of {length:,} tokens)" if length else record["mode"]


def rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows: ft-core runs in order, each followed by its LLaMA-Factory baseline (once)."""
    # the last run of each mode (and row length, for the long-context runs)
    lf = {(r["mode"], r.get("long_context")): r for r in results if r["system"] == "LLaMA-Factory"}
    table, shown = [], set()
    for record in results:
        if record["system"] != "ft-core":
            continue
        mode = record.get("baseline") or BASELINES.get(record["mode"], record["mode"])
        baseline = lf.get((mode, record.get("long_context")))
        table.append({**record, "_vs": baseline})
        if baseline is not None and id(baseline) not in shown:
            shown.add(id(baseline))
            table.append({**baseline, "_vs": None})
    table += [{**r, "_vs": None} for r in lf.values() if id(r) not in shown]
    return table


def markdown(results: list[dict[str, Any]]) -> str:
    header = (
        "| system | mode | wall | train runtime | tokens/s | peak alloc | MFU | data wait | train loss "
        "| tokens/s vs LF | peak alloc vs LF |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    lines = [header]
    for row in rows(results):
        vs = row["_vs"]
        wait = row.get("data_wait_s")
        fraction = row.get("data_wait_fraction")
        wait_text = (
            "—" if wait is None else f"{wait:.2f} s" + (f" ({fraction:.1%})" if fraction is not None else "")
        )
        lines.append(
            f"| {row['system']} | {_mode(row)} | {_number(row.get('wall_s'), 1, ' s')} "
            f"| {_number(row.get('train_runtime'), 1, ' s')} "
            f"| {_number(tokens_per_sec(row))} | {_number(row.get('peak_alloc_GiB'), 2, ' GiB')} "
            f"| {_number(row['mfu'] * 100 if row.get('mfu') is not None else None, 1, '%')} | {wait_text} "
            f"| {_number(row.get('train_loss'), 5)} "
            f"| {_ratio(tokens_per_sec(row), tokens_per_sec(vs)) if vs else '—'} "
            f"| {_ratio(row.get('peak_alloc_GiB'), vs.get('peak_alloc_GiB')) if vs else '—'} |"
        )
    notes = {r.get("mfu_formula") for r in results if r.get("mfu_formula")}
    for note in sorted(notes):
        lines.append(f"\nMFU: {note}; peak {results[0].get('peak_tflops') or '?'} TFLOP/s dense bf16.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", type=Path, nargs="+")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as a JSON list")
    args = parser.parse_args(argv)
    results = read_results(args.paths)
    if not results:
        print("no RESULT lines found", file=sys.stderr)
        for file in without_result(args.paths):
            print(f"No result in {file.name} (the run failed or timed out; see the log).", file=sys.stderr)
        return 1
    print(markdown(results))
    for file in without_result(args.paths):
        print(f"\nNo result in {file.name} (the run failed or timed out; see the log).")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
