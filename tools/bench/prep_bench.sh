#!/usr/bin/env bash
# Data preparation, ft-core vs LLaMA-Factory 0.9.5, on this machine: the same rows (shared/bench's generator), the
# same tokenizer (the embedded SmolLM2-135M-Instruct) and the same ChatML template. Run from the repository root
# after .ci/setup:   bash tools/bench/prep_bench.sh [ROWS] [SHARED_BENCH_DIR]
# LLaMA-Factory goes into .venv-lf the first time (a few minutes of pip).
set -euo pipefail
ROWS=${1:-10000}
BENCH=${2:-../shared/bench}
if [ ! -x .venv-lf/bin/python ]; then
  python3 -m venv .venv-lf
  .venv-lf/bin/pip install -q torch==2.13.0
  .venv-lf/bin/pip install -q llamafactory==0.9.5 transformers==5.6.0 tokenizers==0.22.2 datasets==4.0.0 \
    trl==0.24.0 peft==0.18.1
fi
TOKENIZER=$(.venv/bin/python -c "from ft_core.engine.models.embedded import resolve_model_path as r; print(r('smollm2-135m-instruct'))")
for workers in 1 2; do
  .venv-lf/bin/python "$BENCH/lf_prep_bench.py" "$TOKENIZER" "$ROWS" "$workers" 2>/dev/null | grep RESULT
  .venv/bin/python tools/bench/prep_ftcore.py "$TOKENIZER" "$ROWS" "$workers" 2>/dev/null | grep RESULT
done
