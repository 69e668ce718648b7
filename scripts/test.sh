#!/usr/bin/env bash
# The test command: install, lint, run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
ruff check --output-format concise .
# Two cores: one PyTorch thread per test process keeps the suite from oversubscribing them.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" OMP_WAIT_POLICY=PASSIVE
python3 -m pytest -q "$@"
