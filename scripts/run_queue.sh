#!/usr/bin/env bash
# Run what is queued: DVC's queue with JOBS workers until nothing is queued or running, then
# the comparison. Exits 1 if an experiment failed. queue_variants.sh and queue_seeds.sh end so.
#   bash scripts/run_queue.sh JOBS WHAT   # WHAT names the runs in the timing line
set -euo pipefail
jobs="$1" what="$2"
start=$(date +%s)
dvc queue start -j "$jobs"
while status="$(dvc queue status 2>&1)"; echo "$status" | grep -qE "Queued|Running"; do
  sleep 10
done
echo "$status"
echo "$what: $(( $(date +%s) - start ))s with $jobs workers"
fren-nmt compare
if echo "$status" | grep -q "Failed"; then
  echo "error: some experiments failed; see dvc queue logs NAME" >&2
  exit 1
fi
