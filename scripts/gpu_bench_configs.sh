#!/usr/bin/env bash
# Times the same decode-attention rows under several builds of kvc's kernels
# in one run (split sizes, split-blocks, min-blocks-per-sm, ...), for a
# like-for-like comparison on one GPU. For a machine with an NVIDIA GPU, the
# CUDA toolkit, cmake, ninja and python3; each LABEL=DIR is an artifact
# directory of scripts/gpu_attention_build.sh with a bench/ part (built
# elsewhere with the option under test, e.g.
# `SPLIT_BLOCKS=1024 KVC_GPU_BUILD_ONLY=bench scripts/gpu_attention_build.sh
# build/gpu-attention-adaptive`, and carried over):
#
#   scripts/gpu_bench_configs.sh LABEL=DIR [LABEL=DIR ...]
#
# Per build: benchmarks/gpu's kvc_attention_bench in a build directory of
# its own, run over the rows of KVC_GPU_CONFIGS_ONLY (--only names,
# default fp16, K2/V2 g32 and g128 with both key passes) at the S of
# KVC_GPU_CONFIGS_S (default 1024 4096 32768) with KVC_GPU_CONFIGS_REPS
# timed calls (default 30); then benchmarks/gpu/compare_configs.py prints
# one table, each build's GPU us and its speedup over the first. Logs, the
# JSON runs and the table (configs.md) go to $OUT when it is set, else to
# /tmp/kvc-gpu-configs. Exits 1 when a build or run failed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
PYTHON="${PYTHON:-python3}"
ONLY="${KVC_GPU_CONFIGS_ONLY:-bench_kf16,bench_k2c32_v2t32,bench_k2c128_v2t128}"
read -r -a LENGTHS <<< "${KVC_GPU_CONFIGS_S:-1024 4096 32768}"
REPS="${KVC_GPU_CONFIGS_REPS:-30}"
LOG_DIR="${OUT:-/tmp/kvc-gpu-configs}"
export PATH="$CUDA_HOME/bin:$PATH"
mkdir -p "$LOG_DIR"
[ "$#" -ge 1 ] || { sed -n '2,20p' "$0"; exit 2; }
cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
       head -n1 | tr -d ' .')"
generator=(-G Ninja)
command -v ninja >/dev/null || generator=(-G "Unix Makefiles")
failed=0
runs=()
for config in "$@"; do
  label="${config%%=*}" dir="${config#*=}"
  if [ "$label" = "$config" ] || [ ! -f "$dir/bench/bench_manifest.txt" ]; then
    echo "gpu_bench_configs: '$config': expected LABEL=DIR with" \
         "DIR/bench/bench_manifest.txt"
    failed=1
    continue
  fi
  dir="$(cd "$dir" && pwd)"
  build="/tmp/kvc-gpu-configs-build-$label"
  log="$LOG_DIR/configs-$label.log"
  if ! { cmake -S "$ROOT/benchmarks/gpu" -B "$build" "${generator[@]}" \
           -DCMAKE_BUILD_TYPE=RelWithDebInfo \
           -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" \
           -DCMAKE_CUDA_ARCHITECTURES="${cap:-90}" \
           -DKVC_ATTENTION_ARTIFACTS="$dir" &&
         cmake --build "$build" -j "$(nproc)" --target kvc_attention_bench
       } > "$log" 2>&1; then
    tail -n 20 "$log"
    echo "gpu_bench_configs: $label: the build failed (see $log)"
    failed=1
    continue
  fi
  json="$LOG_DIR/configs-$label.json"
  echo "gpu_bench_configs: $label ($dir): --only $ONLY --reps $REPS" \
       "${LENGTHS[*]}"
  "$build/kvc_attention_bench" --only "$ONLY" --reps "$REPS" --json "$json" \
    "${LENGTHS[@]}" >> "$log" 2>&1 || { echo "gpu_bench_configs: $label:" \
      "the benchmark failed (see $log)"; failed=1; }
  grep -E "passed|failed" "$log" | tail -n 1
  [ -f "$json" ] && runs+=("$label=$json")
done
if [ "${#runs[@]}" -ge 1 ]; then
  "$PYTHON" "$ROOT/benchmarks/gpu/compare_configs.py" "${runs[@]}" |
    tee "$LOG_DIR/configs.md"
fi
exit "$failed"
