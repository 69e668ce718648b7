#!/usr/bin/env bash
# Train and evaluate the six variants side by side, as DVC queued experiments (one per
# variant), then print the comparison. Made for one GPU, where one variant leaves most of it
# idle; on a 2-core CPU they only share the cores.
#   bash scripts/queue_variants.sh [-S key=value ...]      # JOBS=6 by default
#   GPUS_PER_VARIANT=2 bash scripts/queue_variants.sh       # 12 GPUs: variant i trains on
#                                                           # GPUs 2i and 2i+1, 2 processes
# Queued experiments see only what git tracks: commit params.yaml (data.url included) first.
# The data stages run here once; their results reach the queued runs through dvc.lock and
# DVC's cache. Each experiment then holds one variant: `fren-nmt compare` shows them side by
# side, `dvc exp apply NAME` brings one into the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${JOBS:-6}"
git diff --quiet HEAD -- params.yaml dvc.yaml ||
  { echo "error: params.yaml or dvc.yaml has uncommitted changes; queued runs would not see them" >&2; exit 1; }
dvc repro embeddings
if ! git diff --quiet HEAD -- dvc.lock; then
  git add dvc.lock && git commit -qm "dvc.lock: data stages for queued variants"
fi
tag="q$(date +%H%M%S)"
gpus="${GPUS_PER_VARIANT:-0}"  # 0: every experiment one process on the first GPU
i=0
variants="$(python3 -c 'from pipeline.params import load_params, variant_names; print(" ".join(variant_names(load_params())))')"
for v in $variants; do  # params.yaml's variants
  # queue workers all see the same GPUs: each experiment is told which of them are its own
  spread=()
  if [ "$gpus" -gt 0 ]; then
    spread=(-S "++variants.$v.runtime.processes=$gpus" -S "++variants.$v.runtime.first_gpu=$((i * gpus))")
  fi
  dvc exp run --queue -q -n "$tag-$v" "${spread[@]}" "$@" "evaluate@$v"
  i=$((i + 1))
done
bash scripts/run_queue.sh "$jobs" "queue_variants: the six variants"
