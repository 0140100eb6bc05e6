#!/usr/bin/env bash
# Nsight Compute profile of the benchmark's split kernels (issue 5: "every
# target is either met or its gap is stated with the profile that explains
# it"), for a machine with an NVIDIA GPU after scripts/gpu_attention_bench.sh
# built kvc_attention_bench:
#
#   scripts/gpu_attention_profile.sh [S]     (default S: 32768)
#
# For each entry of KVC_GPU_PROFILE_VARIANTS (comma-separated, in priority
# order: NAME$, or NAME$@S to profile that one at its own S; '$' ends the
# name exactly, since a variant's name is a prefix of its l2-prefetch and
# stages twins'), it profiles the attention kernels of the benchmark's
# first two calls with ncu (speed of light, occupancy, scheduler and
# warp-state statistics, instruction counts, memory workload with the L2
# hit rate, launch statistics), one text report ncu-<name>-S<S>.txt a
# variant in $OUT (else the build dir), and starts no variant past
# KVC_GPU_PROFILE_BUDGET seconds (default 120). The default list serves
# issue 5's targets, first things first: K2/V2 g128 and g32 at batch 8
# (both passes on tensor cores; the bandwidth and speedup targets at large
# batches), K2/V2 g32 at batch 1 with the fused combine at S = 4096 and
# 32768 (the 9x and the 70 % targets), then the l2-prefetch=bulk and
# key-stages=2 twins of the batch-8 kernels. Then
# benchmarks/gpu/ncu_summary.py tables the reports' kernels (time, DRAM
# throughput, instructions per cache element, occupancy, eligible warps, the
# top stall reason) in ncu-summary.md beside them. Environment:
# KVC_GPU_BENCH_BUILD_DIR (default /tmp/kvc-gpu-bench-build), CUDA_HOME
# (default /usr/local/cuda), NCU (default $CUDA_HOME/bin/ncu, else ncu on
# PATH), KVC_GPU_PROGRAMS (cuda, the default, or emu: the emulated
# benchmark under a stand-in ncu, scripts/gpu_issue5_rehearsal.sh, which
# also sets KVC_GPU_PROFILE_ONE_LENGTH=1: every entry at S, short runs).
# Exits 1 when no ncu, no benchmark binary or a profile failed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
BUILD_DIR="${KVC_GPU_BENCH_BUILD_DIR:-/tmp/kvc-gpu-bench-build}"
OUT_DIR="${OUT:-$BUILD_DIR}"
BUDGET="${KVC_GPU_PROFILE_BUDGET:-120}"
S="${1:-32768}"
case "${KVC_GPU_PROGRAMS:-cuda}" in
  cuda) BIN="$BUILD_DIR/kvc_attention_bench" ;;
  emu) BIN="$BUILD_DIR/kvc_attention_bench_emu" ;;
  *) echo "gpu_attention_profile: KVC_GPU_PROGRAMS must be cuda or emu," \
          "not '$KVC_GPU_PROGRAMS'"
     exit 1 ;;
esac
NCU="${NCU:-$CUDA_HOME/bin/ncu}"
[ -x "$NCU" ] || NCU="$(command -v ncu || true)"
B8=bench_k2c32_v2t32_r128_b8_h32x8_d128
B8G128=bench_k2c128_v2t128_r128_b8_h32x8_d128_p128
B1=bench_k2c32_v2t32_r128_b1_h32x8_d128
DEFAULT="${B8G128}_mma_vmma\$,${B8}_mma_vmma\$"
DEFAULT+=",${B1}_mma_vmma_fused\$@4096,${B1}_mma_vmma_fused\$@32768"
DEFAULT+=",${B8G128}_mma_vmma_l2bulk\$,${B8}_mma_vmma_l2bulk\$"
DEFAULT+=",${B8}_mma_vmma_ks2\$,${B8}_mma_vmma_l2bulk_ks2_vs2\$"
IFS=, read -r -a VARIANTS <<< "${KVC_GPU_PROFILE_VARIANTS:-$DEFAULT}"
say() { echo "gpu_attention_profile: $*"; }
if [ -z "$NCU" ]; then
  say "no ncu (Nsight Compute) in $CUDA_HOME/bin or on PATH"
  exit 1
fi
if [ ! -x "$BIN" ]; then
  say "no $BIN: run scripts/gpu_attention_bench.sh first"
  exit 1
fi
mkdir -p "$OUT_DIR"
start=$SECONDS
failed=0
reports=()
for entry in "${VARIANTS[@]}"; do
  variant="${entry%@*}"
  length="$S"
  if [ "$variant" != "$entry" ] && [ -z "${KVC_GPU_PROFILE_ONE_LENGTH:-}" ]; then
    length="${entry##*@}"
  fi
  if ! [[ "$length" =~ ^[1-9][0-9]*$ ]]; then
    say "'$entry': the length after '@' must be a positive number"
    failed=1
    continue
  fi
  left=$((BUDGET - (SECONDS - start)))
  if [ "$left" -lt 20 ]; then
    say "budget spent: not profiled: $entry"
    failed=1
    continue
  fi
  stem="${variant%\$}"
  report="$OUT_DIR/ncu-$stem-S$length.txt"
  if [[ " ${reports[*]} " == *" $report "* ]]; then
    say "$entry: profiled already ($report)"
    continue
  fi
  command=("$NCU" --clock-control none --section SpeedOfLight
           --section Occupancy --section SchedulerStats
           --section WarpStateStats --section InstructionStats
           --section MemoryWorkloadAnalysis --section LaunchStats
           -k regex:attend -c 2
           "$BIN" --only "$variant" --reps 2 --warmup 1 "$length")
  echo "# ${command[*]}" > "$report"
  reports+=("$report")
  if timeout -k 5 "$left" "${command[@]}" >> "$report" 2>&1; then
    say "$stem: $report ($((SECONDS - start)) s)"
  else
    say "$stem: ncu failed (see $report)"
    failed=1
  fi
done
if [ "${#reports[@]}" -gt 0 ]; then
  summary="$OUT_DIR/ncu-summary.md"
  if "$PYTHON" "$ROOT/benchmarks/gpu/ncu_summary.py" "${reports[@]}" \
       --out "$summary"; then
    say "summary: $summary"
    cat "$summary"
  else
    say "ncu_summary.py failed"
    failed=1
  fi
fi
exit "$failed"
