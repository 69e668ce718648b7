#!/usr/bin/env bash
# The metrics gate: run the small deterministic configuration (ci/params.yaml laid over
# params.yaml) from scratch in a scratch copy of the tracked tree, then compare its metrics
# with the committed baseline.
#   bash ci/pipeline.sh                    # run + check (what CI does)
#   bash ci/pipeline.sh --update-baseline  # run + write ci/baseline.json (commit it on purpose)
# The tarball comes from $FREN_NMT_TARBALL (default: ../shared/data/...tatoeba.tar).
# The instruction sets PyTorch's libraries use are pinned (ci/isa.env), so that the metrics are
# the same on every x86 CPU, AVX2-only or AVX-512 (benchmarks/isa_check.py shows it).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
set -a; . "$repo/ci/isa.env"; set +a
tarball="${FREN_NMT_TARBALL:-$repo/../shared/data/training-giga-fren-tatoeba.tar}"
[ -f "$tarball" ] || { echo "error: $tarball: no such file (set FREN_NMT_TARBALL)" >&2; exit 1; }
tarball="$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")"
work="$(mktemp -d -t fren-nmt-ci-XXXXXX)"
trap 'rm -rf "$work"' EXIT

cd "$repo"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work"
cd "$work"
python3 -m pipeline.params merge params.yaml "$repo/ci/params.yaml" "data.url=$tarball"
git init -q && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm ci
rm -rf metrics/*.json
start=$(date +%s)
if ! dvc repro -q; then  # a stage crashed: say which ones did not finish
  echo "ci pipeline: dvc repro failed (error above); stages not reproduced:" >&2
  dvc status 2>/dev/null | grep -E '^[A-Za-z0-9_@.-]+:$' | tr -d : | sed 's/^/  /' >&2 || true
  exit 1
fi
echo "ci pipeline: dvc repro took $(( $(date +%s) - start ))s"
mkdir -p "$repo/ci/last"
cp metrics/*.json "$repo/ci/last/"  # kept for a look after a failure (git-ignored)
if [ "${1:-}" = "--update-baseline" ]; then
  fren-nmt update-baseline --metrics metrics --baseline "$repo/ci/baseline.json"
else
  fren-nmt check-metrics --metrics metrics --baseline "$repo/ci/baseline.json" \
    --tolerances "$repo/ci/tolerances.yaml"
fi
