#!/usr/bin/env bash
# The GPU check and benchmark programs, built and run here without a GPU:
# what a GPU session would find broken before it spends device time.
#
#   scripts/gpu_programs_dry_run.sh [WORKDIR]     (default: a temporary one)
#
#  1. scripts/gpu_attention_build.sh into WORKDIR/artifacts (every
#     attention, append and benchmark variant through kvc-gpu-pipeline and
#     kvc-cpu-pipeline);
#  2. benchmarks/gpu configured and built in WORKDIR/build: every program,
#     the CUDA ones (kvc_attention_check, kvc_append_check,
#     kvc_attention_bench) compiled and linked too;
#  3. the host dry runs (CPU caches, the kvc-cpu-pipeline code): every
#     attention variant at S = 300 against the oracle, every append variant
#     byte for byte against kvc_rt_append, and the benchmark at S = 128
#     (every B = 1 variant, the CUDA-core ones at every B, and both
#     tensor-core passes at B = 32);
#  4. the emulated check (kvc_attention_check_emu): the kvc-gpu-pipeline
#     code of every attention variant, its kernels run by kvc's GPU
#     emulator (lib/GPUEmulator), against the oracle at S = 300 and, for
#     the tensor-core variants, S = 1100 (several splits, interior and edge
#     loops), and at S = 300 with the emulator's model of the tensor cores'
#     truncating accumulation (KVC_GPU_EMULATOR_MMA=truncate), the 8-bit
#     whole-head value groups at S = 4096 (whose folded weights once lost
#     bits growing with S), and every append variant's kernels byte for
#     byte against kvc_rt_append (kvc_append_check_emu); and the
#     benchmark's kvc-gpu-pipeline code (wait-on-return=false, kernels
#     emulated: kvc_attention_bench_emu) at S = 128 for every B = 1
#     variant and the B = 32 ones with both tensor-core passes: each
#     call and append step runs and writes finite outputs.
# Needs build/bin/kvc-opt, build/lib/GPUEmulator/libkvc_gpu_emulator.a (or
# KVC_GPU_EMULATOR), LLVM 22's tools and the CUDA toolkit (CUDA_HOME,
# default /usr/local/cuda), not a GPU. ctest runs it as kvc-gpu-programs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-$(mktemp -d)}"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
say() { echo "gpu_programs_dry_run: $*"; }

EMULATOR="${KVC_GPU_EMULATOR:-$ROOT/build/lib/GPUEmulator/libkvc_gpu_emulator.a}"
[ -f "$EMULATOR" ] || {
  say "FAIL: no GPU emulator at $EMULATOR (build kvc_gpu_emulator)"; exit 1; }

start=$SECONDS
"$ROOT/scripts/gpu_attention_build.sh" "$WORK/artifacts"
say "artifacts built ($((SECONDS - start)) s)"

start=$SECONDS
cmake -S "$ROOT/benchmarks/gpu" -B "$WORK/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" \
  -DKVC_ATTENTION_ARTIFACTS="$WORK/artifacts" \
  -DKVC_GPU_EMULATOR="$EMULATOR" > "$WORK/configure.log"
cmake --build "$WORK/build" -j 2
for program in kvc_attention_check kvc_append_check kvc_attention_bench \
    kvc_attention_check_host kvc_append_check_host kvc_attention_bench_host \
    kvc_attention_check_emu kvc_append_check_emu kvc_attention_bench_emu; do
  [ -x "$WORK/build/$program" ] || { say "FAIL: $program was not built"; exit 1; }
done
say "programs built ($((SECONDS - start)) s)"

start=$SECONDS
"$WORK/build/kvc_attention_check_host" 300
"$WORK/build/kvc_append_check_host"
# The tensor-core variants' CPU mirrors emulate fp16 fma in software (about
# 5 s a call at B = 32): every variant at B = 1, the CUDA-core ones at every
# B, and both tensor-core passes at B = 32 (as the emulated benchmark).
"$WORK/build/kvc_attention_bench_host" --reps 1 --warmup 1 \
  --only '_d128$,_p128$,_b1_,_b32_h32x8_d128_mma_vmma$,_b32_h32x8_d128_p128_mma_vmma$' \
  --json "$WORK/bench_host.json" 128
say "host dry runs passed ($((SECONDS - start)) s)"

start=$SECONDS
"$WORK/build/kvc_attention_check_emu" 300
"$WORK/build/kvc_attention_check_emu" --only _mma,_vmma 1100
KVC_GPU_EMULATOR_MMA=truncate "$WORK/build/kvc_attention_check_emu" \
  --only _mma,_vmma 300
"$WORK/build/kvc_attention_check_emu" --only v8t128,v8t64 4096
"$WORK/build/kvc_append_check_emu"
"$WORK/build/kvc_attention_bench_emu" --reps 1 --warmup 1 \
  --only '_b1_,_b32_h32x8_d128_mma_vmma$,_b32_h32x8_d128_p128_mma_vmma$' \
  --json "$WORK/bench_emu.json" 128
say "emulated kernels passed ($((SECONDS - start)) s)"
