#!/usr/bin/env bash
# ft-core and LLaMA-Factory 0.9.5 on the reference workload, in one call on a GPU machine (see docs/performance.md).
#   bash tests/gpu/bench_vs_llamafactory.sh LF_WHEELS EXTRA_WHEELS SHARED_BENCH "MODES" [steps]
# LF_WHEELS: shared/bench/fetch_lf_wheels.sh's folder; EXTRA_WHEELS: liger-kernel (and anything else ft-core needs
# beyond the machine's torch/transformers/peft). Writes RESULT lines; prints a table at the end.
set -uo pipefail
LF_WHEELS=$1; EXTRA=$2; BENCH=$3; MODES=$4; STEPS=${5:-30}
WORK=/tmp/ftbench
PIP="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade"
$PIP --target /tmp/lf "$LF_WHEELS"/*.whl "$EXTRA"/*.whl || exit 1
$PIP --target /tmp/ftdeps "$LF_WHEELS"/{datasets,dill,multiprocess,omegaconf,bitsandbytes}-*.whl "$EXTRA"/*.whl || exit 1
$PIP --no-build-isolation --target /tmp/ftcore ./core ./plugins/ft-core-{sft,lora,adamw,llama,templates-generic,liger,bitsandbytes} >/dev/null || exit 1
[ -d $WORK/model ] || PYTHONPATH=/tmp/lf DISABLE_VERSION_CHECK=1 python3 "$BENCH/make_synth.py" $WORK 8b 2000 || exit 1
export PYTHONUNBUFFERED=1 FT_CORE_CACHE=$WORK/cache
LOGS=${OUT:-/tmp}  # full logs (the device tool brings $OUT back)
for mode in $MODES; do
  echo "=== ft-core $mode"
  PYTHONPATH=/tmp/ftcore:/tmp/ftdeps timeout 170 python3 tests/gpu/bench_sft.py $WORK "$mode" "$STEPS" 2>&1 | tee "$LOGS/ft-$mode.log" | grep -E "RESULT|Error|error" | tail -5
  echo "=== LLaMA-Factory $mode"
  PYTHONPATH=/tmp/lf DISABLE_VERSION_CHECK=1 timeout 170 python3 tests/gpu/lf_bench_modes.py "$BENCH/lf_bench.py" $WORK "$mode" "$STEPS" 2>&1 | tee "$LOGS/lf-$mode.log" | grep -E "RESULT|Error|error" | tail -5
done
