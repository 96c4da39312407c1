#!/usr/bin/env bash
# The example leaderboard in reports/leaderboard.md: a small real search of every architecture on
# the packaged sample, their ensemble, and the report (5 min 12 s on a quiet 2-core CPU).
set -eu
storage=${1:-runs-sample}
for arch in amn lstm gru transformer; do
  lvm-search run "spaces/$arch.yaml" --storage "$storage" --samples 6 --max-epochs 12 | tail -4
done
lvm-search ensemble ensembles/default.yaml --storage "$storage"
lvm-search report --storage "$storage" --out reports/leaderboard.md
