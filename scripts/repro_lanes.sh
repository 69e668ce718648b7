#!/usr/bin/env bash
# `dvc repro` on 2 cores, with the variants that train on one CPU thread two at a time.
#   bash scripts/repro_lanes.sh [-q]
# The data stages run first. Then the variants whose runtime.threads is 1 (params.yaml: the
# GRU family; the gate's ci/params.yaml: all six; BENCHMARKS.md, "Two lanes") run in two
# lanes, this workspace and a scratch copy of it, each lane taking the next variant left, the
# most epochs first. The copy's outputs come back here and `dvc commit` records them in
# dvc.lock: the same commands, code, params and inputs as a serial `dvc repro`, so the same
# numbers. Last, a plain `dvc repro` runs what is left (the other variants, curves) with every
# core.
set -euo pipefail
quiet=()
[ "${1:-}" = "-q" ] && quiet=(-q)
dvc repro "${quiet[@]}" embeddings truecase subwords
mapfile -t lane < <(python3 -c '
from pipeline.params import load_params, variant_configs, variant_runtime
p = load_params("params.yaml")
one = [v for v in p["variants"] if variant_runtime(p, v).threads == 1]
print(*sorted(one, key=lambda v: -variant_configs(p, v)[1].epochs), sep="\n")')
if [ ${#lane[@]} -gt 1 ]; then
  # beside the workspace (.dvc/tmp, which git and DVC ignore), so that hard links can reach
  mkdir -p .dvc/tmp && copy="$(mktemp -d "$PWD/.dvc/tmp/lane-XXXXXX")"
  trap 'rm -rf "$copy" "$copy".*' EXIT
  mkdir "$copy.claims"
  # the copy: git's files as they are now (dvc.lock, params.yaml; those deleted here left
  # out), git itself, the data stages' metrics, and data/ and the DVC cache hard-linked (the
  # lanes only read them: DVC replaces a file, never writes into it; without the cache, DVC
  # would see the data stages' outputs as "not in cache" and run them again)
  { git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do [ ! -e "$f" ] || printf '%s\0' "$f"; done
    printf '%s\0' .git metrics; } | tar --null -T - -cf - | tar -xf - -C "$copy"
  for d in data .dvc/cache; do  # copied where hard links cannot reach (another file system)
    [ ! -d "$d" ] || cp -al "$d" "$copy/$d" 2>/dev/null ||
      { rm -rf "${copy:?}/$d" && cp -a "$d" "$copy/$d"; }
  done
  run_lane() {  # run_lane DIR: until no variant is left, claim the next one, reproduce it there
    local v
    for v in "${lane[@]}"; do
      mkdir "$copy.claims/$v" 2>/dev/null || continue
      echo "$1" >"$copy.claims/$v/where"
      (cd "$1" && dvc repro "${quiet[@]}" "evaluate@$v") || return 1
    done
  }
  failed=""
  run_lane "$PWD" >"$copy.here.log" 2>&1 & here=$!
  run_lane "$copy" >"$copy.there.log" 2>&1 || failed=1
  wait "$here" || failed=1
  cat "$copy.here.log" "$copy.there.log"  # each lane's lines in one piece
  [ -z "$failed" ] || { echo "error: a variant failed in its lane (above)" >&2; exit 1; }
  there=()
  for v in "${lane[@]}"; do
    [ "$(cat "$copy.claims/$v/where")" != "$copy" ] || there+=("$v")
  done
  # what dvc.yaml's train@ and evaluate@ write (outs, metrics, plots), for each variant the
  # copy ran: back here, then recorded
  mapfile -t outs < <(python3 -c '
import sys, yaml
stages = yaml.safe_load(open("dvc.yaml"))["stages"]
outs = [next(iter(o)) if isinstance(o, dict) else o for s in ("train", "evaluate")
        for kind in ("outs", "metrics", "plots") for o in stages[s]["do"].get(kind) or []]
for v in sys.argv[1:]:
    print(*(o.replace("${key}", v) for o in outs), sep="\n")' "${there[@]}")
  for out in "${outs[@]}"; do
    rm -rf "$out" && mkdir -p "$(dirname "$out")" && cp -a "$copy/$out" "$out"
  done
  for v in "${there[@]}"; do dvc commit -f -q "train@$v" "evaluate@$v"; done
fi
dvc repro "${quiet[@]}"
