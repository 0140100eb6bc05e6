#!/usr/bin/env bash
# A rehearsal of issue 5's device calls without a GPU: runs
# scripts/gpu_issue5.sh itself (check, benchmark, profile, packing of $OUT)
# as the device tool would, its part 1 and then its part 2
# (KVC_GPU_ISSUE5_PART), each collected by scripts/gpu_issue5_collect.sh, with the programs' emulated builds
# (KVC_GPU_PROGRAMS=emu: the same kvc-gpu-pipeline code, its kernels run by
# kvc's GPU emulator) and stand-ins for nvidia-smi, compute-sanitizer and
# ncu (scripts/gpu_rehearsal/), at short lengths and on a few variants.
# What it finds broken (a script's flow, its budget arithmetic, a variant
# name that no longer exists, the programs' arguments, a report that does
# not render, more files in $OUT than the tool returns) would otherwise
# cost the one GPU run a session gets. Its times and its report mean
# nothing and stay in WORKDIR.
#
#   scripts/gpu_issue5_rehearsal.sh WORKDIR
#
# WORKDIR holds the artifacts of scripts/gpu_attention_build.sh (the full
# build, with its emulator objects) in WORKDIR/artifacts, as
# scripts/gpu_programs_dry_run.sh leaves them; the rehearsal configures and
# builds its own WORKDIR/rehearsal/build through the scripts. Needs the CUDA
# toolkit (CUDA_HOME) for the configure and KVC_GPU_EMULATOR (default
# build/lib/GPUEmulator/libkvc_gpu_emulator.a). Exits 1 on any failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:?usage: gpu_issue5_rehearsal.sh WORKDIR}"
say() { echo "gpu_issue5_rehearsal: $*"; }
# To stderr: some checks run in $(...) and print what they found.
fail() { say "FAIL: $*" >&2; exit 1; }

export KVC_GPU_EMULATOR="${KVC_GPU_EMULATOR:-$ROOT/build/lib/GPUEmulator/libkvc_gpu_emulator.a}"
[ -f "$KVC_GPU_EMULATOR" ] || fail "no GPU emulator at $KVC_GPU_EMULATOR"
[ -f "$WORK/artifacts/manifest.txt" ] ||
  fail "no $WORK/artifacts/manifest.txt (run scripts/gpu_attention_build.sh)"

REHEARSAL="$WORK/rehearsal"
LOG="$REHEARSAL/gpu_issue5.log"
mkdir -p "$REHEARSAL"
: > "$LOG"

# A plain check of three variants (CUDA-core, both tensor-core passes,
# fused combine), three benchmark variants, batch 8 before batch 1; the
# sanitizer runs, the append check and the profile's variants are the
# device calls' own. The emulator is slower than a GPU, and CI runs this
# beside other programs: the budgets are ~2.7x the device calls', so that
# nothing is cut but what is meant to be.
CHECK_ONLY="kf16_vf16_r128_b8_h16x2_d128,k2c32_v2t32_r128_b8_h16x4_d128_mma_vmma\$,k2c32_v2t32_r128_b8_h16x4_d128_fused"
BENCH_ONLY="bench_k2c32_v2t32_r128_b1_h32x8_d128\$,bench_k2c32_v2t32_r128_b1_h32x8_d128_mma_vmma_fused\$,bench_k2c128_v2t128_r128_b8_h32x8_d128_p128_mma_vmma_l2bulk_ks2_vs2\$"
# Runs part $1 with the settings that follow, its $OUT in
# $REHEARSAL/out$1; prints the log on failure.
run_part() {
  local part="$1" start=$SECONDS status
  shift
  rm -rf "$REHEARSAL/out$part" "$REHEARSAL/kvc-issue5-out$part"
  mkdir -p "$REHEARSAL/out$part"
  (
    cd "$ROOT" &&
    env PATH="$ROOT/scripts/gpu_rehearsal:$PATH" \
      OUT="$REHEARSAL/out$part" \
      KVC_GPU_ISSUE5_STAGING="$REHEARSAL/kvc-issue5-out$part" \
      KVC_GPU_ISSUE5_PART="$part" \
      KVC_GPU_PROGRAMS=emu \
      KVC_ATTENTION_ARTIFACTS="$WORK/artifacts" \
      KVC_GPU_CHECK_BUILD_DIR="$REHEARSAL/build" \
      COMPUTE_SANITIZER="$ROOT/scripts/gpu_rehearsal/compute-sanitizer" \
      NCU="$ROOT/scripts/gpu_rehearsal/ncu" \
      KVC_GPU_CHECK_ONLY="$CHECK_ONLY" \
      KVC_GPU_BENCH_ONLY="$BENCH_ONLY" \
      KVC_GPU_BENCH_REPS=2 KVC_GPU_BENCH_BATCHES=8,1 \
      KVC_GPU_ISSUE5_BENCH_LENGTHS=128 \
      "$@" scripts/gpu_issue5.sh
  ) > "$REHEARSAL/gpu_issue5_part$part.log" 2>&1
  status=$?
  cat "$REHEARSAL/gpu_issue5_part$part.log" >> "$LOG"
  say "part $part: scripts/gpu_issue5.sh exited with $status after" \
      "$((SECONDS - start)) s (log: $REHEARSAL/gpu_issue5_part$part.log)"
  if [ "$status" -ne 0 ]; then
    cat "$REHEARSAL/gpu_issue5_part$part.log"
    fail "part $part: the device call's script failed"
  fi
}

# What the device tool would bring back of part $1: at most 8 files, the
# tarball, the two logs and the part's report (printed); the tarball
# unpacked into $REHEARSAL/unpacked$1.
returned() {
  local part="$1" out="$REHEARSAL/out$1" files report
  mapfile -t files < <(cd "$out" && find . -type f | sed 's|^\./||' | sort)
  [ "${#files[@]}" -le 8 ] || fail "part $part: $out holds ${#files[@]} files (the tool returns 8)"
  for name in gpu-issue5.tgz gpu_attention_check.log gpu_attention_bench.log; do
    [ -f "$out/$name" ] || fail "part $part: no $name in \$OUT"
  done
  report="$(ls "$out"/gpu-attention-*-part"$part".md 2>/dev/null | head -n1)"
  [ -n "$report" ] || fail "part $part: no gpu-attention-<date>-part$part.md in \$OUT"
  grep -q "^## Targets" "$report" || fail "part $part: the report has no targets section"
  grep -q "kvc rehearsal stand-in" "$report" ||
    fail "part $part: the report does not name the stand-in device"
  rm -rf "$REHEARSAL/unpacked$part" && mkdir -p "$REHEARSAL/unpacked$part"
  tar xzf "$out/gpu-issue5.tgz" -C "$REHEARSAL/unpacked$part" ||
    fail "part $part: gpu-issue5.tgz does not unpack"
  echo "$report"
}

# Part $1's check total, "N passed, N failed", which must end its log.
check_summary() {
  local log="$REHEARSAL/out$1/gpu_attention_check.log" summary
  summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n1)"
  [ "$summary" = "$(tail -n1 "$log")" ] ||
    fail "part $1: the check's log does not end with its summary"
  echo "$summary"
}

# The benchmark's JSON in bundle $1: every row of BENCH_ONLY measured,
# batch 8 first.
bench_rows() {
  local kvc_json
  kvc_json="$(ls "$1"/gpu-attention-*-kvc.json 2>/dev/null | head -n1)"
  [ -n "$kvc_json" ] || fail "no kvc JSON in $1"
  python3 - "$kvc_json" "$BENCH_ONLY" <<'PY' || fail "the benchmark's JSON in $1"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
wanted = [name.rstrip("$") for name in sys.argv[2].split(",")]
names = sorted(r["name"] for r in rows)
assert names == sorted(wanted), f"rows {names}, expected {sorted(wanted)}"
order = [r["batch"] for r in rows]
assert order == sorted(order, reverse=True), f"batches in the order {order}"
bad = [r["name"] for r in rows
       if not (r["ok"] and r["gpu_us_median"] > 0
               and r["append_gpu_us_per_step"] > 0)]
assert not bad, f"rows without a measurement: {bad}"
PY
}

# Files part $1's bundle with scripts/gpu_issue5_collect.sh into
# $REHEARSAL/results (both parts into the one directory, as a session
# would) and checks that names $2... were written; prints the date and part.
collect() {
  local part="$1" report tag
  shift
  report="$(ls "$REHEARSAL/out$part"/gpu-attention-*-part"$part".md | head -n1)"
  tag="$(basename "$report" .md)"
  tag="${tag#gpu-attention-}"
  "$ROOT/scripts/gpu_issue5_collect.sh" --results "$REHEARSAL/results" \
    "$REHEARSAL/out$part" > "$REHEARSAL/collect$part.log" 2>&1 ||
    { cat "$REHEARSAL/collect$part.log" >&2; fail "part $part: gpu_issue5_collect.sh"; }
  for name in "gpu-attention-$tag.md" "gpu-attention-$tag-kvc.json" \
      "gpu-check-$tag.log" "gpu-bench-$tag.log" "$@"; do
    [ -s "$REHEARSAL/results/${name//TAG/$tag}" ] || fail "part $part: collect: no ${name//TAG/$tag}"
  done
  cmp -s "$REHEARSAL/results/gpu-check-$tag.log" "$REHEARSAL/out$part/gpu_attention_check.log" ||
    fail "part $part: collect: the check's log differs"
  echo "$tag"
}
rm -rf "$REHEARSAL/results"

# --- Part 1: the check's coverage, the target rows, no profile -------------
run_part 1 KVC_GPU_ISSUE5_BUDGET=1100 KVC_GPU_CHECK_SHARE=800 \
  KVC_GPU_ISSUE5_CHECK_LENGTHS=300 KVC_GPU_CHECK_LONG=500
report1="$(returned 1)" || exit 1
packed1="$REHEARSAL/unpacked1/kvc-issue5-out1"
check_log="$REHEARSAL/out1/gpu_attention_check.log"
summary="$(check_summary 1)" || exit 1
append_variants="$(wc -l < "$WORK/artifacts/append/append_manifest.txt")"
# The device call's long-run variants, at 500 here: each name one row.
long_names="$(sed -nE 's/^gpu_attention_check: long run: (.*) at S = 500$/\1/p' "$check_log")"
[ -n "$long_names" ] || fail "part 1: check: no long run"
IFS=, read -r -a long_list <<< "$long_names"
for name in "${long_list[@]}"; do
  rows="$(grep -cE "^\| ${name%\$} \| 500 \| .* \| PASS \|$" "$check_log")"
  [ "$rows" -eq 1 ] || fail "part 1: check: $rows passing long-run rows of ${name%\$}"
done
# 3 variants at the one length, every append variant, 6 sanitizer runs,
# the long run.
expected=$((3 + append_variants + 6 + ${#long_list[@]}))
[ "$summary" = "$expected passed, 0 failed" ] ||
  fail "part 1: check: '$summary', expected '$expected passed, 0 failed'"
clean="$(grep -c ': clean$' "$check_log")"
[ "$clean" -eq 6 ] || fail "part 1: check: $clean sanitizer runs clean, expected 6"
# Each step's time, in the order the steps ran.
steps="$(sed -nE 's/^gpu_attention_check: time: (.*): [0-9]+ s$/\1/p' "$check_log" | paste -sd,)"
[ "$steps" = "plain run at S = 300,append run,memcheck,racecheck,synccheck,initcheck,append memcheck,append racecheck,long run" ] ||
  fail "part 1: check: step times of '$steps'"
for tool in memcheck racecheck synccheck initcheck append_memcheck append_racecheck; do
  [ -f "$packed1/sanitizer_$tool.log" ] || fail "part 1: no sanitizer_$tool.log in gpu-issue5.tgz"
done
bench_rows "$packed1"
grep -q "^gpu_issue5: no profile in part 1" "$REHEARSAL/gpu_issue5_part1.log" ||
  fail "part 1: did not skip the profile"
! grep -q "^## Profile" "$report1" || fail "part 1: the report has a profile section"
tag1="$(collect 1 "gpu-sanitizer-TAG.log")" || exit 1
sections="$(grep -c '^===== sanitizer_' "$REHEARSAL/results/gpu-sanitizer-$tag1.log")"
[ "$sections" -eq 6 ] || fail "part 1: collect: $sections sanitizer logs, expected 6"
[ ! -e "$REHEARSAL/results/gpu-profile-$tag1-ncu.txt" ] || fail "part 1: collect: a profile"

# --- Part 2: a repeat of the check, the option rows, the profile ------------
# The check's one length, 16384, as a repeat: its share is too short for
# the three variants there in the emulator (19 s at 4096 on 2 cores, 9 s
# at 300), so the budget cuts the run, which counts the rows it finished
# and not the cut, as a short share would on the GPU.
run_part 2 KVC_GPU_ISSUE5_BUDGET=700 KVC_GPU_CHECK_SHARE=50 \
  KVC_GPU_PROFILE_SHARE=300 KVC_GPU_ISSUE5_CHECK_LENGTHS=16384 \
  KVC_GPU_ISSUE5_PROFILE_LENGTH=128 KVC_GPU_PROFILE_ONE_LENGTH=1
report2="$(returned 2)" || exit 1
packed2="$REHEARSAL/unpacked2/kvc-issue5-out2"
check_log="$REHEARSAL/out2/gpu_attention_check.log"
summary="$(check_summary 2)" || exit 1
for skipped in "append run: skipped" "compute-sanitizer runs skipped"; do
  grep -q "^gpu_attention_check: $skipped (KVC_GPU_CHECK_REPEAT=1)$" "$check_log" ||
    fail "part 2: check: no '$skipped'"
done
! grep -q "long run" "$check_log" || fail "part 2: check: a long run"
more_rows="$(grep -cE '^\| [^|]+ \| 16384 \| .* \| PASS \|$' "$check_log")"
cut="$(grep -E 'plain run at S = 16384: the time budget stopped it after' "$check_log")"
if [ -n "$cut" ]; then
  grep -qF "after $more_rows rows (0 failed; counted, the cut is not)" <<< "$cut" ||
    fail "part 2: check: '$cut' with $more_rows passing rows at 16384"
else
  [ "$more_rows" -eq 3 ] || fail "part 2: check: the run at 16384 was not cut and passed $more_rows of 3 rows"
  say "part 2: the run at 16384 finished in its share: the cut path was not taken"
fi
[ "$summary" = "$more_rows passed, 0 failed" ] ||
  fail "part 2: check: '$summary', expected '$more_rows passed, 0 failed'"
steps="$(sed -nE 's/^gpu_attention_check: time: (.*): [0-9]+ s$/\1/p' "$check_log" | paste -sd,)"
[ "$steps" = "plain run at S = 16384" ] || fail "part 2: check: step times of '$steps'"
bench_rows "$packed2"
# The profile: a report per default variant, each from a run that passed;
# 7 for its 8 entries, as every one runs at 128 here
# (KVC_GPU_PROFILE_ONE_LENGTH) and two differ only in their lengths.
profiles=("$packed2"/ncu-*-S128.txt)
[ "${#profiles[@]}" -eq 7 ] && [ -f "${profiles[0]}" ] ||
  fail "part 2: ${#profiles[@]} profile reports, expected 7"
for profile in "${profiles[@]}"; do
  grep -q "^1 passed, 0 failed$" "$profile" || fail "part 2: $(basename "$profile"): no passing run"
done
# The profile's table in the report: the stand-in profiles nothing, so each
# report is named as such (benchmarks/gpu/tests/test_ncu_summary.py checks
# the table's figures on a real ncu report).
grep -q "^## Profile (Nsight Compute)$" "$report2" ||
  fail "part 2: the report has no profile section"
unprofiled="$(grep -c '^No kernel profiled in .*ncu-.*-S128\.txt' "$report2")"
[ "$unprofiled" -eq 7 ] || fail "part 2: the report's profile section names $unprofiled of 7 reports"
[ -f "$packed2/ncu-summary.md" ] || fail "part 2: no ncu-summary.md in gpu-issue5.tgz"
tag2="$(collect 2 "gpu-profile-TAG-ncu.txt")" || exit 1
sections="$(grep -c '^===== bench_' "$REHEARSAL/results/gpu-profile-$tag2-ncu.txt")"
[ "$sections" -eq 7 ] || fail "part 2: collect: $sections profile reports, expected 7"
[ ! -e "$REHEARSAL/results/gpu-sanitizer-$tag2.log" ] || fail "part 2: collect: sanitizer logs"
# A second collection of a part writes over nothing.
if "$ROOT/scripts/gpu_issue5_collect.sh" --results "$REHEARSAL/results" \
     "$REHEARSAL/out2" > /dev/null 2>&1; then
  fail "collect: wrote over the files of a first collection"
fi
say "passed: part 1 check $(tail -n1 "$REHEARSAL/out1/gpu_attention_check.log"), part 2 check" \
    "$summary; 3 benchmark rows a part; 7 profiles; both collected ($tag1, $tag2)"
