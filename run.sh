#!/usr/bin/env bash
# The main job: install, then rebuild the whole pipeline with DVC.
#   bash run.sh                       # dvc repro with params.yaml (downloads Giga-fren, 2.3 GB)
#   bash run.sh -S data.url=PATH ...  # the same after writing these values into params.yaml,
#                                     # e.g. the offline tarball (what dvc exp run -S does)
#   bash run.sh --quick               # the transformer alone, 4 epochs (~10 min on 2
#                                     # cores): the whole chain, three translations and the
#                                     # command to serve; from the local Tatoeba tarball
#                                     # ($FREN_NMT_TARBALL, default ../shared/...), or else
#                                     # from the Tatoeba pairs' zip (a few MB download)
# The first two reproduce through scripts/repro_lanes.sh: the one-thread GRU variants two at
# a time. FREN_NMT_NO_INSTALL=1 skips the install step (an environment already set up).
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = "--quick" ]; then
  shift
  [ -n "${FREN_NMT_NO_INSTALL:-}" ] || bash scripts/install.sh
  tarball="${FREN_NMT_TARBALL:-../shared/data/training-giga-fren-tatoeba.tar}"
  if [ -f "$tarball" ]; then
    url="$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")"
  elif [ -n "${FREN_NMT_TARBALL:-}" ]; then
    echo "error: $tarball: no such file (FREN_NMT_TARBALL)" >&2; exit 1
  else  # the same Tatoeba questions, as Keras' seq2seq example downloads them
    url="${FREN_NMT_QUICK_URL:-http://storage.googleapis.com/download.tensorflow.org/data/fra-eng.zip}"
    echo "quick run: no $tarball here; the Tatoeba pairs come from $url"
  fi
  # The variant that learns most per CPU second, on the full run's path (pieces and the
  # pool) with fewer epochs, a smaller share of the pool an epoch, and fastText vectors of
  # 2 epochs, not 20 (on the pool's pieces 20 take minutes; BENCHMARKS.md, the quick run)
  set -- -S "data.url=$url" -S variants.transformer.train.epochs=4 \
    -S variants.transformer.train.pool=12000 -S embeddings.train.epochs=2 "$@"
  start=$(date +%s)
  dvc exp run "$@" evaluate@transformer
  echo "quick run: $(( $(date +%s) - start ))s; params.yaml now holds its settings" \
    "(git checkout params.yaml to go back)"
  fren-nmt compare --metrics metrics
  # Questions that are nowhere in the Tatoeba corpus, either side
  questions=$'Où habite ton frère ?\nQue veux-tu manger ce soir ?\nQui est ton professeur préféré ?'
  echo "quick run: three questions from outside the corpus, translated by models/transformer:"
  paste -d '\n' <(sed 's/^/  fr: /' <<<"$questions") \
    <(fren-nmt translate --model models/transformer --beam 5 <<<"$questions" | sed 's/^/  en: /')
  echo "Try your own in a browser: fren-nmt serve --model models/transformer" \
    "(then open http://127.0.0.1:8000/)"
  exit
fi
sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -S|--set-param) [ $# -ge 2 ] || { echo "error: $1 needs KEY=VALUE" >&2; exit 2; }
                    sets+=("$2"); shift 2 ;;
    *) echo "error: run.sh takes -S KEY=VALUE ... or --quick, not '$1' (other dvc exp run" \
            "options: run dvc exp run yourself)" >&2; exit 2 ;;
  esac
done
[ -n "${FREN_NMT_NO_INSTALL:-}" ] || bash scripts/install.sh
[ ${#sets[@]} = 0 ] || python3 scripts/merge_params.py params.yaml - "${sets[@]}"
bash scripts/repro_lanes.sh
fren-nmt compare --metrics metrics
