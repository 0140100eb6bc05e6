#!/usr/bin/env bash
# GPU correctness check of kvc's generated decode-attention kernels, for a
# machine with an NVIDIA GPU, the CUDA toolkit, cmake and ninja (LLVM/MLIR
# not needed). Run from the repository root with the artifacts of
# scripts/gpu_attention_build.sh present (build/gpu-attention, built on a
# machine with LLVM/MLIR and carried over):
#
#   scripts/gpu_attention_check.sh [S ...]        (default S: 1024 4096)
#
#  1. builds benchmarks/gpu (the kvc runtime's CUDA backend + the check,
#     linked with the compiled variants);
#  2. runs every variant at the first S against the fp64 oracle;
#  3. runs the kvc.append variants (build/gpu-attention/append) against
#     the runtime's kvc_rt_append, byte for byte (kvc_append_check);
#  4. runs small subsets under compute-sanitizer: memcheck (with leak
#     check), racecheck and synccheck (shared memory and barriers of the
#     kernels), initcheck (reads of unwritten device memory, e.g. workspace
#     entries of empty splits); then memcheck and racecheck of two small
#     append variants;
#  5. runs the cheaper variants (or those of KVC_GPU_CHECK_LONG_ONLY) at
#     the longer S of KVC_GPU_CHECK_LONG;
#  6. runs every variant at the other S with the time left (rows the budget
#     cuts off are reported, not counted as failures: the coverage of steps
#     2 to 5 comes first).
# Logs go to $OUT when it is set (device runs), else to the build dir; each
# step's wall time is a "time: STEP: N s" line of the main log.
# Environment: KVC_ATTENTION_ARTIFACTS (default build/gpu-attention),
# KVC_GPU_CHECK_BUILD_DIR (default /tmp/kvc-gpu-attention-build), CUDA_HOME
# (default /usr/local/cuda), KVC_GPU_CHECK_NO_SANITIZER=1 (skip step 4),
# COMPUTE_SANITIZER (default compute-sanitizer from CUDA_HOME/bin or PATH),
# KVC_GPU_CHECK_SEED (reproduce a run's inputs), KVC_GPU_CHECK_LONG and
# KVC_GPU_CHECK_LONG_WEIGHT or KVC_GPU_CHECK_LONG_ONLY (step 5),
# KVC_GPU_CHECK_MORE_SECONDS (at most that long for step 6; default all
# that is left), KVC_GPU_CHECK_ONLY (--only names for the plain runs of
# steps 2, 6; default
# every variant), KVC_GPU_PROGRAMS (which build of the programs runs:
# cuda, the default, the kernels on the GPU; emu, the same kernels in kvc's
# GPU emulator on the host, which needs KVC_GPU_EMULATOR or a build dir
# configured with it: a rehearsal without a GPU,
# scripts/gpu_issue5_rehearsal.sh; host, the kvc-cpu-pipeline loops),
# KVC_GPU_CHECK_BUDGET
# (seconds for the whole script, default 480: each step's timeout is cut to
# what is left, and sanitizer runs that no longer fit are skipped),
# KVC_GPU_CHECK_REPEAT=1 (a later call of a check that already ran steps 2
# to 4 on the same artifacts, scripts/gpu_issue5.sh's second part: steps 3
# and 4 are skipped, and a plain run at the first S that the budget stops
# is reported with the rows it finished, as step 6's are).
# Ends with "N passed, N failed" (the plain checks' rows, attention and
# append, plus one per sanitizer run); exits 1 on any failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARTIFACTS="${KVC_ATTENTION_ARTIFACTS:-$ROOT/build/gpu-attention}"
BUILD_DIR="${KVC_GPU_CHECK_BUILD_DIR:-/tmp/kvc-gpu-attention-build}"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export PATH="$CUDA_HOME/bin:$PATH"
LOG_DIR="${OUT:-$BUILD_DIR}"
SANITIZER="${COMPUTE_SANITIZER:-compute-sanitizer}"
mkdir -p "$LOG_DIR" "$BUILD_DIR"
LOG="$LOG_DIR/gpu_attention_check.log"
LENGTHS=("$@")
[ "${#LENGTHS[@]}" -gt 0 ] || LENGTHS=(1024 4096)
SEED_ARGS=()
[ -n "${KVC_GPU_CHECK_SEED:-}" ] && SEED_ARGS=(--seed "$KVC_GPU_CHECK_SEED")
start=$SECONDS
BUDGET="${KVC_GPU_CHECK_BUDGET:-480}"
# Seconds a step may take: at most $1, and what is left of the budget less
# a 15 s reserve for the summary.
time_for() {
  local left=$((BUDGET - (SECONDS - start) - 15))
  echo $(( left < $1 ? left : $1 ))
}

say() { echo "gpu_attention_check: $*" | tee -a "$LOG"; }
# "time: STEP: N s" for a step that began at second $2: the figures a later
# call's budget shares are cut from.
took() { say "time: $1: $((SECONDS - $2)) s"; }
: > "$LOG"

# --- The machine ----------------------------------------------------------
{
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.sm,clocks.max.sm \
    --format=csv || echo "nvidia-smi failed"
  nvcc --version | tail -n 2
  cmake --version | head -n 1
} 2>&1 | tee -a "$LOG"
if [ ! -f "$ARTIFACTS/manifest.txt" ]; then
  say "no $ARTIFACTS/manifest.txt: run scripts/gpu_attention_build.sh on a" \
      "machine with LLVM/MLIR and carry build/gpu-attention"
  echo "0 passed, 1 failed"
  exit 1
fi
cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
       head -n1 | tr -d ' .')"
chip="$(cat "$ARTIFACTS/chip.txt" 2>/dev/null || echo unknown)"
say "kernels built for $chip; device compute capability ${cap:-unknown}"
case "$chip" in
  "sm_${cap}"|"sm_${cap}a") ;;
  *) say "WARNING: $chip cubins will not load on sm_${cap:-?}" \
         "(rebuild with CHIP=sm_$cap)" ;;
esac

# --- 1. Build -------------------------------------------------------------
generator=(-G Ninja)
command -v ninja >/dev/null || generator=(-G "Unix Makefiles")
build_start=$SECONDS
case "${KVC_GPU_PROGRAMS:-cuda}" in
  cuda) SUFFIX= ;;
  emu) SUFFIX=_emu ;;
  host) SUFFIX=_host ;;
  *) say "KVC_GPU_PROGRAMS must be cuda, emu or host, not '$KVC_GPU_PROGRAMS'"
     echo "0 passed, 1 failed"
     exit 1 ;;
esac
TARGETS=("kvc_attention_check$SUFFIX")
APPEND_ARTIFACTS="$ARTIFACTS/append"
APPEND_BUILT=0
if [ -f "$APPEND_ARTIFACTS/append_manifest.txt" ]; then
  TARGETS+=("kvc_append_check$SUFFIX")
  APPEND_BUILT=1
fi
if ! { cmake -S "$ROOT/benchmarks/gpu" -B "$BUILD_DIR" "${generator[@]}" \
         -DCMAKE_BUILD_TYPE=RelWithDebInfo \
         -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" \
         -DCMAKE_CUDA_ARCHITECTURES="${cap:-90}" \
         -DKVC_ATTENTION_ARTIFACTS="$ARTIFACTS" \
         ${KVC_GPU_EMULATOR:+"-DKVC_GPU_EMULATOR=$KVC_GPU_EMULATOR"} &&
       cmake --build "$BUILD_DIR" -j "$(nproc)" --target "${TARGETS[@]}"
     } >> "$LOG" 2>&1; then
  tail -n 40 "$LOG"
  say "the build failed (see $LOG)"
  echo "0 passed, 1 failed"
  exit 1
fi
say "built ${TARGETS[*]} in $((SECONDS - build_start)) s"
CHECK="$BUILD_DIR/kvc_attention_check$SUFFIX"
APPEND_CHECK="$BUILD_DIR/kvc_append_check$SUFFIX"

# --- 2. Every variant against the oracle ----------------------------------
passed=0
failed=0
# Adds a run's "N passed, N failed" (the last such line of log $1) to the
# totals; a run that exited with status $2 without reporting a failure
# counts as one failure. $3 names the run.
tally() {
  local log="$1" status="$2" what="$3" summary run_passed run_failed
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    say "the $what ran out of time (rows above are complete)"
  fi
  summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n1)"
  run_passed=$(echo "$summary" | sed -nE 's/^([0-9]+) passed.*/\1/p')
  run_failed=$(echo "$summary" | sed -nE 's/.* ([0-9]+) failed$/\1/p')
  run_passed=${run_passed:-0}
  run_failed=${run_failed:-0}
  if [ "$status" -ne 0 ] && [ "$run_failed" -eq 0 ]; then
    say "the $what exited with status $status"
    run_failed=1
  fi
  passed=$((passed + run_passed))
  failed=$((failed + run_failed))
}
# The first S first: every variant once, then the append check, the
# sanitizer runs and the long run, and only then the other lengths, with
# the time left, so that a budget too short for all of them cuts the
# repetitions, not the coverage.
ONLY_ARGS=()
selected="every variant"
if [ -n "${KVC_GPU_CHECK_ONLY:-}" ]; then
  ONLY_ARGS=(--only "$KVC_GPU_CHECK_ONLY")
  selected="$KVC_GPU_CHECK_ONLY"
fi
REPEAT="${KVC_GPU_CHECK_REPEAT:-0}"
# A run the budget may stop (step 6's, and the first one of a repeat):
# the rows it finished count, the cut does not. $1 names it, $2 is its log,
# $3 its seconds, the rest the lengths.
cuttable_run() {
  local what="$1" log="$2" seconds="$3" status rows bad began=$SECONDS
  shift 3
  timeout -k 10 "$seconds" \
    "$CHECK" "${SEED_ARGS[@]}" "${ONLY_ARGS[@]}" "$@" 2>&1 |
    tee "$log" | tee -a "$LOG"
  status=${PIPESTATUS[0]}
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    rows="$(grep -cE '^\| .* \| (PASS|FAIL)' "$log")"
    bad="$(grep -cE '^\| .* \| FAIL' "$log")"
    say "$what: the time budget stopped it after" \
        "$rows rows ($bad failed; counted, the cut is not)"
    passed=$((passed + rows - bad))
    failed=$((failed + bad))
  else
    tally "$log" "$status" "$what"
  fi
  took "$what" "$began"
  return "$status"
}
if [ "$REPEAT" = 1 ]; then
  # The first call covered every variant; this one adds repetitions.
  seconds="$(time_for 100000)"
  say "plain run: $selected at S = ${LENGTHS[0]} (a repeat:" \
      "${seconds} s left, a cut is not a failure)"
  cuttable_run "plain run at S = ${LENGTHS[0]}" "$LOG_DIR/first_length_check.log" \
    "$seconds" "${LENGTHS[0]}"
  status=$?
else
  say "plain run: $selected at S = ${LENGTHS[0]}"
  began=$SECONDS
  timeout -k 10 "$(time_for 330)" \
    "$CHECK" "${SEED_ARGS[@]}" "${ONLY_ARGS[@]}" "${LENGTHS[0]}" 2>&1 |
    tee -a "$LOG"
  status=${PIPESTATUS[0]}
  [ "$status" -eq 77 ] || tally "$LOG" "$status" "plain run"
  took "plain run at S = ${LENGTHS[0]}" "$began"
fi
if [ "$status" -eq 77 ]; then
  say "no usable CUDA device"
  echo "0 passed, 1 failed" | tee -a "$LOG"
  exit 1
fi

# --- 3. kvc.append against kvc_rt_append ---------------------------------
APPEND_LOG="$LOG_DIR/append_check.log"
if [ "$REPEAT" = 1 ]; then
  say "append run: skipped (KVC_GPU_CHECK_REPEAT=1)"
elif [ "$APPEND_BUILT" != 1 ]; then
  say "no $APPEND_ARTIFACTS/append_manifest.txt: the append check is not" \
      "built (rebuild the artifacts with scripts/gpu_attention_build.sh)"
  failed=$((failed + 1))
else
  say "append run: every append variant against kvc_rt_append"
  began=$SECONDS
  timeout -k 10 "$(time_for 120)" \
    "$APPEND_CHECK" "${SEED_ARGS[@]}" 2>&1 | tee "$APPEND_LOG" | tee -a "$LOG"
  tally "$APPEND_LOG" "${PIPESTATUS[0]}" "append run"
  took "append run" "$began"
fi

# --- 4. Subsets under compute-sanitizer -----------------------------------
# Per-head / fp8 / residual 64; no residual; 128-token pages; fp16 at
# GQA 8; many splits with short sequences and a window; the tensor-core
# value pass over fp16-pair reads (with tensor-core keys) and over
# channel-axis values; both tensor-core passes under a window (units and
# tiles aligned to the sequence, from before the split's first token);
# both passes staged in shared memory by cp.async, with the L2 prefetch
# (key-stages, value-stages: copies that must stay inside the pages and the
# stages); masks, per head on tensor cores and shared on CUDA cores (reads
# inside the mask, also by a call whose mask is one token short).
MEMCHECK_ONLY="_m16h,k2c32_v2t32_r128_b8_h16x4_d128_m32,k4c32xe4m3xe4m3,ke4m3_v4t32_r0,k2c128_v2t32,kf16_vf16_r128_b8_h16x2_d128,_w200,k2c32_v2t32_r128_b8_h16x4_d128_mma_vmma\$,k2c32_v2t32_r128_b8_h16x4_d128_mma_vmma_l2bulk_ks2_vs2\$,k2c32_v2c32_r128_b8_h8x2_d128_vmma,k2c32_v2t32_r128_b8_h8x2_d128_w300_mma,k2c32_v2t32_r128_b8_h8x2_d128_w300_vmma"
# Token lanes (D 64), GQA 8 at D 128, GQA 7 with a softcap: B = 1 (the
# softcap ones include a tensor-core value pass with per-call splits); the
# tensor-core value pass's shared sums at D 64 and, with tensor-core keys,
# GQA 8 at D 128; and both passes' cp.async stages (three value stages
# under per-call splits, whose sums then share the stages' bytes).
SHARED_ONLY="k2c32_v2t32_r128_b1_h8x2_d64,k4c32_v4t32_r128_b1_h32x4_d128,_c50,k4c32_v4t32_r128_b8_h16x2_d64_vmma,k2c32_v2t32_r128_b8_h32x4_d128_mma_vmma\$,k2c32_v4t32_r128_b8_h16x4_d128_sb400_mma_vmma_ks2_vs3"
INITCHECK_ONLY="_w200,k4c32xe4m3xe4m3"
# Two small append variants: one token a step at batch 1 (stage, then flush
# 128 tokens at once), seven a step with a flush in the middle of a call
# (group-128 pages).
APPEND_SANITIZE_ONLY="append_k2c32_v2t32_r128_b1_n1_p64,append_k4c128_v4t128_r128_b2_n7_p128"
sanitize() { # tool, --only list, S (or "append"), extra sanitizer flags...
  local tool="$1" only="$2" length="$3"
  shift 3
  local log="$LOG_DIR/sanitizer_$tool.log" seconds program=("$CHECK")
  local what="at S = $length" tool_label="$tool"
  if [ "$length" = append ]; then
    log="$LOG_DIR/sanitizer_append_$tool.log"
    program=("$APPEND_CHECK")
    what="(append)"
    tool_label="append $tool"
  else
    program+=("$length")
  fi
  seconds="$(time_for 120)"
  if [ "$seconds" -lt 30 ]; then
    say "$tool_label: not run, the time budget is spent (not counted)"
    return
  fi
  say "compute-sanitizer --tool $tool: $only $what"
  local began=$SECONDS
  timeout -k 10 "$seconds" "$SANITIZER" --tool "$tool" --error-exitcode 86 "$@" \
    "${program[0]}" "${SEED_ARGS[@]}" --only "$only" "${program[@]:1}" \
    > "$log" 2>&1
  local code=$?
  tail -n 4 "$log" | tee -a "$LOG"
  took "$tool_label" "$began"
  if grep -qE "Device not supported|LibraryNotLoaded|Unable to find injection" \
       "$log"; then
    say "$tool_label: compute-sanitizer cannot run on this machine (not counted)"
  elif [ "$code" -eq 0 ]; then
    say "$tool_label: clean"
    passed=$((passed + 1))
  else
    say "$tool_label: FAILED (exit $code; see $(basename "$log"))"
    grep -m 20 -E "^=========" "$log" | tee -a "$LOG"
    failed=$((failed + 1))
  fi
}
if [ "$REPEAT" = 1 ]; then
  say "compute-sanitizer runs skipped (KVC_GPU_CHECK_REPEAT=1)"
elif [ "${KVC_GPU_CHECK_NO_SANITIZER:-0}" = 1 ]; then
  say "compute-sanitizer runs skipped (KVC_GPU_CHECK_NO_SANITIZER=1)"
elif ! command -v "$SANITIZER" >/dev/null; then
  say "$SANITIZER not found (CUDA_HOME/bin, PATH): sanitizer runs skipped"
else
  sanitize memcheck "$MEMCHECK_ONLY" 700 --leak-check full
  sanitize racecheck "$SHARED_ONLY" 600 --racecheck-report hazard
  sanitize synccheck "$SHARED_ONLY" 600
  sanitize initcheck "$INITCHECK_ONLY" 700
  if [ "$APPEND_BUILT" = 1 ]; then
    sanitize memcheck "$APPEND_SANITIZE_ONLY" append --leak-check full
    sanitize racecheck "$APPEND_SANITIZE_ONLY" append \
      --racecheck-report hazard
  fi
fi

# --- 5. Long sequences on the cheaper variants -----------------------------
# The plain runs' time grows with S x batch x query heads x head_dim (the
# host generates and quantizes the tokens and the fp64 oracle reads them
# all): every variant at S = 32768 would take ~13 min on an H200. At the
# lengths of KVC_GPU_CHECK_LONG, the variants with batch x query heads x
# head_dim <= KVC_GPU_CHECK_LONG_WEIGHT (default 4096) run: they still
# cover 2-, 3-, 4- and 8-bit codes, both axes of keys and of values, fp8,
# fp16, GQA 1 to 8, head_dim 64 and 128, batches 1, 8 and 32, both key
# passes, a window and split-blocks.
# KVC_GPU_CHECK_LONG_ONLY (--only names) picks the variants instead.
LONG_LENGTHS=()
read -r -a LONG_LENGTHS <<< "${KVC_GPU_CHECK_LONG:-}"
if [ "${#LONG_LENGTHS[@]}" -gt 0 ]; then
  weight="${KVC_GPU_CHECK_LONG_WEIGHT:-4096}"
  # manifest.txt: name batch query-heads kv-heads head_dim ...
  long_only="${KVC_GPU_CHECK_LONG_ONLY:-}"
  [ -n "$long_only" ] ||
    long_only="$(awk -v w="$weight" '$2 * $3 * $5 <= w { printf "%s%s", sep, $1; sep = "," }' \
                 "$ARTIFACTS/manifest.txt")"
  LONG_LOG="$LOG_DIR/long_check.log"
  if [ -z "$long_only" ]; then
    say "long run: no variant with batch x heads x head_dim <= $weight"
    failed=$((failed + 1))
  elif seconds="$(time_for 300)" && [ "$seconds" -lt 20 ]; then
    say "long run: not run, the time budget is spent (not counted)"
  else
    say "long run: $long_only at S = ${LONG_LENGTHS[*]}"
    began=$SECONDS
    timeout -k 10 "$seconds" \
      "$CHECK" "${SEED_ARGS[@]}" --only "$long_only" "${LONG_LENGTHS[@]}" 2>&1 |
      tee "$LONG_LOG" | tee -a "$LOG"
    tally "$LONG_LOG" "${PIPESTATUS[0]}" "long run"
    took "long run" "$began"
  fi
fi

# --- 6. The other lengths, with the time left -----------------------------
# A run that the budget stops is reported with the rows it finished, and
# is not a failure: every variant passed at the first S already.
if [ "${#LENGTHS[@]}" -gt 1 ]; then
  MORE_LOG="$LOG_DIR/more_lengths_check.log"
  seconds="$(time_for "${KVC_GPU_CHECK_MORE_SECONDS:-100000}")"
  if [ "$seconds" -lt 20 ]; then
    say "plain run at S = ${LENGTHS[*]:1}: not run, the time budget is spent" \
        "(not counted)"
  else
    say "plain run: $selected at S = ${LENGTHS[*]:1} (${seconds} s left)"
    cuttable_run "plain run at S = ${LENGTHS[*]:1}" "$MORE_LOG" "$seconds" \
      "${LENGTHS[@]:1}"
  fi
fi

say "finished in $((SECONDS - start)) s; log in $LOG"
echo "$passed passed, $failed failed" | tee -a "$LOG"
[ "$failed" -eq 0 ]
