#!/usr/bin/env bash
# The main job: install, then rebuild the whole pipeline with DVC.
#   bash run.sh                       # dvc repro with params.yaml (downloads Giga-fren, 2.3 GB)
#   bash run.sh -S data.url=PATH ...  # dvc exp run with params set, e.g. the offline tarball
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
if [ $# -eq 0 ]; then
  dvc repro
else
  dvc exp run "$@"
fi
dvc metrics show
