#!/usr/bin/env bash
# The wheels one device call of bench_vs_llamafactory.sh carries, for the GPU machine's Python 3.12, in DIR
# (default .whl-dev; ignored by git):
#   DIR/lf       LLaMA-Factory 0.9.5's own stack (shared/bench/fetch_lf_wheels.sh) less what COMMON holds
#   DIR/common   datasets, dill, multiprocess, omegaconf and bitsandbytes (CUDA 13 and CPU libraries only)
#   DIR/ft       what ft-core's plugins need beyond the machine's torch/transformers/accelerate
#   DIR/trl      trl 1.x (the stage modes);  DIR/torchao  torchao (the FP8 modes)
#   DIR/unsloth  unsloth and unsloth_zoo (web UI and CLI stripped) with what they need at import beyond the
#                machine's packages (the *_unsloth modes: UNSLOTH_WHEELS=DIR/unsloth; its trl is ft-core's only)
#   DIR/bench    a copy of shared/bench's scripts (the ../shared beside a checkout does not travel)
# Usage: bash tools/bench/fetch_dev_wheels.sh [DIR] [SHARED_BENCH]; then carry DIR (it stays under 64 MiB).
set -euo pipefail
D=${1:-.whl-dev}; BENCH=${2:-../shared/bench}
P="--no-deps --only-binary=:all: --python-version 3.12 --implementation cp -q"
for pl in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
          manylinux2014_x86_64 manylinux1_x86_64; do P="$P --platform $pl"; done
get() {  # FOLDER REQUIREMENT...
  local folder=$D/$1; shift; mkdir -p "$folder"
  for requirement in "$@"; do python3 -m pip download $P -d "$folder" "$requirement"; done
}
# LLaMA-Factory's stack, pinned by shared/bench's own fetcher; what ft-core uses too moves to common/
bash "$BENCH/fetch_lf_wheels.sh" "$D/lf" >/dev/null
mkdir -p "$D/common"
mv "$D"/lf/{datasets,dill,multiprocess,omegaconf,bitsandbytes}-*.whl "$D/common/"
get ft peft==0.21.2 liger-kernel==0.8.5 galore-torch==1.0 badam==1.4 apollo-torch==1.0.3 termcolor==3.3.0
get trl trl==1.16.0
get torchao torchao==0.18.0
get unsloth unsloth==2026.10.9 unsloth_zoo==2026.10.9 cut_cross_entropy==25.1.1 msgspec==0.23.0 trl==1.15.0 \
  datasets==4.8.5
python3 tools/bench/slim_wheel.py "$D"/unsloth/unsloth-2026.10.9-*.whl 'studio/*' 'unsloth_cli/*'
# hqq publishes no wheel: build its pure-Python one here.
python3 -m pip wheel -q --no-deps --no-build-isolation -w "$D/ft" hqq==0.2.8.post1
python3 tools/bench/slim_wheel.py "$D"/common/bitsandbytes-*.whl 'bitsandbytes/libbitsandbytes_cuda1[12]*' \
  'bitsandbytes/libbitsandbytes_rocm*' 'bitsandbytes/libbitsandbytes_xpu*'
mkdir -p "$D/bench"; cp "$BENCH"/*.py "$BENCH"/*.sh "$D/bench/"
du -sh "$D"
