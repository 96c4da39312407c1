#!/usr/bin/env bash
# The four-architecture search on linux-docs on a 2-core CPU through the platform itself
# (`lvm-search run`, Ray Tune + Optuna), then the ensemble and reports/leaderboard-linux.md.
# Each search has a wall-time cap (SIGINT at the cap: Tune stops, the run keeps every finished trial,
# and the same command resumes it later).
#   stage first  (about an hour): all four architectures, run with the first spaces (k=5, residual
#                searched; git 5da5775), as linux-ARCH
#   stage levers (about 25 minutes): AMN (k=8) and LSTM (k=16) with the shipped spaces and their
#                quality levers, as linux-ARCH-levers; the report takes the latest run of each
#                architecture, so the GRU and Transformer of the first stage stay in it. All runs
#                share min_context 5, so the ensemble mixes k=5, 8 and 16 on the same windows.
# usage: benchmarks/cpu_linux_search.sh first|levers [DATA] [STORAGE]
set -u
stage=${1:?first or levers}
data=${2:-../shared/data/linux-docs-minilm.npz}
storage=${3:-runs-linux}
run() {  # run ARCH NAME CAP_S SAMPLES MAX_EPOCHS
  local start=$(date +%s)
  timeout -s INT "$3" lvm-search run "spaces/$1.yaml" --data "$data" --storage "$storage" --name "$2" \
    --samples "$4" --max-epochs "$5" --max-concurrent 2 --cpus-per-trial 1 > "$storage-$2.log" 2>&1
  echo "search $2: exit $? after $(( $(date +%s) - start )) s"
}
mkdir -p "$storage"
if [ "$stage" = first ]; then
  run amn linux-amn 420 16 20
  run lstm linux-lstm 960 8 6
  run gru linux-gru 960 8 6
  run transformer linux-transformer 1080 6 5
else
  run amn linux-amn-levers 600 12 15
  run lstm linux-lstm-levers 900 6 8
fi
lvm-search ensemble ensembles/default.yaml --storage "$storage"
lvm-search report --storage "$storage" --out reports/leaderboard-linux.md
