#!/usr/bin/env bash
# Every GPU measurement of benchmarks/README.md in one go (about 5-6 minutes on an H200):
#   1. trainer throughput, ours vs the reference recipe, 4 architectures, synthetic D=768 windows (~1 min)
#   2. trials per GPU: 1, 2, 4, 8 trainer processes sharing the GPU, LSTM and Transformer (~1.5 min)
#   3. time to quality on linux-docs: amn and lstm, 20 reference epochs, 4 recipes of ours (~3 min)
#   4. only with COMPILE=1: torch.compile on ours (amn, transformer), time-boxed (~2 min more)
# Each step is time-boxed, and a failed step does not stop the others.
# Needs python3 with torch, numpy, safetensors (lvm_search.models.checkpoint) and pyyaml (lvm_search/__init__.py
# imports lvm_search.ensemble.build); the package is used from this checkout (PYTHONPATH); no Ray or Optuna.
#
#   bash benchmarks/gpu.sh [OUT_DIR]            # default OUT_DIR: benchmarks/results/gpu
#   LVM_LINUX_DATA=/path/linux-docs-minilm.npz bash benchmarks/gpu.sh /tmp/out
#   SMOKE=1 bash benchmarks/gpu.sh /tmp/smoke   # tiny settings, any device: tests this script only
#   COMPILE=1 bash benchmarks/gpu.sh            # also step 4
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-benchmarks/results/gpu}
mkdir -p "$OUT_DIR"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

LINUX=${LVM_LINUX_DATA:-}
if [ -z "$LINUX" ]; then
  for c in ../shared/data/linux-docs-minilm.npz shared/data/linux-docs-minilm.npz; do
    if [ -f "$c" ]; then LINUX=$c; break; fi
  done
fi
[ -f "$LINUX" ] || { echo "linux-docs-minilm.npz not found: set LVM_LINUX_DATA or put it in ../shared/data/" >&2; exit 2; }

python3 -c 'import torch, numpy, safetensors, yaml; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")' || exit 2

if [ "${SMOKE:-0}" = 1 ]; then
  DEV=(--device auto)
  TP=(--synthetic-windows 2000 --repeats 1 --ref-batches 10 --ref-warmup 2 --epochs 1 --archs amn lstm)
  TPG=(--processes 1 2 --epochs 1 --archs amn --allow-cpu)
  TTQ=(--ref-epochs 1 --epochs 2 --archs amn --recipes 1024:1e-3)
  CMP=(--synthetic-windows 2000 --repeats 1 --ref-batches 10 --ref-warmup 2 --epochs 1 --archs amn --compile)
else
  DEV=(--device cuda)
  TP=()
  TPG=()
  TTQ=(--archs amn lstm --ref-epochs 20 --epochs 20)
  CMP=(--archs amn transformer --repeats 2 --compile)
fi

failed=()
step() {  # step NAME TIMEOUT_S COMMAND...: run one measurement, keep going if it fails
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "=== $name (limit ${limit} s)"
  timeout -k 15 "$limit" "$@" || { echo "=== $name FAILED (exit $?)"; failed+=("$name"); }
  echo "=== $name took $((SECONDS - t0)) s"
}

step trainer_throughput 120 python3 benchmarks/trainer_throughput.py "${DEV[@]}" "${TP[@]}" --out "$OUT_DIR/trainer_throughput.json"
step trials_per_gpu 120 python3 benchmarks/trials_per_gpu.py "${DEV[@]}" --data "$LINUX" "${TPG[@]}" --out "$OUT_DIR/trials_per_gpu.json"
step time_to_quality 240 python3 benchmarks/time_to_quality.py "${DEV[@]}" --data "$LINUX" "${TTQ[@]}" --out "$OUT_DIR/time_to_quality.json"
if [ "${COMPILE:-0}" = 1 ] || [ "${SMOKE:-0}" = 1 ]; then
  step compile 120 python3 benchmarks/trainer_throughput.py "${DEV[@]}" "${CMP[@]}" --out "$OUT_DIR/trainer_throughput_compile.json"
fi

echo "=== total $SECONDS s; results in $OUT_DIR"
if [ ${#failed[@]} -gt 0 ]; then echo "=== failed: ${failed[*]}"; exit 1; fi
