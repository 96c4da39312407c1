#!/usr/bin/env bash
# The pretrained models of issue 32: each architecture's reference configuration (trial 0 of its
# shipped space) trained on the pretraining corpus (scripts/build_pretrain_corpus.sh) with every
# linux-docs window added, at k=16 with min_context 5, so that one model serves every k a search tries.
# The result, INITS/<arch>/, is what `--init INITS` starts each trial of that architecture from.
#
#   bash scripts/pretrain_inits.sh INITS [PRETRAIN.npz] [LINUX.npz]
#
# Defaults: /work/extra-data/pretrain-docs-minilm.npz and ../shared/data/linux-docs-minilm.npz;
# EPOCHS (default 10); ARCHS (default "amn gru lstm transformer"). Each checkpoint's config.json
# records the data it was trained on (files and their digests) and its val cosine on the pretraining
# corpus's held-out documents; INITS/wall_s.jsonl the wall time of each.
set -euo pipefail
OUT=${1:?usage: pretrain_inits.sh INITS [PRETRAIN.npz] [LINUX.npz]}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PRETRAIN=${2:-/work/extra-data/pretrain-docs-minilm.npz}
LINUX=${3:-$REPO/../shared/data/linux-docs-minilm.npz}
EPOCHS=${EPOCHS:-10}
ARCHS=${ARCHS:-amn gru lstm transformer}

for arch in $ARCHS; do
  # the model settings of the shipped space's trial 0 (its `fixed` and `reference`), as --set flags
  mapfile -t sets < <(python3 - "$REPO/spaces/$arch.yaml" "$arch" <<'PY'
import sys, yaml
from lvm_search.models import config_fields
space, arch = yaml.safe_load(open(sys.argv[1])), sys.argv[2]
for key, value in {**space.get("fixed", {}), **space.get("reference", {})}.items():
    if key in config_fields(arch):
        print(f"--set\n{key}={value}")
PY
)
  start=$(date +%s)
  lvm-search train --arch "$arch" --data "$PRETRAIN" --extra-train "$LINUX" --k 16 --min-context 5 \
    --epochs "$EPOCHS" "${sets[@]}" --out "$OUT/$arch"
  wall=$(( $(date +%s) - start ))
  echo "$arch: $wall s"
  echo "{\"arch\": \"$arch\", \"epochs\": $EPOCHS, \"wall_s\": $wall}" >> "$OUT/wall_s.jsonl"
done
