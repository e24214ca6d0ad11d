#!/usr/bin/env bash
# ft-core under DDP, FSDP2 and DeepSpeed ZeRO-3 on the reference workload (../shared/bench), on NPROC GPUs of one
# machine, beside LLaMA-Factory 0.9.5's DDP and ZeRO-3 in the same call. Tokens/s (all GPUs together) and peak
# memory per GPU. Run it on a 2-GPU machine (see docs/distributed.md):
#   bash tools/bench/bench_distributed.sh LF_WHEELS EXTRA_WHEELS SHARED_BENCH "MODES" [steps]
# LF_WHEELS: shared/bench/fetch_lf_wheels.sh's folder; EXTRA_WHEELS: what ft-core needs beyond the machine's torch /
# transformers / peft (liger-kernel, ...); DS_WHEELS (default .whl-ds): a deepspeed wheel built for the machine's
# torch/CUDA plus hjson, py-cpuinfo, ninja, msgpack, einops (`pip wheel --no-deps deepspeed ...`; without it the
# zero3 modes and LLaMA-Factory's ZeRO-3 are skipped); SHARED_BENCH: make_synth.py and lf_bench.py.
# MODES: tools/bench/bench_distributed.py's modes: ddp_lora fsdp_lora zero3_lora (LoRA r16, LLaMA-Factory's
# settings) fsdp_full zero3_full fsdp_full_offload zero3_full_offload (full fine-tuning of the Llama-3-8B shape).
# Each *_lora mode is followed (once per call) by LLaMA-Factory's matching run: ddp_lora -> LF DDP LoRA,
# zero3_lora -> LF ZeRO-3 LoRA; zero3_full -> LF ZeRO-3 full. SKIP_LF=1: ft-core only.
# Environment: NPROC (default 2), RUN_TIMEOUT (seconds per run, default 420), WORK (/tmp/ftbench).
# Logs: $OUT/ft-dist-MODE.log, $OUT/lf-dist-MODE.log; summary in $OUT/summary-distributed.md.
set -uo pipefail
LF_WHEELS=$1; EXTRA=$2; BENCH=$3; MODES=$4; STEPS=${5:-30}
NPROC=${NPROC:-2}; WORK=${WORK:-/tmp/ftbench}; RUN_TIMEOUT=${RUN_TIMEOUT:-420}; DS_WHEELS=${DS_WHEELS:-.whl-ds}
SKIP_LF=${SKIP_LF:-0}; LOGS=${OUT:-/tmp/ftbench-logs}; mkdir -p "$LOGS"
PIP="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade"
$PIP --target /tmp/lf "$LF_WHEELS"/*.whl "$EXTRA"/*.whl || exit 1
$PIP --target /tmp/ftdeps "$LF_WHEELS"/{datasets,dill,multiprocess,omegaconf}-*.whl "$EXTRA"/*.whl || exit 1
HAVE_DS=0
if ls "$DS_WHEELS"/deepspeed-*.whl >/dev/null 2>&1; then
  $PIP --target /tmp/ds "$DS_WHEELS"/*.whl && HAVE_DS=1
fi
$PIP --no-build-isolation --target /tmp/ftcore ./core \
  ./plugins/ft-core-{sft,lora,full,adamw,llama,templates-generic,liger,fsdp,deepspeed} >/dev/null || exit 1
[ -f $WORK/model/config.json ] || PYTHONPATH=/tmp/lf DISABLE_VERSION_CHECK=1 python3 "$BENCH/make_synth.py" $WORK 8b 2000 || exit 1
export PYTHONUNBUFFERED=1 FT_CORE_CACHE=$WORK/cache HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
TORCHRUN="python3 -m torch.distributed.run --standalone --nproc_per_node $NPROC"

status() { case $1 in 0) echo ok ;; 124|137) echo "TIMEOUT after ${RUN_TIMEOUT}s" ;; *) echo "FAILED (exit $1)" ;; esac; }
ft_run() {  # MODE
  local log="$LOGS/ft-dist-$1.log"
  PYTHONPATH=/tmp/ftcore:/tmp/ftdeps:/tmp/ds timeout $RUN_TIMEOUT $TORCHRUN tools/bench/bench_distributed.py $WORK "$1" "$STEPS" >"$log" 2>&1
  echo "=== ft-core $1 on $NPROC GPUs: $(status $?)"
  grep -E "^RESULT|^RANK|Error" "$log" | tail -$((NPROC + 2)) | cut -c1-700
}
# lf_bench.py with LLaMA-Factory's own `deepspeed` argument added from LF_DEEPSPEED (ZeRO-3)
cat >$WORK/lf_dist.py <<'PY'
import os, runpy, sys
import llamafactory.train.tuner as tuner
original = tuner.run_exp
def run_exp(args=None, callbacks=None):
    if os.environ.get("LF_DEEPSPEED"):
        args = {**args, "deepspeed": os.environ["LF_DEEPSPEED"]}
    return original(args, callbacks)
tuner.run_exp = run_exp
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
PY
lf_run() {  # NAME MODE [DEEPSPEED_JSON]: lf_bench.py under torchrun
  local log="$LOGS/lf-dist-$1.log"
  LF_DEEPSPEED=${3:-} PYTHONPATH=/tmp/lf:/tmp/ds DISABLE_VERSION_CHECK=1 timeout $RUN_TIMEOUT \
    $TORCHRUN $WORK/lf_dist.py "$BENCH/lf_bench.py" $WORK "$2" "$STEPS" >"$log" 2>&1
  echo "=== LLaMA-Factory $1 on $NPROC GPUs: $(status $?)"
  grep -E "^RESULT|Error" "$log" | tail -$((NPROC + 1)) | cut -c1-700
}
# LLaMA-Factory's examples/deepspeed/ds_z3_config.json, as ft-core-deepspeed generates it (the same keys)
PYTHONPATH=/tmp/ftcore python3 -c "
import json; from ft_core_deepspeed import DeepSpeedOptions, deepspeed_config
json.dump(deepspeed_config(DeepSpeedOptions(stage=3)), open('$WORK/ds_z3_config.json', 'w'), indent=2)"

declare -A lf_done=()
for mode in $MODES; do
  case $mode in zero3_*) [ $HAVE_DS = 1 ] || { echo "=== $mode: skipped (no deepspeed wheel in $DS_WHEELS)"; continue; } ;; esac
  ft_run "$mode"
  [ "$SKIP_LF" = 1 ] && continue
  case $mode in
    ddp_lora) lf="ddp_lora"; lf_mode=lora; ds="" ;;
    zero3_lora) lf="zero3_lora"; lf_mode=lora; ds=$WORK/ds_z3_config.json ;;
    zero3_full) lf="zero3_full"; lf_mode=full; ds=$WORK/ds_z3_config.json ;;
    *) continue ;;
  esac
  [ -n "${lf_done[$lf]:-}" ] && continue
  lf_done[$lf]=1
  lf_run "$lf" "$lf_mode" "$ds"
done 2>&1 | tee "$LOGS/summary-distributed.md"
