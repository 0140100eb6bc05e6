#!/usr/bin/env bash
# GPU check of the kvc runtime, for a machine with an NVIDIA GPU (CI has
# none): builds the CUDA backend and its test program and runs the test
# under compute-sanitizer's memcheck (device memory errors and leaks).
#
#   scripts/gpu_runtime_check.sh
#
# Needs the CUDA toolkit (nvcc, compute-sanitizer; $CUDA_HOME, default
# /usr/local/cuda) and a C++17 host compiler. Uses cmake (+ ninja or make)
# when present and otherwise compiles everything with one nvcc command;
# GoogleTest is not needed (the CUDA test is a plain executable).
# Environment: KVC_RT_GPU_BUILD_DIR (default build-rt-gpu), CUDA_ARCH
# (default: the GPU's compute capability, e.g. 90), KVC_RT_CUDA_MODEL_OPS
# (model-test operations, default 20000), KVC_RT_GPU_FORCE_NVCC=1 (skip
# cmake), KVC_RT_GPU_NO_SANITIZER=1 (run without compute-sanitizer).
# Ends with "N passed, N failed".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${KVC_RT_GPU_BUILD_DIR:-$ROOT/build-rt-gpu}"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export PATH="$CUDA_HOME/bin:$PATH"
NVCC="$(command -v nvcc || true)"
if [ -z "$NVCC" ]; then
  echo "gpu_runtime_check: nvcc not found (set CUDA_HOME)" >&2
  exit 1
fi
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total \
    --format=csv,noheader || true
fi
if [ -z "${CUDA_ARCH:-}" ]; then
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
         head -n1 | tr -d ' .' || true)"
  CUDA_ARCH="${cap:-90}"
fi
echo "gpu_runtime_check: nvcc $("$NVCC" --version | tail -n1), sm_$CUDA_ARCH"
JOBS="$(nproc 2>/dev/null || echo 2)"
mkdir -p "$BUILD_DIR"

build_with_cmake() {
  local generator=(-G Ninja)
  command -v ninja >/dev/null || generator=(-G "Unix Makefiles")
  cmake -S "$ROOT/runtime" -B "$BUILD_DIR/cmake" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVC_RUNTIME_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" &&
    cmake --build "$BUILD_DIR/cmake" -j "$JOBS" --target kvc_runtime_cuda_test &&
    TEST="$BUILD_DIR/cmake/test/kvc_runtime_cuda_test"
}

build_with_nvcc() {
  # One nvcc command (host files go to the host compiler). The numerics
  # library must not fuse multiply-adds (docs/layout.md 1.1).
  local sources=("$ROOT"/lib/Numerics/*.cpp
    "$ROOT"/runtime/lib/BackendHost.cpp "$ROOT"/runtime/lib/Binding.cpp
    "$ROOT"/runtime/lib/BindingEvict.cpp
    "$ROOT"/runtime/lib/Cache.cpp "$ROOT"/runtime/lib/GPULaunch.cpp
    "$ROOT"/runtime/lib/CacheRead.cpp "$ROOT"/runtime/lib/CApi.cpp
    "$ROOT"/runtime/lib/Geometry.cpp "$ROOT"/runtime/lib/PagePool.cpp
    "$ROOT"/runtime/lib/Status.cpp "$ROOT"/runtime/lib/BackendCUDA.cu
    "$ROOT"/runtime/test/ModelDriver.cpp "$ROOT"/runtime/test/ModelPresets.cpp
    "$ROOT"/runtime/test/cuda/CudaRuntimeTest.cpp
    "$ROOT"/runtime/test/cuda/PageReadKernel.cu)
  TEST="$BUILD_DIR/nvcc/kvc_runtime_cuda_test"
  mkdir -p "$BUILD_DIR/nvcc"
  "$NVCC" -std=c++17 -O2 -g -lineinfo -arch="sm_$CUDA_ARCH" \
    -Xcompiler -ffp-contract=off \
    -I"$ROOT/include" -I"$ROOT/runtime/include" -I"$ROOT/runtime/lib" \
    -I"$ROOT/runtime/test" -I"$ROOT/runtime/test/cuda" \
    "${sources[@]}" -o "$TEST"
}

TEST=""
if command -v cmake >/dev/null && [ "${KVC_RT_GPU_FORCE_NVCC:-0}" != 1 ]; then
  build_with_cmake ||
    { echo "gpu_runtime_check: the cmake build failed, trying nvcc alone" >&2
      TEST=""; }
fi
[ -n "$TEST" ] || build_with_nvcc

LOG="$BUILD_DIR/gpu_runtime_check.log"
status=0
if [ "${KVC_RT_GPU_NO_SANITIZER:-0}" = 1 ]; then
  "$TEST" 2>&1 | tee "$LOG" || status=${PIPESTATUS[0]}
else
  SANITIZER="$(command -v compute-sanitizer || true)"
  if [ -z "$SANITIZER" ]; then
    echo "gpu_runtime_check: compute-sanitizer not found in $CUDA_HOME/bin" \
         "(KVC_RT_GPU_NO_SANITIZER=1 runs without it)" >&2
    exit 1
  fi
  "$SANITIZER" --tool memcheck --leak-check full --error-exitcode 86 \
    "$TEST" 2>&1 | tee "$LOG" || status=${PIPESTATUS[0]}
fi

summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOG" | tail -n1 || true)"
passed="$(echo "$summary" | sed -nE 's/^([0-9]+) passed.*/\1/p')"
failed="$(echo "$summary" | sed -nE 's/.* ([0-9]+) failed$/\1/p')"
passed="${passed:-0}"
failed="${failed:-0}"
if [ "$status" -eq 77 ]; then
  echo "gpu_runtime_check: the test found no usable CUDA device" >&2
  failed=$((failed + 1))
elif [ "$status" -eq 86 ]; then
  echo "gpu_runtime_check: compute-sanitizer reported errors (see $LOG)" >&2
  failed=$((failed + 1))
elif [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "gpu_runtime_check: the test exited with status $status" >&2
  failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
