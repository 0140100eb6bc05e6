#!/usr/bin/env bash
# Files what one device call of scripts/gpu_issue5.sh brought back into
# benchmarks/results/, under the names earlier runs used, so that a session
# with a GPU spends its time on reading the results, not on copying them:
#
#   scripts/gpu_issue5_collect.sh [--results DIR] [--force] FILES_AT
#
# FILES_AT is where the device tool put the call's files (its files_at):
# gpu-issue5.tgz (every log, JSON file and profile report) beside the
# report. From the tarball it writes, DATE the report's date (with the
# part, "2026-12-08-part1", for a call of KVC_GPU_ISSUE5_PART=1 or 2):
#   gpu-attention-DATE.md, gpu-attention-DATE-kvc.json,
#   gpu-attention-DATE-sdpa.json   the benchmark's report (with the profile's
#                                  table) and its JSON files, as they are;
#   gpu-check-DATE.log             the check's log (every step's rows, the
#                                  sanitizer runs' tails, the totals);
#   gpu-sanitizer-DATE.log         each compute-sanitizer log whole;
#   gpu-bench-DATE.log             the benchmark script's log (build, rows);
#   gpu-profile-DATE-ncu.txt       the ncu reports one after the other under
#                                  "===== NAME =====" lines, which
#                                  benchmarks/gpu/ncu_summary.py reads.
# It writes nothing over an existing file unless --force (a second run of
# the day: move the first one's files aside first). Prints the check's
# totals and the report's targets. Exits 1 when the bundle is missing or
# incomplete, or a file exists, 2 on bad arguments.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RESULTS="$ROOT/benchmarks/results"
FORCE=0
usage() {
  echo "usage: gpu_issue5_collect.sh [--results DIR] [--force] FILES_AT" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --results) [ $# -ge 2 ] || usage; RESULTS="$2"; shift 2 ;;
    --force) FORCE=1; shift ;;
    -*) usage ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || usage
FILES_AT="$1"
say() { echo "gpu_issue5_collect: $*"; }
fail() { say "$*"; exit 1; }

[ -f "$FILES_AT/gpu-issue5.tgz" ] || fail "no gpu-issue5.tgz in $FILES_AT"
UNPACKED="$(mktemp -d)"
trap 'rm -rf "$UNPACKED"' EXIT
tar xzf "$FILES_AT/gpu-issue5.tgz" -C "$UNPACKED" ||
  fail "$FILES_AT/gpu-issue5.tgz does not unpack"
# The tarball holds one directory, the call's staging directory.
mapfile -t dirs < <(find "$UNPACKED" -mindepth 1 -maxdepth 1 -type d)
[ "${#dirs[@]}" -eq 1 ] || fail "gpu-issue5.tgz holds ${#dirs[@]} directories, expected 1"
BUNDLE="${dirs[0]}"
# The report of a call in parts has its part in its name
# (gpu-attention-<date>-part1.md), and so will every file collected here.
mapfile -t reports < <(find "$BUNDLE" -maxdepth 1 \
  \( -name 'gpu-attention-????-??-??.md' -o -name 'gpu-attention-????-??-??-part?.md' \))
[ "${#reports[@]}" -eq 1 ] ||
  fail "gpu-issue5.tgz holds ${#reports[@]} gpu-attention-<date>[-part<N>].md reports, expected 1"
report="$(basename "${reports[0]}")"
DATE="${report#gpu-attention-}"
DATE="${DATE%.md}"
for name in "gpu-attention-$DATE-kvc.json" gpu_attention_check.log \
    gpu_attention_bench.log; do
  [ -f "$BUNDLE/$name" ] || fail "no $name in gpu-issue5.tgz"
done

# What goes where: "copy DESTINATION SOURCE" or "concat DESTINATION
# SOURCE...", the sources one after the other, each under its name.
declare -a plan=()
plan+=("copy gpu-attention-$DATE.md $report")
plan+=("copy gpu-attention-$DATE-kvc.json gpu-attention-$DATE-kvc.json")
[ -f "$BUNDLE/gpu-attention-$DATE-sdpa.json" ] &&
  plan+=("copy gpu-attention-$DATE-sdpa.json gpu-attention-$DATE-sdpa.json")
plan+=("copy gpu-check-$DATE.log gpu_attention_check.log")
plan+=("copy gpu-bench-$DATE.log gpu_attention_bench.log")
mapfile -t sanitizer_logs < <(cd "$BUNDLE" && find . -maxdepth 1 -name 'sanitizer_*.log' | sed 's|^\./||' | sort)
[ "${#sanitizer_logs[@]}" -gt 0 ] &&
  plan+=("concat gpu-sanitizer-$DATE.log ${sanitizer_logs[*]}")
mapfile -t ncu_reports < <(cd "$BUNDLE" && find . -maxdepth 1 -name 'ncu-*.txt' | sed 's|^\./||' | sort)
[ "${#ncu_reports[@]}" -gt 0 ] &&
  plan+=("concat gpu-profile-$DATE-ncu.txt ${ncu_reports[*]}")

mkdir -p "$RESULTS"
if [ "$FORCE" != 1 ]; then
  for entry in "${plan[@]}"; do
    read -r _ destination _ <<< "$entry"
    [ -e "$RESULTS/$destination" ] &&
      fail "$RESULTS/$destination exists (--force overwrites it)"
  done
fi
for entry in "${plan[@]}"; do
  read -r how destination sources <<< "$entry"
  read -r -a sources <<< "$sources"
  if [ "$how" = copy ]; then
    cp "$BUNDLE/${sources[0]}" "$RESULTS/$destination"
  else
    for source in "${sources[@]}"; do
      stem="${source%.*}"
      echo "===== ${stem#ncu-} ====="
      cat "$BUNDLE/$source"
    done > "$RESULTS/$destination"
  fi
  say "$RESULTS/$destination"
done
say "check: $(tail -n 1 "$BUNDLE/gpu_attention_check.log")"
grep -A 12 "^## Targets" "$BUNDLE/$report"
