"""Time ft-core's data preparation (read, convert, render + tokenize with labels, write the cache) of the benchmark
rows, as ``shared/bench/lf_prep_bench.py`` times LLaMA-Factory's.

Usage: python tools/bench/prep_ftcore.py TOKENIZER_DIR ROWS WORKERS
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prep_rows import write_rows


def main() -> None:
    tokenizer_dir, rows, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.data.prepare import prepare_data
    from ft_core.engine.run.plan import build_plan, make_encoder
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
    plan, _ = build_plan(run_config, plugins, prepare=False)  # tokenizer, template and family, no data
    encoder = make_encoder(run_config, plugins, plan.tokenizer, plan.template, plan.family, plan.model_path)
    started = time.perf_counter()
    prepared = prepare_data(run_config, plugins, plan.tokenizer, plan.template, encoder, lambda _: None)
    seconds = time.perf_counter() - started
    split = prepared.train
    print(
        f"RESULT ft-core preprocessing {rows} rows, {workers} workers: {seconds:.1f}s = {rows / seconds:.0f} rows/s "
        f"({split.rows} rows, {split.tokens / split.rows:.0f} tokens/row)"
    )


if __name__ == "__main__":
    main()
