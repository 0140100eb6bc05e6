#!/usr/bin/env bash
# Issue 5's GPU work in one device call: the correctness check of the
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
# With the device tool: build with KVC_GPU_BUILD_DEVICE_ONLY=1 (the host
# dry-run and emulator objects would take the carry past the tool's 64 MiB
# with the working tree), then `run` with carry ["build/gpu-attention"],
# command "scripts/gpu_issue5.sh" and timeout_s 590. The device tool
# returns at most 8 files from $OUT and the scripts write more, so with
# $OUT set they write to KVC_GPU_ISSUE5_STAGING (default /tmp/kvc-issue5-out)
# and this script leaves in $OUT
# a gpu-issue5.tgz of all of it, plus the benchmark's report
# (gpu-attention-<date>.md) and the two main logs. Without $OUT the scripts
# write where they always do (the report to benchmarks/results/).
# Environment: KVC_GPU_ISSUE5_BUDGET (seconds for all three, default 560),
# KVC_GPU_CHECK_SHARE (the check's part of it, default 200),
# KVC_GPU_PROFILE_SHARE (what the benchmark leaves the profile, default
# 80), KVC_GPU_BENCH_REPS (default 30 here), KVC_GPU_BENCH_BATCHES (default
# 1,32,8 here), and what the two
# scripts read (KVC_GPU_CHECK_*, KVC_GPU_BENCH_*, KVC_GPU_PEAK_TBPS,
# KVC_GPU_PROGRAMS). The lengths: KVC_GPU_ISSUE5_CHECK_LENGTHS (default
# "1024 4096"), KVC_GPU_ISSUE5_BENCH_LENGTHS (default the benchmark's: 1k,
# 4k, 16k, 32k) and KVC_GPU_ISSUE5_PROFILE_LENGTH (default 32768, for the
# profile's entries without a length of their own);
# scripts/gpu_issue5_rehearsal.sh runs this script without a GPU with
# shorter ones. Exits 1 when either failed.
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
BUDGET="${KVC_GPU_ISSUE5_BUDGET:-560}"
CHECK_SHARE="${KVC_GPU_CHECK_SHARE:-200}"
PROFILE_SHARE="${KVC_GPU_PROFILE_SHARE:-80}"
# 30 timed calls a row (the benchmark's default is 50): 123 variants x 4
# lengths are 492 rows, 3.7x the 132 of 2026-12-04 (63 s on an H200); the
# nine `normal` ones come last in each batch and length.
export KVC_GPU_BENCH_REPS="${KVC_GPU_BENCH_REPS:-30}"
# Batch 1 first (short fills; the batch-1 targets), then 32 (the speedup
# targets), then 8, whose rows a short budget may cut: B = 32 measures the
# B >= 8 bandwidth target too.
export KVC_GPU_BENCH_BATCHES="${KVC_GPU_BENCH_BATCHES:-1,32,8}"
export KVC_GPU_CHECK_BUILD_DIR="${KVC_GPU_CHECK_BUILD_DIR:-/tmp/kvc-gpu-build}"
export KVC_GPU_BENCH_BUILD_DIR="$KVC_GPU_CHECK_BUILD_DIR"
# One date for the benchmark's report and the profile's table appended to
# it, should the call pass midnight.
export KVC_GPU_BENCH_DATE="${KVC_GPU_BENCH_DATE:-$(date -u +%Y-%m-%d)}"
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
export KVC_GPU_CHECK_LONG="${KVC_GPU_CHECK_LONG-32768}"
LONG_ONLY="k2c32_v2t32_r128_b8_h4x4_d128_mma_vmma\$,k4c32_v4t32_r128_b8_h8x2_d64_mma_vmma\$"
LONG_ONLY+=",k2c128_v2t128_r128_b1_h32x8_d128_p128_mma_vmma_fused\$"
LONG_ONLY+=",k4c128_v4t128_r128_b1_h16x2_d128_p128_mma_vmma\$"
LONG_ONLY+=",k2c32_v2t32_r128_b8_h8x2_d64_mma_vmma_ks2\$"
LONG_ONLY+=",k4c32_v8t32_r128_b8_h8x2_d64_mma_vmma_ks2_vs2\$"
LONG_ONLY+=",k4c32_v4t32_r128_b1_h14x2_d128_mma_vmma_fused\$"
LONG_ONLY+=",k2t32_v2t32_r0_b1_h8x2_d128_mma\$,k2c32_v2t32_r128_b8_h4x4_d128_vmma\$"
export KVC_GPU_CHECK_LONG_ONLY="${KVC_GPU_CHECK_LONG_ONLY:-$LONG_ONLY}"
read -r -a CHECK_LENGTHS <<< "${KVC_GPU_ISSUE5_CHECK_LENGTHS:-1024 4096}"
read -r -a BENCH_LENGTHS <<< "${KVC_GPU_ISSUE5_BENCH_LENGTHS:-}"
PROFILE_LENGTH="${KVC_GPU_ISSUE5_PROFILE_LENGTH:-32768}"
KVC_GPU_CHECK_BUDGET="$CHECK_SHARE" "$ROOT/scripts/gpu_attention_check.sh" \
  "${CHECK_LENGTHS[@]}" || failed=1
echo "gpu_issue5: check done after $((SECONDS - start)) s (status $failed)"

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
KVC_GPU_BENCH_BUDGET="$bench_budget" \
  "$ROOT/scripts/gpu_attention_bench.sh" "${BENCH_LENGTHS[@]}" || failed=1
# The profile (scripts/gpu_attention_profile.sh: ncu on the K2/V2 split
# kernels at batch 8, then at batch 1, then with l2-prefetch=bulk and
# stages) runs in the time left (else run it alone in another call); its
# failure is reported, not counted.
left=$((BUDGET - (SECONDS - start)))
if [ "$left" -ge 40 ]; then
  KVC_GPU_PROFILE_BUDGET="$((left - 10))" \
    "$ROOT/scripts/gpu_attention_profile.sh" "$PROFILE_LENGTH" ||
    echo "gpu_issue5: the profile failed or was cut short (not counted)"
  # Its table of the kernels (ncu_summary.py) goes into the report, beside
  # the targets whose gaps it explains.
  summary="${OUT:-$KVC_GPU_BENCH_BUILD_DIR}/ncu-summary.md"
  report="${OUT:-$ROOT/benchmarks/results}/gpu-attention-$KVC_GPU_BENCH_DATE.md"
  if [ -f "$summary" ] && [ -f "$report" ]; then
    { echo; cat "$summary"; } >> "$report"
    echo "gpu_issue5: the profile's table appended to $report"
  fi
else
  echo "gpu_issue5: $left s left: no profile"
fi
pack
echo "gpu_issue5: finished in $((SECONDS - start)) s (status $failed)"
exit "$failed"
