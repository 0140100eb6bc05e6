#!/usr/bin/env bash
# Issue 5's GPU work in one device call: the correctness check of the
# generated attention and append kernels (scripts/gpu_attention_check.sh),
# then the benchmark against PyTorch SDPA (scripts/gpu_attention_bench.sh),
# each within its share of one time budget, sharing one build of
# benchmarks/gpu. For a machine with an NVIDIA GPU, the CUDA toolkit, cmake,
# ninja and PyTorch; run from the repository root with build/gpu-attention
# (scripts/gpu_attention_build.sh, on a machine with LLVM/MLIR) carried over:
#
#   scripts/gpu_issue5.sh
#
# With the device tool: `run` with carry ["build/gpu-attention"],
# command "scripts/gpu_issue5.sh" and timeout_s 590. Logs, the benchmark's
# report (gpu-attention-<date>.md) and its JSON files land in $OUT.
# Environment: KVC_GPU_ISSUE5_BUDGET (seconds for both, default 560),
# KVC_GPU_CHECK_SHARE (the check's part of it, default 230), and what the two
# scripts read (KVC_GPU_CHECK_*, KVC_GPU_BENCH_*, KVC_GPU_PEAK_TBPS).
# Exits 1 when either failed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUDGET="${KVC_GPU_ISSUE5_BUDGET:-560}"
CHECK_SHARE="${KVC_GPU_CHECK_SHARE:-230}"
export KVC_GPU_CHECK_BUILD_DIR="${KVC_GPU_CHECK_BUILD_DIR:-/tmp/kvc-gpu-build}"
export KVC_GPU_BENCH_BUILD_DIR="$KVC_GPU_CHECK_BUILD_DIR"
start=$SECONDS
failed=0

# The check first: a benchmark of wrong kernels measures nothing. S 1024
# only, to leave the benchmark its time (4096 and the rest: run
# scripts/gpu_attention_check.sh alone).
KVC_GPU_CHECK_BUDGET="$CHECK_SHARE" "$ROOT/scripts/gpu_attention_check.sh" \
  1024 || failed=1
echo "gpu_issue5: check done after $((SECONDS - start)) s (status $failed)"

left=$((BUDGET - (SECONDS - start)))
if [ "$left" -lt 90 ]; then
  echo "gpu_issue5: $left s left: no benchmark"
  exit 1
fi
KVC_GPU_BENCH_BUDGET="$left" "$ROOT/scripts/gpu_attention_bench.sh" || failed=1
echo "gpu_issue5: finished in $((SECONDS - start)) s (status $failed)"
exit "$failed"
