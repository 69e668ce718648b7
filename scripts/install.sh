#!/usr/bin/env bash
# Install fren-nmt and everything it needs into the current Python environment.
# torch is pinned first, then the package (whose own `torch>=2.2` is then already met).
# From PyPI on Linux x86-64 torch==2.13.0 is the CUDA build (several GB of nvidia-* packages);
# set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for the small CPU-only build.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip"
if ! python3 -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
  $PIP install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
$PIP install -q -e ".[dev]"
