#!/usr/bin/env bash
# bash benchmarks/gpu_prepare.sh [DATA]: copy what benchmarks/gpu_session.sh trains on into
# .gpu/processed, the folder the device tool carries (at most 64 MiB with the working tree).
#
# DATA is a processed folder (default data/processed): `dvc repro subwords embeddings` makes
# it, on the shared Tatoeba tarball or on one of Giga-fren's size (benchmarks/bench_full_size.py,
# served over local HTTP: BENCHMARKS.md, "The data stages at Giga-fren's size"). Only the files
# the default variants read travel: the words' ids, vectors and vocabularies, and the pieces'
# with the pool's ids (not pool.parquet's text, nor the SentencePiece models, which the
# default training does not read).
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-data/processed}"
words=(ids.parquet emb_fr.npy emb_en.npy vocab_fr.json vocab_en.json)
for f in "${words[@]}" "${words[@]/#/pieces/}" pieces/pool_ids.parquet; do
  [ -f "$data/$f" ] || { echo "gpu_prepare: $data/$f: missing (run \`dvc repro subwords embeddings\` first)" >&2; exit 1; }
done
rm -rf .gpu/processed.part && mkdir -p .gpu/processed.part/pieces
for f in "${words[@]}"; do cp "$data/$f" .gpu/processed.part/; done
for f in "${words[@]}" pool_ids.parquet; do cp "$data/pieces/$f" .gpu/processed.part/pieces/; done
rm -rf .gpu/processed && mv .gpu/processed.part .gpu/processed
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude
kib=$(du -sk .gpu | cut -f1)
echo "gpu_prepare: .gpu/processed from $data, $(( kib / 1024 )) MiB"
if [ "$kib" -gt $(( 56 * 1024 )) ]; then
  echo "gpu_prepare: .gpu is over 56 MiB: with the working tree it would pass the carry's 64 MiB" >&2
  exit 1
fi
