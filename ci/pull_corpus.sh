#!/usr/bin/env bash
# The corpus from a DVC remote instead of a download (CI, when the repository sets the variable
# FREN_NMT_DVC_REMOTE): the download stage's output that the committed dvc.lock names, pulled
# in a scratch clone so that the checkout stays as it was. Someone who ran the pipeline on the
# shared tarball put it there with `dvc push download` (docs/pipeline.md, Sharing what was
# trained). The caller checks the file's SHA-256.
#   bash ci/pull_corpus.sh REMOTE_URL DEST      # e.g. s3://bucket/fren-nmt corpus/x.tar
set -euo pipefail
[ $# = 2 ] || { echo "usage: bash ci/pull_corpus.sh REMOTE_URL DEST" >&2; exit 2; }
url="$1" dest="$2"
repo="$(cd "$(dirname "$0")/.." && pwd)"
case "$url" in  # DVC reads these through a plugin; a folder or http(s) needs none
  s3://*) plugin=dvc-s3 ;; gs://*) plugin=dvc-gs ;; azure://*) plugin=dvc-azure ;;
  ssh://*) plugin=dvc-ssh ;; *) plugin="" ;;
esac
[ -z "$plugin" ] || python3 -m pip install -q "$plugin"
work="$(mktemp -d -t fren-nmt-corpus-XXXXXX)"
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
cd "$work/clone"
dvc remote add -q --local --force -d ci "$url"
# the committed lock's own output, by its hash: no stage runs, whatever the code is now
if ! dvc pull download >/dev/null 2>"$work/pull.log"; then
  why="$( (grep -m1 '^ERROR' "$work/pull.log" || tail -n1 "$work/pull.log") |
    sed 's/^ERROR: //; s/ *:$//')"
  echo "error: pull_corpus: no data/raw/corpus of this dvc.lock from $url (${why:-no message});" \
    "\`dvc push download\` where the pipeline ran on the shared tarball puts it there" >&2
  exit 1
fi
mkdir -p "$(dirname "$dest")"
cp data/raw/corpus "$dest.part"
mv "$dest.part" "$dest"
echo "pull_corpus: $dest from $url ($(stat -c %s "$dest") bytes)"
