"""Time ft-core's data preparation (read, convert, render + tokenize with labels, write the cache) of the benchmark
rows, as ``shared/bench/lf_prep_bench.py`` times LLaMA-Factory's, and the limit it is measured against: the model's
fast tokenizer batch-encoding the same rows, rendered with the same template, on as many cores as workers.

Usage: python tools/bench/prep_ftcore.py TOKENIZER_DIR ROWS WORKERS [--tokenizer]

Without ``--tokenizer`` it prints ft-core's figure, then the tokenizer's (measured in a fresh process, as ft-core's
is); with it, only the tokenizer's: ``tokenizer(texts, add_special_tokens=False)`` over all rendered rows, with the
Rust tokenizer's threads limited to WORKERS (one: its serial path), called three times; the first call and the best
are reported, and the best is the reference.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prep_rows import write_rows


def setup(tokenizer_dir: str, rows: int, workers: int) -> tuple[Any, Any, Any]:
    """Write the rows and the config; return ``(run_config, plugins, plan)`` (tokenizer and template, no data)."""
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.run.plan import build_plan
    from ft_core.engine.run.runner import load_and_validate

    work = Path(tempfile.mkdtemp(prefix="ft-prep-"))
    write_rows(work / "data", rows)
    config = work / "prep.yaml"
    config.write_text(
        f"model: {{name_or_path: {tokenizer_dir}}}\n"
        "template: {name: chatml, check: off}\n"
        f"data: {{dataset: a, dataset_dir: {work / 'data'}, cutoff_len: 2048, overwrite_cache: true, "
        f"cache_dir: {work / 'cache'}, preprocessing_workers: {workers}}}\n"
        f"training: {{output_dir: {work / 'run'}}}\n"
    )
    plugins = load_plugins()
    run_config = load_and_validate(str(config), [], plugins)
    plan, _ = build_plan(run_config, plugins, prepare=False)
    return run_config, plugins, plan


def ft_core(tokenizer_dir: str, rows: int, workers: int) -> None:
    """Print ft-core's preparation rate."""
    import datasets  # noqa: F401 - imported before the clock starts, as lf_prep_bench.py's imports do

    from ft_core.engine.data.prepare import prepare_data
    from ft_core.engine.run.plan import make_encoder

    run_config, plugins, plan = setup(tokenizer_dir, rows, workers)
    encoder = make_encoder(run_config, plugins, plan.tokenizer, plan.template, plan.family, plan.model_path)
    started = time.perf_counter()
    prepared = prepare_data(run_config, plugins, plan.tokenizer, plan.template, encoder, lambda _: None)
    seconds = time.perf_counter() - started
    split = prepared.train
    print(
        f"RESULT ft-core preprocessing {rows} rows, {workers} workers: {seconds:.1f}s = {rows / seconds:.0f} rows/s "
        f"({split.rows} rows, {split.tokens / split.rows:.0f} tokens/row)"
    )


def tokenizer_alone(tokenizer_dir: str, rows: int, workers: int) -> None:
    """Print the tokenizer's batch-encoding rate of the rows as ft-core renders them, on ``workers`` cores."""
    from ft_core.engine.data.loader import load_samples
    from ft_core.engine.templates.render import render, with_system

    run_config, plugins, plan = setup(tokenizer_dir, rows, workers)
    data, seed = run_config.data, run_config.training.seed
    samples = load_samples(data.dataset, data, plugins, "conversation", seed, stage="sft", mixed=True)
    jinja, system = plan.template.jinja, run_config.template.system
    texts = [render(plan.tokenizer, jinja, with_system(sample.messages, system)) for sample in samples]
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        encoded = plan.tokenizer(texts, add_special_tokens=False)
        rates.append(rows / (time.perf_counter() - started))
    tokens = sum(map(len, encoded["input_ids"])) / rows
    print(
        f"RESULT tokenizer batch-encoding {rows} rows, {workers} cores: {max(rates):.0f} rows/s best of 3 "
        f"(first call {rates[0]:.0f}; {tokens:.0f} tokens/row)"
    )


def main() -> None:
    tokenizer_dir, rows, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if "--tokenizer" in sys.argv[4:]:
        tokenizer_alone(tokenizer_dir, rows, workers)
        return
    ft_core(tokenizer_dir, rows, workers)
    sys.stdout.flush()
    subprocess.run([sys.executable, __file__, *sys.argv[1:4], "--tokenizer"], check=True)


if __name__ == "__main__":
    if "--tokenizer" in sys.argv[4:]:  # before tokenizers loads: its thread pool reads these once
        os.environ["RAYON_NUM_THREADS"] = sys.argv[3]
        os.environ["TOKENIZERS_PARALLELISM"] = "true" if int(sys.argv[3]) > 1 else "false"
    main()
