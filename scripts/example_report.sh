#!/usr/bin/env bash
# The example leaderboard in reports/leaderboard.md: every shipped space searched as shipped on the
# packaged sample, the default ensemble, and the report (3.5 min on a quiet 2-core CPU).
set -eu
storage=${1:-runs-sample}
for arch in amn lstm gru transformer; do
  lvm-search run "spaces/$arch.yaml" --storage "$storage" | tail -3
done
lvm-search ensemble ensembles/default.yaml --storage "$storage" | tail -3
lvm-search report --storage "$storage" --out reports/leaderboard.md
