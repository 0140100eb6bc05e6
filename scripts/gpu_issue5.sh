#!/usr/bin/env bash
# Issue 5's GPU work in one device call or two: the correctness check of the
# generated attention and append kernels (scripts/gpu_attention_check.sh),
# then the benchmark against PyTorch SDPA (scripts/gpu_attention_bench.sh),
# then, with what time is left, an Nsight Compute profile of the split
# kernels the targets turn on (scripts/gpu_attention_profile.sh, tabled in
# the benchmark's report), each within its share of one
# time budget, sharing one build of benchmarks/gpu. For a machine with an
# NVIDIA GPU, the CUDA toolkit, cmake, ninja and PyTorch; run from the
# repository root with build/gpu-attention
# (scripts/gpu_attention_build.sh, on a machine with LLVM/MLIR) carried over:
#
#   scripts/gpu_issue5.sh
#
# With the device tool, whose 15 minutes a session must leave room for a
# rerun: build with KVC_GPU_BUILD_DEVICE_ONLY=1 (the host dry-run and
# emulator objects would take the carry past the tool's 64 MiB with the
# working tree), then `run` with carry ["build/gpu-attention"], command
# "KVC_GPU_ISSUE5_PART=1 scripts/gpu_issue5.sh" and timeout_s 330; collect
# its files, then the same with KVC_GPU_ISSUE5_PART=2 (or part 1 again,
# after a fix). KVC_GPU_ISSUE5_PART picks what runs:
#   1    what the targets and the correctness rest on (~300 s): every
#        check variant at S = 1024, the append check, the sanitizer runs,
#        nine tensor-core variants at S = 32768; the benchmark's plain,
#        `mma vmma` and `mma vmma fused` rows of every encoding (and fp16)
#        at S = 4k, 16k, 32k, batches 1, 32, 8; SDPA; no profile;
#   2    the rest (~290 s): the check again at S = 4096 for as long as its
#        share lasts (KVC_GPU_CHECK_REPEAT=1); the option rows (`mma`,
#        `normal`, `l2bulk`, key and value stages) beside `mma vmma`, at
#        32k and 4k, batches 32, 8, 1; SDPA; the profile;
#   all  both in one call (default; ~560 s), for a machine of one's own.
# Parts name their report gpu-attention-<date>-part1.md (-part2.md). The
# device tool returns at most 8 files from $OUT and the scripts write more,
# so with $OUT set they write to KVC_GPU_ISSUE5_STAGING (default
# /tmp/kvc-issue5-out) and this script leaves in $OUT a gpu-issue5.tgz of
# all of it, plus the benchmark's report and the two main logs. Without
# $OUT the scripts write where they always do (the report to
# benchmarks/results/).
# Environment (the defaults are the part's): KVC_GPU_ISSUE5_BUDGET (seconds
# for all three; all: 560, 1: 300, 2: 290), KVC_GPU_CHECK_SHARE (the
# check's part of it; 200, 170, 90), KVC_GPU_PROFILE_SHARE (what the
# benchmark leaves the profile; 80, none, 100: more than 80 s for its
# eight entries, the last of which 80 s may cut), KVC_GPU_BENCH_REPS (30
# here), KVC_GPU_BENCH_BATCHES, KVC_GPU_BENCH_ONLY, KVC_GPU_BENCH_RESERVE
# (100, 40, 40), and what the scripts read (KVC_GPU_CHECK_*,
# KVC_GPU_BENCH_*, KVC_GPU_PEAK_TBPS, KVC_GPU_PROGRAMS). The lengths:
# KVC_GPU_ISSUE5_CHECK_LENGTHS ("1024 4096", "1024", "4096"),
# KVC_GPU_ISSUE5_BENCH_LENGTHS (the benchmark's 1k, 4k, 16k, 32k;
# "4096 16384 32768"; "32768 4096") and KVC_GPU_ISSUE5_PROFILE_LENGTH
# (default 32768, for the profile's entries without a length of their
# own); scripts/gpu_issue5_rehearsal.sh runs both parts without a GPU with
# shorter ones. Exits 1 when the check or the benchmark failed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RESULTS="${OUT:-}"
if [ -n "$RESULTS" ]; then
  export OUT="${KVC_GPU_ISSUE5_STAGING:-/tmp/kvc-issue5-out}"
  rm -rf "$OUT"
  mkdir -p "$OUT"
fi
# Packs what the scripts wrote into $RESULTS (at most 8 files come back).
pack() {
  [ -n "$RESULTS" ] || return 0
  tar czf "$RESULTS/gpu-issue5.tgz" -C "$(dirname "$OUT")" "$(basename "$OUT")"
  cp "$OUT"/gpu-attention-*.md "$OUT"/gpu_attention_check.log \
     "$OUT"/gpu_attention_bench.log "$RESULTS"/ 2>/dev/null
  echo "gpu_issue5: $RESULTS/gpu-issue5.tgz holds every log and JSON file"
}
PART="${KVC_GPU_ISSUE5_PART:-all}"
# The benchmark's rows of each part (--only name ends): part 1 the
# kernels the targets are read from, part 2 the options against
# `mma vmma`, which it times again as their reference.
PART1_ROWS="_d128\$,_p128\$,_mma_vmma\$,_mma_vmma_fused\$"
PART2_ROWS="_mma\$,_mma_vmma\$,_normal\$,_l2bulk\$,_ks2\$,_ks2_vs2\$,_ks3_vs3\$"
case "$PART" in
  all) budget=560 check_share=200 profile_share=80 check_lengths="1024 4096"
       bench_lengths='' batches=1,32,8 reserve=100 long=32768 repeat=0 rows='' ;;
  1) budget=300 check_share=170 profile_share=0 check_lengths=1024
     bench_lengths="4096 16384 32768" batches=1,32,8 reserve=40 long=32768
     repeat=0 rows="$PART1_ROWS" ;;
  2) budget=290 check_share=90 profile_share=100 check_lengths=4096
     bench_lengths="32768 4096" batches=32,8,1 reserve=40 long='' repeat=1
     rows="$PART2_ROWS" ;;
  *) echo "gpu_issue5: KVC_GPU_ISSUE5_PART must be 1, 2 or all, not '$PART'"
     exit 1 ;;
esac
BUDGET="${KVC_GPU_ISSUE5_BUDGET:-$budget}"
CHECK_SHARE="${KVC_GPU_CHECK_SHARE:-$check_share}"
PROFILE_SHARE="${KVC_GPU_PROFILE_SHARE:-$profile_share}"
export KVC_GPU_BENCH_RESERVE="${KVC_GPU_BENCH_RESERVE:-$reserve}"
export KVC_GPU_CHECK_REPEAT="${KVC_GPU_CHECK_REPEAT:-$repeat}"
[ -z "$rows" ] || export KVC_GPU_BENCH_ONLY="${KVC_GPU_BENCH_ONLY:-$rows}"
[ "$PART" = all ] || export KVC_GPU_BENCH_TAG="part$PART"
# 30 timed calls a row (the benchmark's default is 50): 123 variants x 4
# lengths are 492 rows, 3.7x the 132 of 2026-12-04 (63 s on an H200); the
# nine `normal` ones come last in each batch and length. Part 1 has 48
# variants x 3 lengths (144 rows), part 2 90 x 2 (180; the 15 `mma vmma`
# ones in both parts).
export KVC_GPU_BENCH_REPS="${KVC_GPU_BENCH_REPS:-30}"
# Batch 1 first (short fills; the batch-1 targets), then 32 (the speedup
# targets), then 8, whose rows a short budget may cut: B = 32 measures the
# B >= 8 bandwidth target too.
# Part 2 the other way round: its option rows matter most where the
# bandwidth targets are.
export KVC_GPU_BENCH_BATCHES="${KVC_GPU_BENCH_BATCHES:-$batches}"
export KVC_GPU_CHECK_BUILD_DIR="${KVC_GPU_CHECK_BUILD_DIR:-/tmp/kvc-gpu-build}"
export KVC_GPU_BENCH_BUILD_DIR="$KVC_GPU_CHECK_BUILD_DIR"
start=$SECONDS
failed=0

# The check first: a benchmark of wrong kernels measures nothing. On an
# H200 (2026-12-04) the check took 54 s at S = 1024 (build, 116 attention
# and 24 append variants, 6 sanitizer runs) and the benchmark 85 s; S 4096
# adds about 4x the plain run's 25 s. With 230 variants now, the check runs
# every variant at the first length, the append check and the sanitizer
# runs first (~50 s at that run's 0.22 s a variant, and the sanitizer runs
# on more variants than then), then nine tensor-core variants (both passes,
# stages, fused combine, whole-head value groups, GQA 7, token-axis keys) at
# S = 32768 (~2.5 s a variant then), then the second length with what is
# left of its share (KVC_GPU_CHECK_SHARE, default 200 s). More long
# sequences: run scripts/gpu_attention_check.sh alone with
# KVC_GPU_CHECK_LONG (its default subset: 46 variants).
export KVC_GPU_CHECK_LONG="${KVC_GPU_CHECK_LONG-$long}"
LONG_ONLY="k2c32_v2t32_r128_b8_h4x4_d128_mma_vmma\$,k4c32_v4t32_r128_b8_h8x2_d64_mma_vmma\$"
LONG_ONLY+=",k2c128_v2t128_r128_b1_h32x8_d128_p128_mma_vmma_fused\$"
LONG_ONLY+=",k4c128_v4t128_r128_b1_h16x2_d128_p128_mma_vmma\$"
LONG_ONLY+=",k2c32_v2t32_r128_b8_h8x2_d64_mma_vmma_ks2\$"
LONG_ONLY+=",k4c32_v8t32_r128_b8_h8x2_d64_mma_vmma_ks2_vs2\$"
LONG_ONLY+=",k4c32_v4t32_r128_b1_h14x2_d128_mma_vmma_fused\$"
LONG_ONLY+=",k2t32_v2t32_r0_b1_h8x2_d128_mma\$,k2c32_v2t32_r128_b8_h4x4_d128_vmma\$"
export KVC_GPU_CHECK_LONG_ONLY="${KVC_GPU_CHECK_LONG_ONLY:-$LONG_ONLY}"
read -r -a CHECK_LENGTHS <<< "${KVC_GPU_ISSUE5_CHECK_LENGTHS:-$check_lengths}"
read -r -a BENCH_LENGTHS <<< "${KVC_GPU_ISSUE5_BENCH_LENGTHS:-$bench_lengths}"
PROFILE_LENGTH="${KVC_GPU_ISSUE5_PROFILE_LENGTH:-32768}"
KVC_GPU_CHECK_BUDGET="$CHECK_SHARE" "$ROOT/scripts/gpu_attention_check.sh" \
  "${CHECK_LENGTHS[@]}" || failed=1
echo "gpu_issue5: part $PART: check done after $((SECONDS - start)) s (status $failed)"

left=$((BUDGET - (SECONDS - start)))
# The benchmark leaves KVC_GPU_PROFILE_SHARE (default 80 s) to the profile,
# unless that would leave it less than 90 s.
bench_budget=$((left - PROFILE_SHARE))
[ "$bench_budget" -ge 90 ] || bench_budget=$left
if [ "$bench_budget" -lt 90 ]; then
  echo "gpu_issue5: $left s left: no benchmark"
  pack
  exit 1
fi
# The benchmark names the report it wrote, to which the profile's table goes.
REPORT_PATH_FILE="$(mktemp)"
trap 'rm -f "$REPORT_PATH_FILE"' EXIT
KVC_GPU_BENCH_BUDGET="$bench_budget" KVC_GPU_BENCH_REPORT_PATH_FILE="$REPORT_PATH_FILE" \
  "$ROOT/scripts/gpu_attention_bench.sh" "${BENCH_LENGTHS[@]}" || failed=1
report="$(cat "$REPORT_PATH_FILE" 2>/dev/null)"
# The profile (scripts/gpu_attention_profile.sh: ncu on the K2/V2 split
# kernels at batch 8, then at batch 1, then with l2-prefetch=bulk and
# stages) runs in the time left (else run it alone in another call); its
# failure is reported, not counted.
left=$((BUDGET - (SECONDS - start)))
if [ "$PROFILE_SHARE" -eq 0 ]; then
  echo "gpu_issue5: no profile in part $PART (part 2 runs it)"
elif [ "$left" -ge 40 ]; then
  KVC_GPU_PROFILE_BUDGET="$((left - 10))" \
    "$ROOT/scripts/gpu_attention_profile.sh" "$PROFILE_LENGTH" ||
    echo "gpu_issue5: the profile failed or was cut short (not counted)"
  # Its table of the kernels (ncu_summary.py) goes into the report, beside
  # the targets whose gaps it explains.
  summary="${OUT:-$KVC_GPU_BENCH_BUILD_DIR}/ncu-summary.md"
  if [ -z "$report" ]; then
    echo "gpu_issue5: the benchmark wrote no report: the profile's table is in $summary"
  elif [ -f "$summary" ]; then
    { echo; cat "$summary"; } >> "$report"
    echo "gpu_issue5: the profile's table appended to $report"
  fi
else
  echo "gpu_issue5: $left s left: no profile"
fi
pack
echo "gpu_issue5: part $PART finished in $((SECONDS - start)) s (status $failed)"
exit "$failed"
