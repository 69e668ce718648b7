#!/usr/bin/env bash
# The README's quick start as a new user meets it off-site: a clone of the committed tree with
# nothing beside it, a fresh virtual environment, and the corpus served over HTTP on the
# loopback, in the layout of the file run.sh downloads by default (the Keras tutorial's
# fra-eng.zip, made on a Mac: resource forks first). The zip is rebuilt from the shared Tatoeba
# tarball in a scratch folder (tests/support/corpus.py's make_zip), never kept.
#   bash ci/quickstart.sh            # what .ci/run does: `bash run.sh --quick` exactly
#   bash ci/quickstart.sh -S ...     # extra arguments go to run.sh --quick
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tarball="${FREN_NMT_TARBALL:-$repo/../shared/data/training-giga-fren-tatoeba.tar}"
[ -f "$tarball" ] || { echo "error: $tarball: no such file (set FREN_NMT_TARBALL)" >&2; exit 1; }
tarball="$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")"
work="$(mktemp -d -t fren-nmt-quickstart-XXXXXX)"
server=""
trap '[ -z "$server" ] || kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

mkdir "$work/site"
FREN_NMT_TARBALL="$tarball" python3 -c 'import sys; from pathlib import Path
sys.path.insert(0, sys.argv[1])
from support.corpus import shared_pairs_zip
shared_pairs_zip(Path(sys.argv[2]))' "$repo/tests" "$work/site/fra-eng.zip"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$work/site" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do
  port="$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$work/server.log")"
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "error: the local HTTP server did not start" >&2; exit 1; }

git clone -q "$repo" "$work/clone"
python3 -m venv "$work/venv"
cd "$work/clone"
start=$(date +%s)
env -u FREN_NMT_TARBALL -u FREN_NMT_NO_INSTALL -u PYTHONPATH \
  VIRTUAL_ENV="$work/venv" PATH="$work/venv/bin:$PATH" \
  FREN_NMT_QUICK_URL="http://127.0.0.1:$port/fra-eng.zip" \
  bash run.sh --quick "$@" 2>&1 | tee "$work/run.log"
for want in "pairs in fra-eng/fra.txt)" "filter: read fra-eng/fra.txt of data/raw/corpus" \
    "  fr: Où habite ton frère ?" "Try your own in a browser: fren-nmt serve --model models/transformer"; do
  grep -qF "$want" "$work/run.log" || { echo "quickstart: no line '$want'" >&2; exit 1; }
done
[ "$(grep -c '^  en: ' "$work/run.log")" = 3 ] ||
  { echo "quickstart: not three translations ('  en: ...' lines) in its output" >&2; exit 1; }
echo "quickstart: bash run.sh --quick passed off-site in $(( $(date +%s) - start ))s" \
  "(fresh clone and virtual environment, install included)"
