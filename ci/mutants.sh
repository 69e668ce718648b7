#!/usr/bin/env bash
# The gate's battery (not run by .ci/run: about 4 minutes a row). Each patch in ci/mutations/
# is a bug someone could plausibly commit, and the gate must fail on it; the gate must pass
# with another train.seed and with each patch in ci/harmless/ (changes that only move
# rounding). Every row runs `bash ci/pipeline.sh` in a scratch copy of the tracked tree with
# the patch applied, against the committed baseline. Prints a Markdown table; each row's
# gate log and report stay in ci/last-mutants/NAME/.
#   bash ci/mutants.sh                 # every mutation, then the harmless checks
#   bash ci/mutants.sh NAME...         # these (a mutation's or harmless patch's file name
#                                      # without .patch, or seed-N)
#   bash ci/mutants.sh --recheck [NAME...]  # judge the rows kept in ci/last-mutants again
#                                      # against the committed baseline and bands (after the
#                                      # bands changed: the runs themselves are deterministic)
set -uo pipefail
recheck=""
[ "${1:-}" != "--recheck" ] || { recheck=1; shift; }
repo="$(cd "$(dirname "$0")/.." && pwd)"
tarball="${FREN_NMT_TARBALL:-$repo/../shared/data/training-giga-fren-tatoeba.tar}"
[ -f "$tarball" ] || { echo "error: $tarball: no such file (set FREN_NMT_TARBALL)" >&2; exit 1; }
export FREN_NMT_TARBALL="$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")"
out="$repo/ci/last-mutants"
mkdir -p "$out"
if [ $# -eq 0 ]; then
  set -- $(cd "$repo/ci" && ls mutations/*.patch harmless/*.patch | sed 's|.*/||; s|\.patch$||') seed-7
fi
rows=() failures=0
judge() {  # judge NAME WANT CODE LOG SECONDS: add the row; the log holds check-metrics' line
  local got=pass what line
  [ "$3" -eq 0 ] || got=fail
  case "$2" in fail) what=caught ;; *) what=passed ;; esac
  [ "$got" = "$2" ] || { failures=$(( failures + 1 ))
    case "$2" in fail) what="NOT caught" ;; *) what="FAILED" ;; esac; }
  line="$(grep -h '^check-metrics: ' "$4" | grep -v 'report in' | tail -1 | sed 's/^check-metrics: //')"
  [ -n "$line" ] || line="the pipeline crashed: $(grep -m1 -iE 'error|exception' "$4" | cut -c1-120)"
  rows+=("| $1 | $what | ${line//|/\\|} | $5s |")
  echo "$1: the gate ${got}ed ($5s): $line"
}
for name in "$@"; do
  if [ -f "$repo/ci/mutations/$name.patch" ]; then patch="$repo/ci/mutations/$name.patch" want=fail
  elif [ -f "$repo/ci/harmless/$name.patch" ]; then patch="$repo/ci/harmless/$name.patch" want=pass
  elif [[ "$name" =~ ^seed-([0-9]+)$ ]]; then patch="" want=pass
  else echo "error: $name: no ci/mutations/$name.patch, ci/harmless/$name.patch or seed-N" >&2
       exit 2
  fi
  if [ -n "$recheck" ]; then
    if [ ! -f "$out/$name/run.log" ]; then  # never run here: say so, and count it
      rows+=("| $name | not run | - | - |"); failures=$(( failures + 1 )); continue
    fi
    kept="$(ls -d "$out/$name"/seed-*/ 2>/dev/null | head -1)"
    log="$out/$name/run.log" code=1  # the pipeline crashed: nothing to judge again
    if [ -n "$kept" ]; then
      log="$out/$name/recheck.log"
      fren-nmt check-metrics --metrics "$kept" --baseline "$repo/ci/baseline.json" \
        --tolerances "$repo/ci/tolerances.yaml" --exact "$repo/ci/exact.json" >"$log" 2>&1
      code=$?
    fi
    judge "$name" "$want" "$code" "$log" "$(cat "$out/$name/seconds" 2>/dev/null || echo '?')"
    continue
  fi
  work="$(mktemp -d -t fren-nmt-mutant-XXXXXX)"
  (cd "$repo" && git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work")
  args=()
  [ -z "$patch" ] || (cd "$work" && git apply "$patch") || { echo "error: $patch does not apply" >&2; exit 1; }
  [ -n "$patch" ] || args=(--seed "${BASH_REMATCH[1]}")
  (cd "$work" && git init -q && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm "$name")
  echo "=== $name (the gate must ${want}) ==="
  start=$SECONDS
  bash "$work/ci/pipeline.sh" "${args[@]}" >"$work/run.log" 2>&1
  code=$?
  took=$(( SECONDS - start ))
  rm -rf "${out:?}/$name" && mkdir -p "$out/$name" && cp "$work/run.log" "$out/$name/"
  cp -r "$work/ci/last/." "$out/$name/" 2>/dev/null
  echo "$took" >"$out/$name/seconds"
  judge "$name" "$want" "$code" "$work/run.log" "$took"
  rm -rf "$work"
done
echo
echo "| row | result | what the gate said | time |"
echo "|---|---|---|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "mutants: $(( ${#rows[@]} - failures )) of ${#rows[@]} rows as they should be" \
  "($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(date +%Y-%m-%d))"
[ "$failures" -eq 0 ]
