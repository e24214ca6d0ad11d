#!/usr/bin/env bash
# The GPU-only tests (marker `gpu`) on a CUDA machine whose Python already has torch and transformers (the lent GPU
# machine): install the carried wheels (WHEELS, default .whl-gpu: pluggy, omegaconf, datasets, peft, trl,
# liger-kernel, bitsandbytes, pytest, ...) and ft-core with every plugin into /tmp, then run the gpu tests, plus any
# extra pytest arguments. Logs under $OUT when set.
set -uo pipefail
WHEELS=${WHEELS:-.whl-gpu}
LOGS=${OUT:-/tmp/gpu-logs}; mkdir -p "$LOGS"
PIP="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade"
$PIP --target /tmp/ftdeps "$WHEELS"/*.whl || exit 1
$PIP --no-build-isolation --target /tmp/ftcore ./core ./plugins/*/ ./contrib_templates/*/ >"$LOGS/install.log" 2>&1 ||
  { tail -20 "$LOGS/install.log"; exit 1; }
export PYTHONPATH=/tmp/ftcore:/tmp/ftdeps PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 FT_CORE_CACHE=/tmp/ftcache
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
# Liger's kernels replace transformers' classes process-wide (a GPU run turns them on by default): its own tests run
# in a process of their own, before the others.
for scope in "plugins/ft-core-liger" "--ignore=plugins/ft-core-liger"; do
  python3 -m pytest -q -p no:cacheprovider -o addopts="--import-mode=importlib" -m gpu "$@" $scope 2>&1 |
    tee -a "$LOGS/pytest.log" | tail -25
done
