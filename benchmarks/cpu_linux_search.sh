#!/usr/bin/env bash
# The four-architecture search on linux-docs sized for about an hour on a 2-core CPU, then the
# ensemble and the leaderboard. Each search has a wall-time cap (SIGINT at the cap: Tune stops,
# the run keeps every finished trial, and the same command resumes it later).
# usage: benchmarks/cpu_linux_search.sh [DATA] [STORAGE]
set -u
data=${1:-../shared/data/linux-docs-minilm.npz}
storage=${2:-runs-linux}
run() {  # run ARCH CAP_S SAMPLES MAX_EPOCHS
  local start=$(date +%s)
  timeout -s INT "$2" lvm-search run "spaces/$1.yaml" --data "$data" --storage "$storage" --name "linux-$1" \
    --samples "$3" --max-epochs "$4" --max-concurrent 2 --cpus-per-trial 1 > "$storage-$1.log" 2>&1
  echo "search $1: exit $? after $(( $(date +%s) - start )) s"
}
mkdir -p "$storage"
run amn 420 16 20
run lstm 960 8 6
run gru 960 8 6
run transformer 1080 6 5
lvm-search ensemble ensembles/default.yaml --storage "$storage"
lvm-search report --storage "$storage" --out reports/leaderboard-linux.md
