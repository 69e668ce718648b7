#!/usr/bin/env bash
# Everything a lent GPU session runs, in one call, most important first; each part has its own
# time limit, so a slow part cannot starve the next, and every log lands in $OUT.
#
# Prepare here (the device image has torch, pandas, pyarrow, PyYAML, tqdm, pytest; not DVC,
# spaCy, fastText or sacremoses):
#   dvc repro embeddings             # with data.url at the shared tarball
#   mkdir -p .gpu && cp -r data/processed .gpu/ && echo /.gpu/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl sacremoses
# then run it through the device tool with carry [".gpu", ".whl"]:
#   bash benchmarks/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu_session}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
part() {  # part NAME SECONDS COMMAND...: run it under a limit, log to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  echo; echo "===== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  echo "===== $name: exit ${PIPESTATUS[0]} in $(( SECONDS - t0 ))s"
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader
part gpu_check "${GPU_CHECK_S:-180}" python3 benchmarks/gpu_check.py
part tests "${TESTS_S:-120}" python3 -m pytest -q -p no:cacheprovider \
  tests/unit/test_static_step.py tests/unit/test_cuda_path.py tests/integration/test_translate.py \
  tests/unit/test_fast_path.py tests/unit/test_model.py tests/unit/test_transformer.py tests/unit/test_search.py
part bench_train "${BENCH_TRAIN_S:-60}" python3 benchmarks/bench_train.py --device cuda \
  --steps 10 --precisions fp32
if [ -d .gpu/processed ]; then
  part bench_repro "${BENCH_REPRO_S:-100}" python3 benchmarks/bench_repro.py tatoeba \
    --device cuda --fraction 1 --data .gpu/processed --variants transformer all basic
fi
