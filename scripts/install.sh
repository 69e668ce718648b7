#!/usr/bin/env bash
# Install fren-nmt and everything it needs into the current Python environment.
# torch is pinned first: an unpinned `torch` pulls the multi-GB CUDA build on a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip"
if ! python3 -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
  $PIP install -q torch==2.13.0
fi
$PIP install -q -e ".[dev]"
