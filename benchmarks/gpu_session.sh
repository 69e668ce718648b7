#!/usr/bin/env bash
# Everything a lent GPU session runs, in one call, most important first; each part has its own
# time limit, so a slow part cannot starve the next, and every log lands in $OUT.
#
#   bash benchmarks/gpu_prepare.sh [DATA]        # here: .gpu/processed from DATA's processed files
#   bash benchmarks/gpu_session.sh --device cpu  # here: the dry run, every part at a tiny size
#   bash benchmarks/gpu_session.sh               # there, through the device tool, carry [".gpu"]
#
# The parts follow the default path (`bash run.sh`): gpu_check (captured = eager, the speed of
# every variant's step), bench_repro on the carried data (the transformer on pieces with the
# pool's slice an epoch, captured steps shaped by the pool's pairs, then `all` and `basic` on
# words; each then evaluated greedy and beam 5), the CUDA tests, bench_train. The device image
# has torch, pandas, pyarrow, PyYAML, tqdm and pytest, not DVC, spaCy, fastText, SentencePiece
# or sacremoses: nothing here imports them. Limits (seconds) sum to 570, inside one call's 600.
set -uo pipefail
cd "$(dirname "$0")/.."
device=cuda
case "${1:-}" in
  "") ;;
  --device) device="${2:?--device needs cpu or cuda}" ;;
  *) echo "usage: bash benchmarks/gpu_session.sh [--device cpu|cuda]" >&2; exit 2 ;;
esac
case "$device" in cpu|cuda) ;; *) echo "--device $device: expected cpu or cuda" >&2; exit 2 ;; esac
OUT="${OUT:-/tmp/gpu_session}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
failed=0
part() {  # part NAME SECONDS COMMAND...: run it under a limit, log to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  echo; echo "===== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "===== $name: exit $rc in $(( SECONDS - t0 ))s"
  [ "$rc" = 0 ] || failed=$(( failed + 1 ))
}
if [ "$device" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader
  fraction=1 steps=20 train_steps=10 train_variants=()
else  # the dry run: every part, a few steps, a sliver of each epoch, two variants' CPU steps
  fraction=0.01 steps=2 train_steps=1 train_variants=(--variants basic transformer)
fi
part gpu_check "${GPU_CHECK_S:-150}" python3 benchmarks/gpu_check.py --steps "$steps"
if [ -d .gpu/processed ]; then
  part bench_repro "${BENCH_REPRO_S:-240}" python3 benchmarks/bench_repro.py processed \
    --device "$device" --fraction "$fraction" --data .gpu/processed \
    --variants transformer all basic
else
  echo "===== bench_repro: no .gpu/processed (bash benchmarks/gpu_prepare.sh first)"
  failed=$(( failed + 1 ))
fi
part tests "${TESTS_S:-120}" python3 -m pytest -q -p no:cacheprovider \
  tests/unit/test_static_step.py tests/unit/test_cuda_path.py tests/unit/test_fast_path.py \
  tests/unit/test_model.py tests/unit/test_transformer.py tests/unit/test_search.py
part bench_train "${BENCH_TRAIN_S:-60}" python3 benchmarks/bench_train.py --device "$device" \
  --steps "$train_steps" --precisions fp32 "${train_variants[@]}"
echo; echo "gpu_session: $failed part(s) failed"
[ "$failed" = 0 ]
