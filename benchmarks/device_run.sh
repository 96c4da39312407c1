#!/usr/bin/env bash
# One call on a GPU machine: every GPU measurement (trainer throughput, quality levers on
# linux-docs, time to quality, trials per GPU) in under 10 minutes, each step capped in time.
# Needs python3 with torch, numpy, pyyaml and safetensors; no Ray or Optuna.
# usage: OUT=DIR LINUX=linux-docs-minilm.npz bash benchmarks/device_run.sh     (SMOKE=1: tiny, any device)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/results/gpu}
linux=${LINUX:-../shared/data/linux-docs-minilm.npz}
export PYTHONPATH=. PYTHONUNBUFFERED=1
mkdir -p "$out"
log=$out/device_run.log
dev=cuda; tp=(--repeats 2); q=(--epochs 20); ttq=(); tpg=(--processes 1 2 4 8 --epochs 2)
if [ "${SMOKE:-0}" = 1 ]; then
  dev=cpu; tp=(--repeats 1 --synthetic-windows 2000 --ref-batches 5 --ref-warmup 1 --epochs 1 --archs amn)
  q=(--epochs 1); ttq=(--ref-epochs 1 --epochs 1); tpg=(--processes 1 --epochs 1 --allow-cpu)
fi
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; python3 -c 'import torch; print("torch", torch.__version__)') > "$out/machine.txt"
step() {  # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$2 t0=$SECONDS; shift 2
  echo "=== $name" | tee -a "$log"
  timeout -s INT "$limit" "$@" >> "$log" 2>&1
  echo "=== $name: exit $? after $((SECONDS - t0)) s" | tee -a "$log"
}
step throughput 110 python3 benchmarks/trainer_throughput.py --device $dev "${tp[@]}" --out "$out/trainer_throughput.json"
step quality_amn_lstm 150 python3 benchmarks/quality.py --device $dev --data "$linux" --archs amn lstm "${q[@]}" --out "$out/quality_amn_lstm.json"
step quality_gru_transformer 100 python3 benchmarks/quality.py --device $dev --data "$linux" --archs gru transformer "${q[@]}" \
  --variants "reference (no levers)" "residual over the mean" --out "$out/quality_gru_transformer.json"
step time_to_quality 130 python3 benchmarks/time_to_quality.py --device $dev --data "$linux" --archs amn lstm "${ttq[@]}" --out "$out/time_to_quality.json"
step trials_per_gpu 70 python3 benchmarks/trials_per_gpu.py --device $dev --data "$linux" --archs lstm transformer "${tpg[@]}" --out "$out/trials_per_gpu.json"
echo "=== total $SECONDS s" | tee -a "$log"
