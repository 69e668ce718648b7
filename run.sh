#!/usr/bin/env bash
# The main job: install, then rebuild the whole pipeline with DVC.
#   bash run.sh                       # dvc repro with params.yaml (downloads Giga-fren, 2.3 GB)
#   bash run.sh -S data.url=PATH ...  # dvc exp run with params set, e.g. the offline tarball
#   bash run.sh --quick               # all six variants for one epoch (~4 min on 2 cores),
#                                     # then the comparison table: from the local Tatoeba
#                                     # tarball ($FREN_NMT_TARBALL, default ../shared/...),
#                                     # or else from the Tatoeba pairs' zip (a few MB download)
# FREN_NMT_NO_INSTALL=1 skips the install step (an environment already set up).
set -euo pipefail
cd "$(dirname "$0")"
[ -n "${FREN_NMT_NO_INSTALL:-}" ] || bash scripts/install.sh
if [ "${1:-}" = "--quick" ]; then
  shift
  tarball="${FREN_NMT_TARBALL:-../shared/data/training-giga-fren-tatoeba.tar}"
  if [ -f "$tarball" ]; then
    url="$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")"
  elif [ -n "${FREN_NMT_TARBALL:-}" ]; then
    echo "error: $tarball: no such file (FREN_NMT_TARBALL)" >&2; exit 1
  else  # the same Tatoeba questions, as Keras' seq2seq example downloads them
    url="${FREN_NMT_QUICK_URL:-http://storage.googleapis.com/download.tensorflow.org/data/fra-eng.zip}"
    echo "quick run: no $tarball here; the Tatoeba pairs come from $url"
  fi
  set -- -S "data.url=$url" -S embeddings.train.epochs=5 -S train.batch_size=32 \
    -S variants.basic.train.epochs=1 -S variants.bidir.train.epochs=1 \
    -S variants.teacher_forcing.train.epochs=1 -S variants.attention.train.epochs=1 \
    -S variants.all.train.epochs=1 -S variants.transformer.train.epochs=1 "$@"
  start=$(date +%s)
  dvc exp run "$@"
  echo "quick run: $(( $(date +%s) - start ))s; params.yaml now holds its settings" \
    "(git checkout params.yaml to go back)"
  fren-nmt compare --metrics metrics
  exit
fi
if [ $# -eq 0 ]; then
  dvc repro
else
  dvc exp run "$@"
fi
fren-nmt compare --metrics metrics
