#!/usr/bin/env bash
# Nsight Compute profile of the benchmark's split kernels (issue 5: "every
# target is either met or its gap is stated with the profile that explains
# it"), for a machine with an NVIDIA GPU after scripts/gpu_attention_bench.sh
# built kvc_attention_bench:
#
#   scripts/gpu_attention_profile.sh [S]     (default S: 32768)
#
# For each variant of KVC_GPU_PROFILE_VARIANTS (comma-separated; each ends
# in '$': an exact name end, since a variant's name is a prefix of its
# l2-prefetch and stages twins'; default: K2/V2 g32 and g128 at batch 8,
# both passes on tensor cores, without and with l2-prefetch=bulk, and K2/V2
# g32 with key-stages=2 and with the prefetch and both passes' stages) it
# profiles the split and
# combine kernels of the benchmark's first call at S with ncu (speed of
# light, occupancy, scheduler and warp-state statistics, instruction counts,
# memory workload with the L2 hit rate, launch statistics), one text report
# a variant in $OUT (else the build dir), and stops starting variants past
# KVC_GPU_PROFILE_BUDGET seconds (default 120). Then
# benchmarks/gpu/ncu_summary.py tables the reports' kernels (time, DRAM
# throughput, instructions per cache element, occupancy, eligible warps, the
# top stall reason) in ncu-summary-S<S>.md beside them. Environment:
# KVC_GPU_BENCH_BUILD_DIR (default /tmp/kvc-gpu-bench-build), CUDA_HOME
# (default /usr/local/cuda), NCU (default $CUDA_HOME/bin/ncu, else ncu on
# PATH), KVC_GPU_PROGRAMS (cuda, the default, or emu: the emulated
# benchmark under a stand-in ncu, scripts/gpu_issue5_rehearsal.sh). Exits 1
# when no ncu, no benchmark binary or a profile failed.
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
DEFAULT="bench_k2c32_v2t32_r128_b8_h32x8_d128_mma_vmma\$"
DEFAULT+=",bench_k2c32_v2t32_r128_b8_h32x8_d128_mma_vmma_l2bulk\$"
DEFAULT+=",bench_k2c128_v2t128_r128_b8_h32x8_d128_p128_mma_vmma\$"
DEFAULT+=",bench_k2c128_v2t128_r128_b8_h32x8_d128_p128_mma_vmma_l2bulk\$"
DEFAULT+=",bench_k2c32_v2t32_r128_b8_h32x8_d128_mma_vmma_ks2\$"
DEFAULT+=",bench_k2c32_v2t32_r128_b8_h32x8_d128_mma_vmma_l2bulk_ks2_vs2\$"
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
for variant in "${VARIANTS[@]}"; do
  left=$((BUDGET - (SECONDS - start)))
  if [ "$left" -lt 20 ]; then
    say "budget spent: not profiled: $variant"
    failed=1
    continue
  fi
  stem="${variant%\$}"
  report="$OUT_DIR/ncu-$stem-S$S.txt"
  command=("$NCU" --clock-control none --section SpeedOfLight
           --section Occupancy --section SchedulerStats
           --section WarpStateStats --section InstructionStats
           --section MemoryWorkloadAnalysis --section LaunchStats -k regex:attend -c 2
           "$BIN" --only "$variant" --reps 2 --warmup 1 "$S")
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
  summary="$OUT_DIR/ncu-summary-S$S.md"
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
