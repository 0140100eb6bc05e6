#!/usr/bin/env bash
# The GPU check and benchmark programs, built and run here without a GPU:
# what a GPU session would find broken before it spends device time.
#
#   scripts/gpu_programs_dry_run.sh [WORKDIR]     (default: a temporary one)
#
#  1. scripts/gpu_attention_build.sh into WORKDIR/artifacts (every
#     attention, append and benchmark variant through kvc-gpu-pipeline and
#     kvc-cpu-pipeline; the compiles side by side, KVC_GPU_BUILD_JOBS);
#  2. benchmarks/gpu configured and built in WORKDIR/build: every program,
#     the CUDA ones (kvc_attention_check, kvc_append_check,
#     kvc_attention_bench) compiled and linked too;
#  3. the host dry runs (CPU caches, the kvc-cpu-pipeline code): every
#     attention variant at S = 300 against the oracle, every append variant
#     byte for byte against kvc_rt_append, and every benchmark row at
#     S = 128;
#  4. the emulated check (kvc_attention_check_emu): the kvc-gpu-pipeline
#     code of every attention variant, its kernels run by kvc's GPU
#     emulator (lib/GPUEmulator), against the oracle at S = 300 and, for
#     the tensor-core variants, S = 1100 (several splits, interior and edge
#     loops), and at S = 300 with the emulator's model of the tensor cores'
#     truncating accumulation (KVC_GPU_EMULATOR_MMA=truncate), the 8-bit
#     whole-head value groups at S = 4096 (whose folded weights once lost
#     bits growing with S), with subnormal mma inputs flushed
#     (KVC_GPU_EMULATOR_MMA_SUBNORMALS=flush: the mma-codes=normal variants
#     at S = 1100 within the check's tolerance, three default ones at 300
#     off by more than 0.5), and every append variant's kernels byte for
#     byte against kvc_rt_append (kvc_append_check_emu); and the
#     benchmark's kvc-gpu-pipeline code (wait-on-return=false, kernels
#     emulated: kvc_attention_bench_emu) at S = 128 for every B = 1
#     variant and the B = 32 ones with both tensor-core passes: each
#     call and append step runs and writes finite outputs;
#  5. the rehearsal of issue 5's device calls (scripts/gpu_issue5_rehearsal.sh:
#     scripts/gpu_issue5.sh itself, both of its parts, with the emulated programs and stand-ins
#     for nvidia-smi, compute-sanitizer and ncu, at short lengths), and the
#     CUDA programs built from the device-only layout of the artifacts,
#     whose size with the working tree must fit the device tool's carry.
# Steps 3 to 5 are independent programs: they run side by side, nproc at
# once (KVC_GPU_DRY_RUN_JOBS), each into WORKDIR/logs/NAME.log; a failing
# one's log is printed whole.
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

# Bad arguments: each a clear message and its exit status, before any work.
# expect_error STATUS MESSAGE COMMAND...
expect_error() {
  local want="$1" message="$2" output rc=0
  shift 2
  output="$("$@" 2>&1 < /dev/null)" || rc=$?
  if [ "$rc" -ne "$want" ] || ! grep -qF -- "$message" <<< "$output"; then
    say "FAIL: '$*' exited with $rc, expected $want and '$message':"
    echo "$output" | tail -n 5
    exit 1
  fi
}
expect_error 2 "--batches: 1 is given twice" \
  "$WORK/build/kvc_attention_bench_host" --batches 1,8,1 128
expect_error 2 "--batches: 8 is the batch of no selected variant" \
  "$WORK/build/kvc_attention_bench_host" --only _b1_ --batches 1,8 128
expect_error 2 "usage: kvc_attention_bench" \
  "$WORK/build/kvc_attention_bench_host" --batches 1,x 128
expect_error 2 "no variant selected" \
  "$WORK/build/kvc_attention_check_host" --only no_such_variant 300
expect_error 1 "KVC_GPU_PROGRAMS must be cuda, emu or host, not 'gpu'" \
  env KVC_GPU_PROGRAMS=gpu KVC_ATTENTION_ARTIFACTS="$WORK/artifacts" \
  OUT="$WORK/bad-programs" "$ROOT/scripts/gpu_attention_bench.sh" 128
expect_error 1 "'bench_x\$@4k': the length after '@' must be a positive number" \
  env KVC_GPU_PROGRAMS=emu KVC_GPU_BENCH_BUILD_DIR="$WORK/build" \
  NCU="$ROOT/scripts/gpu_rehearsal/ncu" KVC_GPU_PROFILE_VARIANTS='bench_x$@4k' \
  OUT="$WORK/bad-profile" "$ROOT/scripts/gpu_attention_profile.sh" 128
say "bad arguments rejected"

# The dry runs are independent programs: they run as background jobs, at
# most JOBS at once, each into its own log, printed whole if it fails.
JOBS="${KVC_GPU_DRY_RUN_JOBS:-$(nproc)}"
case "$JOBS" in
  ''|*[!0-9]*|0)
    say "FAIL: KVC_GPU_DRY_RUN_JOBS must be a positive number, not '$JOBS'"
    exit 1 ;;
esac
LOGS="$WORK/logs"
mkdir -p "$LOGS"
declare -A step_name step_start
running=0
# Waits for one run: its summary (last line) if it passed, else its log.
reap() {
  local pid rc=0
  wait -n -p pid || rc=$?
  running=$((running - 1))
  local name="${step_name[$pid]}"
  local seconds=$((SECONDS - ${step_start[$pid]}))
  if [ "$rc" -ne 0 ]; then
    cat "$LOGS/$name.log"
    say "FAIL: $name (exit $rc after $seconds s; log above, $LOGS/$name.log)"
    jobs -p | xargs -r kill 2> /dev/null || true
    exit 1
  fi
  say "$name passed ($seconds s): $(tail -n 1 "$LOGS/$name.log")"
}
# run NAME COMMAND...: COMMAND in the background, into LOGS/NAME.log.
run() {
  local name="$1"; shift
  if [ "$running" -ge "$JOBS" ]; then reap; fi
  "$@" < /dev/null > "$LOGS/$name.log" 2>&1 &
  step_name[$!]="$name"
  step_start[$!]=$SECONDS
  running=$((running + 1))
}

# The layout a GPU machine gets (KVC_GPU_BUILD_DEVICE_ONLY=1: the artifacts
# without their host/ and emu/ parts; hard links here): its three CUDA
# programs configure and build from it as gpu_issue5.sh builds them, and it
# fits the device tool's carry with the working tree (64 MiB for all that
# travels).
device_only_build() {
  local layout="$WORK/device-only" build="$WORK/device-only-build" bytes tree
  rm -rf "$layout" "$build"
  cp -al "$WORK/artifacts" "$layout" &&
    find "$layout" -depth -type d \( -name host -o -name emu \) \
      -exec rm -rf {} + &&
    cmake -S "$ROOT/benchmarks/gpu" -B "$build" -G Ninja \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" \
      -DCMAKE_CUDA_ARCHITECTURES=90 -DKVC_ATTENTION_ARTIFACTS="$layout" &&
    cmake --build "$build" -j 1 --target kvc_attention_check \
      kvc_append_check kvc_attention_bench || return 1
  bytes="$(du -sb "$layout" | cut -f1)"
  tree="$(git -C "$ROOT" ls-files -z | (cd "$ROOT" && du -cb --files0-from=-) |
          tail -n1 | cut -f1)"
  echo "device-only artifacts $((bytes / 1000000)) MB, working tree" \
       "$((tree / 1000000)) MB"
  if [ $((bytes + tree)) -gt $((64 * 1024 * 1024)) ]; then
    echo "FAIL: together over the device tool's 64 MiB carry"
    return 1
  fi
  echo "the three CUDA programs built from the device-only layout;" \
       "$(((bytes + tree) / 1000000)) MB of the 67 MB carry"
}

# Tensor cores that flushed fp16 subnormal inputs (the emulator's
# KVC_GPU_EMULATOR_MMA_SUBNORMALS=flush): the default reads, whose codes
# are subnormals, fail by errors of order 1 (more than 0.5), so a GPU
# check would show such a chip loudly; the mma-codes=normal variants pass
# the check itself (1e-4) at S = 1100 (interior and edge loops): no
# operand they give the tensor cores is a subnormal that matters
# (docs/gpu-tensor-cores.md, "If the tensor cores flushed subnormals").
flushed_subnormals() {
  local failing='k2c32_v2t32_r128_b8_h16x4_d128_mma_vmma$'
  failing+=',k2c128_v2t128_r128_b8_h16x4_d128_p128_mma_vmma$'
  failing+=',k8c128_v8t128_r128_b8_h16x4_d128_p128_mma_vmma$'
  local output rc=0
  KVC_GPU_EMULATOR_MMA_SUBNORMALS=flush "$B"/kvc_attention_check_emu \
    --only _normal 1100 || return 1
  output="$(KVC_GPU_EMULATOR_MMA_SUBNORMALS=flush \
    "$B"/kvc_attention_check_emu --tolerance 0.5 --only "$failing" 300 \
    2>&1)" || rc=$?
  echo "$output"
  if [ "$rc" -ne 1 ] || ! grep -q "^0 passed, 3 failed" <<< "$output"; then
    echo "FAIL: subnormal reads with subnormal inputs flushed exited $rc," \
         "expected 1 with all three off by more than 0.5"
    return 1
  fi
  echo "subnormal inputs flushed: normal reads within the check's" \
       "tolerance, subnormal reads off by more than 0.5"
}

B="$WORK/build"
start=$SECONDS
# The longest first (seconds, two at once on 2 cores, 2026-12-07), so
# that the last to finish are short. The kernels in the emulator: every
# attention variant at S = 300 (124); the tensor-core ones at 1100 (199) and
# with truncating accumulation (81) and with subnormal inputs flushed
# (20); the 8-bit whole-head value groups at
# 4096 (34); the append kernels (28); the benchmark (88); the rehearsal of
# the device call (240 alone). On the host: every attention variant (30),
# every benchmark row (56), every append (3); the CUDA programs from the
# device-only layout (52).
run emu-check-mma-1100 "$B"/kvc_attention_check_emu --only _mma,_vmma 1100
run issue5-rehearsal env KVC_GPU_EMULATOR="$EMULATOR" \
  "$ROOT/scripts/gpu_issue5_rehearsal.sh" "$WORK"
run emu-check "$B"/kvc_attention_check_emu 300
run emu-bench "$B"/kvc_attention_bench_emu --reps 1 --warmup 1 \
  --only '_b1_,_b32_h32x8_d128_mma_vmma$,_b32_h32x8_d128_p128_mma_vmma$' \
  --json "$WORK/bench_emu.json" 128
run emu-check-mma-flush flushed_subnormals
run emu-check-mma-truncate env KVC_GPU_EMULATOR_MMA=truncate \
  "$B"/kvc_attention_check_emu --only _mma,_vmma 300
run host-bench "$B"/kvc_attention_bench_host --reps 1 --warmup 1 \
  --json "$WORK/bench_host.json" 128
run device-only device_only_build
run emu-check-v8-4096 "$B"/kvc_attention_check_emu --only v8t128,v8t64 4096
run host-check "$B"/kvc_attention_check_host 300
run emu-append "$B"/kvc_append_check_emu
run host-append "$B"/kvc_append_check_host
while [ "$running" -gt 0 ]; do reap; done
say "host and emulated dry runs passed ($((SECONDS - start)) s," \
    "$JOBS at once)"
