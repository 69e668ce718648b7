#!/usr/bin/env bash
# What the lanes of scripts/repro_lanes.sh buy on this machine: one variant's training, timed
# three ways in one run: alone with 2 PyTorch threads, alone with 1, and two 1-thread runs at
# once (a core each, as the lanes run them). Prints each wall time and the throughput of the
# two-at-once way against 2 threads alone (2 x alone / together).
#   bash benchmarks/bench_lanes.sh WORKSPACE [VARIANT] [EPOCHS]   # default: all, 1
# WORKSPACE: a checkout whose data stages are done (e.g. after `dvc repro subwords embeddings
# truecase`); it is copied twice into a scratch folder and not changed. Run it alone.
set -euo pipefail
ws="$(cd "${1:?usage: bench_lanes.sh WORKSPACE [VARIANT] [EPOCHS]}" && pwd)"
variant="${2:-all}" epochs="${3:-1}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for c in a b; do
  mkdir "$tmp/$c"
  (cd "$ws" && tar --exclude=./.git --exclude=./.dvc --exclude=./models --exclude=./dvclive \
     -cf - .) | tar -xf - -C "$tmp/$c"
  python3 "$repo/scripts/merge_params.py" "$tmp/$c/params.yaml" - \
    "variants.$variant.train.epochs=$epochs"
done
train() {  # train COPY THREADS: prints the wall seconds of one training
  python3 "$repo/scripts/merge_params.py" "$tmp/$1/params.yaml" - "runtime.threads=$2" \
    "+variants.$variant.runtime.threads=$2"
  local t0=$EPOCHREALTIME
  (cd "$tmp/$1" && python3 -m stages.train "$variant" >/dev/null)
  python3 -c "print(round($EPOCHREALTIME - $t0, 1))"
}
two=$(train a 2)
one=$(train a 1)
t0=$EPOCHREALTIME
train a 1 >/dev/null & pid=$!
train b 1 >/dev/null
wait "$pid"
both=$(python3 -c "print(round($EPOCHREALTIME - $t0, 1))")
echo "train@$variant, $epochs epoch(s), $(nproc) cores: alone on 2 threads ${two}s," \
  "alone on 1 thread ${one}s, two 1-thread runs at once ${both}s"
python3 -c "print(f'two at once: {2 * $two / $both:.2f}x the throughput of 2 threads alone;'
              f' 1 thread alone: {$two / $one:.2f}x its speed')"
