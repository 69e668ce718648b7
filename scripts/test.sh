#!/usr/bin/env bash
# The test command: install, lint, run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
workers="${FREN_NMT_TEST_WORKERS:-$(nproc)}"
[[ "$workers" =~ ^[0-9]+$ ]] && [ "$workers" -ge 1 ] ||
  { echo "error: FREN_NMT_TEST_WORKERS=$workers: not a whole number of 1 or more" >&2; exit 2; }
bash scripts/install.sh
ruff check --output-format concise .
# A test process per core (at most 4; FREN_NMT_TEST_WORKERS sets it), the cores' PyTorch
# threads shared among them so that they never oversubscribe; a test file stays on one
# process, so that a module's fixtures (a workspace whose data stages ran) are built once.
# PASSIVE keeps idle OpenMP threads from spinning while a test's DVC stage runs in a subprocess.
[ "$workers" -le 4 ] || workers=4
threads=$(( $(nproc) / workers )); [ "$threads" -ge 1 ] || threads=1
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$threads}" OMP_WAIT_POLICY=PASSIVE
if [ "$workers" = 1 ]; then
  python3 -m pytest -q "$@"
else
  python3 -m pytest -q -n "$workers" --dist loadfile "$@"
fi
