#!/usr/bin/env bash
# The metrics gate: run the small CI configuration (ci/params.yaml laid over params.yaml) from
# scratch in a scratch copy of the tracked tree (scripts/repro_lanes.sh: the data stages, then
# the variants two at a time), then check its metrics against the baseline's noise bands
# (pipeline/evaluation/gate/ says how they are made and read), and, where a variant trained
# exactly as the baseline's seed 0 did, every figure and scored line against ci/exact.json.
#   bash ci/pipeline.sh                    # run + check (what CI does): fails on WORSE,
#                                          # BETTER, CHANGED or MISSING
#   bash ci/pipeline.sh --seed N           # the same with train.seed N (a harmless change)
#   bash ci/pipeline.sh --update-baseline  # run seeds $SEEDS (default 0 1 2 3 4), write
#                                          # ci/baseline.json, ci/tolerances.yaml and
#                                          # ci/exact.json (seed 0's run to the last digit and
#                                          # line; commit them on purpose, with the reason)
# Leaves ci/last/: report.md (the pull request comment), curves.png, gate.log, and each run's
# metrics and dvclive curves (git-ignored). The tarball comes from $FREN_NMT_TARBALL (default
# ../shared/data/...tatoeba.tar). The instruction sets PyTorch's libraries use are pinned
# (ci/isa.env), so that the metrics are the same on every x86 CPU, AVX2-only or AVX-512.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
seed="" update=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "error: --seed needs a whole number" >&2; exit 2; }
            seed="$2"; shift 2 ;;
    --update-baseline) update=1; shift ;;
    *) echo "error: unknown argument '$1' (--seed N | --update-baseline)" >&2; exit 2 ;;
  esac
done
set -a; . "$repo/ci/isa.env"; set +a
tarball="${FREN_NMT_TARBALL:-$repo/../shared/data/training-giga-fren-tatoeba.tar}"
[ -f "$tarball" ] || { echo "error: $tarball: no such file (set FREN_NMT_TARBALL)" >&2; exit 1; }
tarball="$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")"
work="$(mktemp -d -t fren-nmt-ci-XXXXXX)"
trap 'rm -rf "$work"' EXIT
last="$repo/ci/last"
rm -rf "$last" && mkdir -p "$last"

cd "$repo"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work"
cd "$work"
python3 "$repo/scripts/merge_params.py" params.yaml "$repo/ci/params.yaml" "data.url=$tarball"
git init -q && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm ci
rm -rf metrics/*.json dvclive

run_seed() {  # run_seed SEED: the pipeline with train.seed SEED; keeps its outputs in ci/last
  python3 "$repo/scripts/merge_params.py" params.yaml - "train.seed=$1"
  local start=$SECONDS v
  # The data stages once, then the variants two at a time, a core each (ci/params.yaml gives
  # every variant one PyTorch thread: these small models leave a second thread mostly idle,
  # BENCHMARKS.md, "The metrics gate"), then curves: scripts/repro_lanes.sh.
  # The numbers are those of a serial `dvc repro` with the same params.
  if ! bash scripts/repro_lanes.sh -q; then
    echo "ci pipeline: the pipeline failed (error above); stages not reproduced:" >&2
    dvc status 2>/dev/null | grep -E '^[A-Za-z0-9_@.-]+:$' | tr -d : | sed 's/^/  /' >&2
    exit 1
  fi
  echo "ci pipeline: seed $1: dvc repro took $(( SECONDS - start ))s"
  mkdir -p "$last/seed-$1"
  cp metrics/*.json "$last/seed-$1/"
  for v in reports/*/; do  # the scored files, which check-metrics scores again
    v="$(basename "$v")"
    mkdir -p "$last/seed-$1/translations/$v" && cp "reports/$v/translations/"*.txt "$last/seed-$1/translations/$v/"
  done
  cp -r dvclive "$last/seed-$1/dvclive"
}

if [ -n "$update" ]; then
  runs=()
  for s in ${SEEDS:-0 1 2 3 4}; do  # the data stages run once: only training reads the seed
    run_seed "$s"
    runs+=(--run "$s=$last/seed-$s:$last/seed-$s/dvclive")
  done
  fren-nmt update-baseline "${runs[@]}" --baseline "$repo/ci/baseline.json" \
    --tolerances "$repo/ci/tolerances.yaml" --exact "$repo/ci/exact.json"
  exit
fi
seed="${seed:-$(python3 -c 'from pipeline.params import load_params
print(load_params("params.yaml")["train"]["seed"])')}"
run_seed "$seed"
fren-nmt check-metrics --metrics "$last/seed-$seed" --baseline "$repo/ci/baseline.json" \
  --tolerances "$repo/ci/tolerances.yaml" --exact "$repo/ci/exact.json" \
  --report "$last/report.md" \
  --curves "$last/seed-$seed/dvclive" \
  --what "train.seed $seed, $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(
    git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ' with uncommitted changes')" \
  2>&1 | tee "$last/gate.log"
