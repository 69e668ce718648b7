#!/usr/bin/env bash
# Train and evaluate chosen variants with several seeds, as DVC queued experiments (one per
# seed, each holding every chosen variant), then print the comparison: `fren-nmt compare`
# groups the runs that differ only in train.seed into mean ± standard deviation (n).
#   bash scripts/queue_seeds.sh all transformer           # seeds 1 2 3 (SEEDS="1 2 3")
#   SEEDS="1 2 3 4 5" JOBS=2 bash scripts/queue_seeds.sh all -S runtime.device=cpu
# Queued experiments see only what git tracks: commit params.yaml (data.url included) first.
# Then `fren-nmt significance` tests two variants' translations of the test set (after
# `dvc exp apply NAME`, in reports/VARIANT/translations).
set -euo pipefail
cd "$(dirname "$0")/.."
variants=()
while [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; do variants+=("$1"); shift; done
[ ${#variants[@]} -gt 0 ] || { echo "error: name the variants, e.g. bash $0 all transformer" >&2; exit 2; }
known=" $(python3 -c 'from pipeline.params import load_params, variant_names; print(" ".join(variant_names(load_params())))') "
for v in "${variants[@]}"; do
  [[ "$known" == *" $v "* ]] || { echo "error: $v: no such variant (known:$known)" >&2; exit 2; }
done
seeds="${SEEDS:-1 2 3}"
for s in $seeds; do
  [[ "$s" =~ ^[0-9]+$ ]] || { echo "error: SEEDS: $s is not a whole number" >&2; exit 2; }
done
git diff --quiet HEAD -- params.yaml dvc.yaml ||
  { echo "error: params.yaml or dvc.yaml has uncommitted changes; queued runs would not see them" >&2; exit 1; }
dvc repro embeddings truecase
if ! git diff --quiet HEAD -- dvc.lock; then
  git add dvc.lock && git commit -qm "dvc.lock: data stages for queued seeds"
fi
tag="s$(date +%H%M%S)"
targets=()
for v in "${variants[@]}"; do targets+=("evaluate@$v"); done
for s in $seeds; do
  dvc exp run --queue -q -n "$tag-seed$s" -S "train.seed=$s" "$@" "${targets[@]}"
done
bash scripts/run_queue.sh "${JOBS:-1}" "queue_seeds: seeds $seeds of ${variants[*]}"
