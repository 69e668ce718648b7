#!/usr/bin/env bash
# The test command: install, lint, run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
ruff check --output-format concise .
# Two cores, one test at a time: two PyTorch threads; PASSIVE keeps idle OpenMP threads from
# spinning while a test's DVC stage runs in a subprocess.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" OMP_WAIT_POLICY=PASSIVE
python3 -m pytest -q "$@"
