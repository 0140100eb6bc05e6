#!/usr/bin/env bash
# Issue 5's GPU work in one device call: the correctness check of the
# generated attention and append kernels (scripts/gpu_attention_check.sh),
# then the benchmark against PyTorch SDPA (scripts/gpu_attention_bench.sh),
# then, with what time is left, an Nsight Compute profile of four split
# kernels (scripts/gpu_attention_profile.sh), each within its share of one
# time budget, sharing one build of benchmarks/gpu. For a machine with an NVIDIA GPU, the CUDA toolkit, cmake,
# ninja and PyTorch; run from the repository root with build/gpu-attention
# (scripts/gpu_attention_build.sh, on a machine with LLVM/MLIR) carried over:
#
#   scripts/gpu_issue5.sh
#
# With the device tool: build with KVC_GPU_BUILD_DEVICE_ONLY=1 (the host
# dry-run and emulator objects would take the carry past the tool's 64 MiB
# with the working tree), then `run` with carry ["build/gpu-attention"],
# command "scripts/gpu_issue5.sh" and timeout_s 590. The device tool
# returns at most 8 files from $OUT and the scripts write more, so with
# $OUT set they write to /tmp/kvc-issue5-out and this script leaves in $OUT
# a gpu-issue5.tgz of all of it, plus the benchmark's report
# (gpu-attention-<date>.md) and the two main logs. Without $OUT the scripts
# write where they always do (the report to benchmarks/results/).
# Environment: KVC_GPU_ISSUE5_BUDGET (seconds for both, default 560),
# KVC_GPU_CHECK_SHARE (the check's part of it, default 300: 224 attention
# variants at two lengths and the sanitizer runs), and what the two
# scripts read (KVC_GPU_CHECK_*, KVC_GPU_BENCH_*, KVC_GPU_PEAK_TBPS).
# Exits 1 when either failed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RESULTS="${OUT:-}"
if [ -n "$RESULTS" ]; then
  export OUT=/tmp/kvc-issue5-out
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
CHECK_SHARE="${KVC_GPU_CHECK_SHARE:-300}"
export KVC_GPU_CHECK_BUILD_DIR="${KVC_GPU_CHECK_BUILD_DIR:-/tmp/kvc-gpu-build}"
export KVC_GPU_BENCH_BUILD_DIR="$KVC_GPU_CHECK_BUILD_DIR"
start=$SECONDS
failed=0

# The check first: a benchmark of wrong kernels measures nothing. On an
# H200 (2026-12-04) the check took 54 s at S = 1024 (build, 116 attention
# and 24 append variants, 6 sanitizer runs) and the benchmark 85 s; S 4096
# adds about 4x the plain run's 25 s. Longer S: run
# scripts/gpu_attention_check.sh alone with KVC_GPU_CHECK_LONG (a subset of
# the variants; at 16384 and 32768 a variant took ~2.5 s per S on average).
KVC_GPU_CHECK_BUDGET="$CHECK_SHARE" "$ROOT/scripts/gpu_attention_check.sh" \
  1024 4096 || failed=1
echo "gpu_issue5: check done after $((SECONDS - start)) s (status $failed)"

left=$((BUDGET - (SECONDS - start)))
if [ "$left" -lt 90 ]; then
  echo "gpu_issue5: $left s left: no benchmark"
  pack
  exit 1
fi
KVC_GPU_BENCH_BUDGET="$left" "$ROOT/scripts/gpu_attention_bench.sh" || failed=1
# The profile (scripts/gpu_attention_profile.sh: ncu on the K2/V2 split
# kernels with and without l2-prefetch=bulk) runs if the benchmark left
# time (else run it alone in another call); its failure is reported, not
# counted.
left=$((BUDGET - (SECONDS - start)))
if [ "$left" -ge 40 ]; then
  KVC_GPU_PROFILE_BUDGET="$((left - 10))" \
    "$ROOT/scripts/gpu_attention_profile.sh" 32768 ||
    echo "gpu_issue5: the profile failed or was cut short (not counted)"
else
  echo "gpu_issue5: $left s left: no profile"
fi
pack
echo "gpu_issue5: finished in $((SECONDS - start)) s (status $failed)"
exit "$failed"
