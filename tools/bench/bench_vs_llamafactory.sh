#!/usr/bin/env bash
# ft-core and LLaMA-Factory 0.9.5 on the reference workload, in one call on a GPU machine (see docs/performance.md).
#   bash tools/bench/bench_vs_llamafactory.sh LF_WHEELS EXTRA_WHEELS SHARED_BENCH "MODES" [steps]
# LF_WHEELS: shared/bench/fetch_lf_wheels.sh's folder; EXTRA_WHEELS: liger-kernel (and anything else ft-core needs
# beyond the machine's torch/transformers/peft); SHARED_BENCH: make_synth.py and lf_bench.py.
# MODES: bench_sft.py's modes (`python3 tools/bench/bench_sft.py --list`): lora lora_liger qlora4 (LLaMA-Factory's
# settings), lora_fast qlora4_fast (ft-core's defaults), lora_unsloth qlora4_unsloth (Unsloth, against
# LLaMA-Factory's own use_unsloth, which runs with the same unsloth wheels but its own trl). Each ft-core mode runs,
# then the LLaMA-Factory mode it is compared with (each LLaMA-Factory mode once per call).
# Environment: UNSLOTH_WHEELS (default .whl-unsloth; the unsloth modes are skipped when it holds no unsloth wheel),
# TORCHAO_WHEELS (default .whl-torchao: the torchao wheel for the FP8 modes lora_fp8 / lora_fp8_ckpt),
# TRL_WHEELS (default .whl-trl: trl 1.x for the stage modes), LONG_START (the long-context measure instead: each
# mode and its baseline train one row of LONG_START tokens per step, doubled until a run fails or passes LONG_MAX,
# default 262144; long_rows.py), RUN_TIMEOUT (seconds per run, default 300), WARMUP
# (default 1: a 2-step run first compiles the kernels; WARMUP_MODES names the modes warmed up), PROFILE_MODES (ft-core modes re-run with --profile after the measured
# runs; top-20 operators by CUDA and by CPU time), PROFILE_STEPS (default 3), PROFILE_START (optimizer steps before
# the profiled ones, default 3; 0 profiles the first steps), SKIP_LF=1 (ft-core only), SKIP_FT (ft-core modes not
# run, their LLaMA-Factory baselines still run: measured in an earlier call; also in the long-context measure),
# SKIP_LF_MODES (LLaMA-Factory modes not run: ppo, which refuses the trl its own release requires), WORK (/tmp/ftbench).
# Full logs: $OUT/ft-MODE.log, $OUT/lf-MODE.log, $OUT/ft-MODE-profile.log; the summary table is printed at the
# end and written to $OUT/summary.md (results.json: every RESULT). One call must end within the device's
# 10 minutes: about 1.5 min per run after the first build of the workload, so split long mode lists over calls.
set -uo pipefail
LF_WHEELS=$1; EXTRA=$2; BENCH=$3; MODES=$4; STEPS=${5:-30}
WORK=${WORK:-/tmp/ftbench}; RUN_TIMEOUT=${RUN_TIMEOUT:-300}; UNSLOTH_WHEELS=${UNSLOTH_WHEELS:-.whl-unsloth}
TORCHAO_WHEELS=${TORCHAO_WHEELS:-.whl-torchao}; TRL_WHEELS=${TRL_WHEELS:-.whl-trl}
PROFILE_MODES=${PROFILE_MODES:-}; PROFILE_STEPS=${PROFILE_STEPS:-3}; PROFILE_START=${PROFILE_START:-3}; SKIP_LF=${SKIP_LF:-0}
SKIP_FT=${SKIP_FT:-}; SKIP_LF_MODES=${SKIP_LF_MODES:-}
LOGS=${OUT:-/tmp/ftbench-logs}; mkdir -p "$LOGS"
PIP="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade"
# COMMON_WHEELS (optional): datasets, dill, multiprocess, omegaconf and bitsandbytes, which both systems use, kept
# out of LF_WHEELS so that one copy travels; LLaMA-Factory gets only liger-kernel, galore-torch, badam and apollo-torch of EXTRA (its lora_liger and
# optimizer modes).
SHARED=${COMMON_WHEELS:-$LF_WHEELS}
$PIP --target /tmp/lf "$LF_WHEELS"/*.whl ${COMMON_WHEELS:+"$COMMON_WHEELS"/*.whl} \
  $(ls "$EXTRA"/{liger_kernel,galore_torch,badam,apollo_torch}-*.whl 2>/dev/null) || exit 1
$PIP --target /tmp/ftdeps "$SHARED"/{datasets,dill,multiprocess,omegaconf,bitsandbytes}-*.whl "$EXTRA"/*.whl || exit 1
# torchao (the FP8 modes) goes to ft-core only: LLaMA-Factory's peft 0.18 breaks on a newer torchao.
if ls "$TORCHAO_WHEELS"/torchao-*.whl >/dev/null 2>&1; then $PIP --target /tmp/ftdeps "$TORCHAO_WHEELS"/*.whl || exit 1; fi
# TRL 1.x (the stage modes) goes to ft-core only: LLaMA-Factory pins trl 0.24.
if ls "$TRL_WHEELS"/trl-*.whl >/dev/null 2>&1; then $PIP --target /tmp/ftdeps "$TRL_WHEELS"/*.whl || exit 1; fi
$PIP --no-build-isolation --target /tmp/ftcore ./core \
  ./plugins/ft-core-{sft,dpo,lora,adamw,llama,templates-generic,liger,bitsandbytes,unsloth,torchao} \
  ./plugins/ft-core-{hqq,freeze,full,galore,badam,apollo,kto,rm,orpo,cpo,ppo,grpo} >/dev/null || exit 1
HAVE_UNSLOTH=0
if ls "$UNSLOTH_WHEELS"/unsloth-*.whl >/dev/null 2>&1; then
  # installed once for both systems; Unsloth's trl apart, in front for ft-core's runs only (LLaMA-Factory's
  # use_unsloth keeps its own pinned trl)
  $PIP --target /tmp/unsloth $(ls "$UNSLOTH_WHEELS"/*.whl | grep -v /trl-) && HAVE_UNSLOTH=1
  if ls "$UNSLOTH_WHEELS"/trl-*.whl >/dev/null 2>&1; then
    $PIP --target /tmp/unsloth-trl "$UNSLOTH_WHEELS"/trl-*.whl || HAVE_UNSLOTH=0
  fi
fi
[ -f $WORK/model/config.json ] || PYTHONPATH=/tmp/lf DISABLE_VERSION_CHECK=1 python3 "$BENCH/make_synth.py" $WORK 8b 2000 || exit 1
export PYTHONUNBUFFERED=1 FT_CORE_CACHE=$WORK/cache HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 \
  UNSLOTH_COMPILE_LOCATION=/tmp/unsloth_compiled_cache

status() {  # what a run's exit status means
  case $1 in 0) echo ok ;; 124|137) echo "TIMEOUT after ${RUN_TIMEOUT}s" ;; *) echo "FAILED (exit $1)" ;; esac
}
ft_run() {  # MODE LOG [bench_sft.py options]: one ft-core run under timeout, its log in LOG
  local mode=$1 log=$2; shift 2
  local path=/tmp/ftcore:/tmp/ftdeps started=$SECONDS
  case $mode in *unsloth*) path=/tmp/unsloth-trl:/tmp/unsloth:$path ;; esac
  PYTHONPATH=$path timeout $RUN_TIMEOUT python3 tools/bench/bench_sft.py $WORK "$mode" "$@" >"$log" 2>&1
  local rc=$?
  rm -rf $WORK/ft-out-*  # a full run's artefact is 16 GB: the machine's disk (64 GB) holds few
  echo "=== ft-core $mode: $(status $rc) (process $((SECONDS - started)) s)"
  grep -E "^RESULT|Error|error" "$log" | tail -3 | cut -c1-600
}
lf_run() {  # LF_MODE [LOG [lf_bench_modes.py options]]
  local mode=$1 log=${2:-$LOGS/lf-$1.log} started=$SECONDS path=/tmp/lf; shift; shift || true
  case $mode in *unsloth*) path=/tmp/unsloth:$path ;; esac
  PYTHONPATH=$path DISABLE_VERSION_CHECK=1 timeout $RUN_TIMEOUT \
    python3 tools/bench/lf_bench_modes.py "$BENCH/lf_bench.py" $WORK "$mode" "$STEPS" "$@" >"$log" 2>&1
  local rc=$?
  # the run's outputs (its RESULT line has the figures), except the rm run's model, which LLaMA-Factory's ppo reads
  find $WORK -maxdepth 1 -name 'out_*' ! -name out_lf_rm -exec rm -rf {} +
  echo "=== LLaMA-Factory $mode $*: $(status $rc) (process $((SECONDS - started)) s)"
  grep -E "^RESULT .*LLaMA-Factory|Error|error" "$log" | tail -3 | cut -c1-600
}

# One-time compilation (Liger's Triton kernels, cached on disk per machine) is not a training cost: a 2-step run
# pays it before the measured runs, once for the bf16 modes and once more when a QLoRA mode is measured (its kernels
# differ). WARMUP=0 skips it; the warm-up logs ($OUT/warmup-MODE.txt) are not part of the summary.
if [[ ${WARMUP:-1} == 1 ]]; then
  warmups="lora_fast"; [[ " $MODES " == *" qlora4"* ]] && warmups="$warmups qlora4_fast_ckpt"
  warmups=${WARMUP_MODES:-$warmups}
  for mode in $warmups; do
    PYTHONPATH=/tmp/ftcore:/tmp/ftdeps timeout $RUN_TIMEOUT python3 tools/bench/bench_sft.py $WORK $mode 2 \
      >"$LOGS/warmup-$mode.txt" 2>&1
    echo "=== warm-up ($mode, 2 steps): $(status $?)"
  done
fi
longest() {  # ft|lf MODE: one row of LONG_START tokens per step, doubled until a run fails or passes LONG_MAX
  local system=$1 mode=$2 length=$LONG_START
  while (( length <= LONG_MAX )); do
    local log="$LOGS/long-$system-$mode-$length.log"
    if [[ $system == ft ]]; then ft_run "$mode" "$log" "$STEPS" --long $length; else lf_run "$mode" "$log" --long $length; fi
    grep -q '^RESULT .*"system"' "$log" || { grep -m1 -o "OutOfMemoryError[^(]*" "$log" | head -1; break; }
    length=$((length * 2))
  done
}
if [[ -n ${LONG_START:-} ]]; then  # the long-context measure: each mode and its baseline, doubling until out of memory
  LONG_MAX=${LONG_MAX:-262144}
  for mode in $MODES; do
    [[ " $SKIP_FT " == *" $mode "* ]] || longest ft "$mode"
    baseline=$(python3 -c "import sys; sys.path.insert(0, 'tools/bench'); from bench_table import BASELINES as B; print(B['$mode'])")
    [[ $SKIP_LF == 1 || $baseline == None || " $SKIP_LF_MODES " == *" $baseline "* ]] || longest lf "$baseline"
  done
  MODES=""
fi
LF_DONE=" "
for mode in $MODES; do
  if [[ $mode == *unsloth* && $HAVE_UNSLOTH != 1 ]]; then
    echo "=== ft-core $mode: skipped (no unsloth wheel in $UNSLOTH_WHEELS)"; continue
  fi
  [[ " $SKIP_FT " == *" $mode "* ]] || ft_run "$mode" "$LOGS/ft-$mode.log" "$STEPS"
  baseline=$(python3 -c "import sys; sys.path.insert(0, 'tools/bench'); from bench_table import BASELINES as B; print(B['$mode'])")
  if [[ $SKIP_LF != 1 && $baseline != None && $LF_DONE != *" $baseline "* && " $SKIP_LF_MODES " != *" $baseline "* ]]; then
    lf_run "$baseline"; LF_DONE="$LF_DONE$baseline "
  fi
done
for mode in $PROFILE_MODES; do
  ft_run "$mode" "$LOGS/ft-$mode-profile.log" $((PROFILE_STEPS + PROFILE_START + 1)) --profile \
    --profile-start "$PROFILE_START" \
    --profile-steps "$PROFILE_STEPS" --out "$LOGS"
  grep -A24 "^PROFILE" "$LOGS/ft-$mode-profile.log" | cut -c1-200
done
echo "=== summary ($(date -u +%FT%TZ), $STEPS steps)"
python3 tools/bench/bench_table.py "$LOGS" --json "$LOGS/results.json" | tee "$LOGS/summary.md"
