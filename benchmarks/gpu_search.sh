#!/usr/bin/env bash
# The four-architecture search on one GPU, then the ensemble and the leaderboard, each search
# capped in wall time (SIGINT at the cap: Tune stops, the run keeps what finished and resumes later).
# usage: benchmarks/gpu_search.sh DATA.npz OUT_DIR [SECONDS_PER_ARCH] [SAMPLES]
set -u
data=$1; out=$2; budget=${3:-75}; samples=${4:-24}
lvm="python3 -m lvm_search.cli"
mkdir -p "$out"
for arch in amn lstm gru transformer; do
  start=$(date +%s)
  timeout -s INT "$budget" $lvm run "spaces/$arch.yaml" --data "$data" --storage "$out/runs" --name "gpu-$arch" \
    --samples "$samples" --max-concurrent 8 --cpus-per-trial 2 --gpus-per-trial 0.125 --json \
    > "$out/search-$arch.json" 2> "$out/search-$arch.log"
  echo "search $arch: exit $? after $(( $(date +%s) - start )) s"
done
$lvm ensemble ensembles/default.yaml --storage "$out/runs" > "$out/ensemble.txt" 2>&1; echo "ensemble: exit $?"
$lvm report --storage "$out/runs" --out "$out/report/leaderboard.md" > "$out/report.txt" 2>&1; echo "report: exit $?"
