#!/usr/bin/env bash
# GPU decode-attention benchmark (issue 5), for a machine with an NVIDIA GPU,
# the CUDA toolkit, cmake, ninja and PyTorch (LLVM/MLIR not needed). Run
# from the repository root with the artifacts of scripts/gpu_attention_build.sh
# present (build/gpu-attention with its bench/ part, built on a machine with
# LLVM/MLIR and carried over):
#
#   scripts/gpu_attention_bench.sh [S ...]   (default S: 1024 4096 16384 32768)
#
#  1. builds benchmarks/gpu's kvc_attention_bench (the kvc runtime's CUDA
#     backend linked with the compiled bench variants);
#  2. runs it: every encoding x batch {1, 8, 32} x S (attention_bench.cpp);
#  3. runs the PyTorch SDPA fp16 baseline at the same shapes
#     (benchmarks/gpu/sdpa_baseline.py);
#  4. merges both into gpu-attention-<date>.md (benchmarks/gpu/bench_report.py:
#     a table per encoding, speedups, issue 5's targets), with the machine
#     and the commands, next to the two JSON files.
# Results and logs go to $OUT when it is set (device runs: copy the report
# into benchmarks/results/ afterwards), else the report and its JSON files
# to benchmarks/results/ and the logs to the build dir. Environment:
# KVC_ATTENTION_ARTIFACTS (default build/gpu-attention),
# KVC_GPU_BENCH_BUILD_DIR (default /tmp/kvc-gpu-bench-build), CUDA_HOME
# (default /usr/local/cuda), PYTHON (default python3), KVC_GPU_BENCH_REPS
# (timed calls per row, default 50), KVC_GPU_BENCH_SEED,
# KVC_GPU_BENCH_BUDGET (seconds for the whole script, default 450: the
# benchmark starts no row after its share, SDPA and the report keep 60 s
# to 100 s), and
# KVC_GPU_PEAK_TBPS (the "% of peak" bandwidth; default from the GPU's
# name: 3.35 for an H100 SXM (HBM3, the issue's figure), 4.8 for an H200
# (HBM3e), else 3.35 with a warning), and
# KVC_GPU_BENCH_DATE (the report's date, default today's, UTC),
# KVC_GPU_BENCH_TAG (appended to the files' names and the report's title:
# gpu-attention-<date>-<tag>.md, for a run in parts such as
# scripts/gpu_issue5.sh's), KVC_GPU_BENCH_RESERVE (seconds of the budget
# kept for SDPA and the report: no row starts after that, default 100),
# KVC_GPU_BENCH_REPORT_PATH_FILE (a file into which the script writes the
# path of the report it wrote, for a caller that adds to the report, such
# as scripts/gpu_issue5.sh: the name is built here alone),
# KVC_GPU_BENCH_ONLY (--only names: the rows of those variants alone),
# KVC_GPU_BENCH_BATCHES (--batches: batch sizes, comma-separated, in the
# order to run them; default every one, ascending; SDPA runs the same), and
# KVC_GPU_PROGRAMS (which build runs: cuda, the default; emu, the same code
# with its kernels in kvc's GPU emulator, which needs KVC_GPU_EMULATOR or a
# build dir configured with it, or host, the kvc-cpu-pipeline loops: plumbing
# dry runs without a GPU, scripts/gpu_issue5_rehearsal.sh, whose times mean
# nothing, whose report never goes to benchmarks/results, and in which
# SDPA's exit 77, no CUDA device, is not a failure). Exits 1 when a step
# failed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARTIFACTS="${KVC_ATTENTION_ARTIFACTS:-$ROOT/build/gpu-attention}"
BUILD_DIR="${KVC_GPU_BENCH_BUILD_DIR:-/tmp/kvc-gpu-bench-build}"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
PYTHON="${PYTHON:-python3}"
REPS="${KVC_GPU_BENCH_REPS:-50}"
PROGRAMS="${KVC_GPU_PROGRAMS:-cuda}"
export PATH="$CUDA_HOME/bin:$PATH"
LOG_DIR="${OUT:-$BUILD_DIR}"
RESULTS_DIR="${OUT:-$ROOT/benchmarks/results}"
case "$PROGRAMS" in
  cuda) SUFFIX= ;;
  emu) SUFFIX=_emu ;;
  host) SUFFIX=_host ;;
  *) echo "gpu_attention_bench: KVC_GPU_PROGRAMS must be cuda, emu or host," \
          "not '$PROGRAMS'"
     exit 1 ;;
esac
[ "$PROGRAMS" = cuda ] || RESULTS_DIR="$LOG_DIR"
mkdir -p "$LOG_DIR" "$BUILD_DIR" "$RESULTS_DIR"
LOG="$LOG_DIR/gpu_attention_bench.log"
DATE="${KVC_GPU_BENCH_DATE:-$(date -u +%Y-%m-%d)}"
TAG="${KVC_GPU_BENCH_TAG:-}"
case "$TAG" in
  *[!A-Za-z0-9_-]*) echo "gpu_attention_bench: KVC_GPU_BENCH_TAG may hold" \
                         "letters, digits, '_' and '-' only, not '$TAG'"
                    exit 1 ;;
esac
STEM="$RESULTS_DIR/gpu-attention-$DATE${TAG:+-$TAG}"
RESERVE="${KVC_GPU_BENCH_RESERVE:-100}"
case "$RESERVE" in
  ''|*[!0-9]*) echo "gpu_attention_bench: KVC_GPU_BENCH_RESERVE must be a" \
                    "number of seconds, not '$RESERVE'"
               exit 1 ;;
esac
REPORT_PATH_FILE="${KVC_GPU_BENCH_REPORT_PATH_FILE:-}"
[ -z "$REPORT_PATH_FILE" ] || rm -f "$REPORT_PATH_FILE"
KVC_JSON="$STEM-kvc.json"
SDPA_JSON="$STEM-sdpa.json"
MACHINE="$LOG_DIR/machine.txt"
COMMANDS="$LOG_DIR/commands.txt"
LENGTHS=("$@")
SEED_ARGS=()
[ -n "${KVC_GPU_BENCH_SEED:-}" ] && SEED_ARGS=(--seed "$KVC_GPU_BENCH_SEED")
start=$SECONDS
BUDGET="${KVC_GPU_BENCH_BUDGET:-450}"
# Seconds left of the budget, less $1 kept for later steps.
left() { echo $((BUDGET - (SECONDS - start) - $1)); }

say() { echo "gpu_attention_bench: $*" | tee -a "$LOG"; }
: > "$LOG"
failed=0

# --- The machine ----------------------------------------------------------
{
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.max.sm,clocks.max.mem \
    --format=csv || echo "nvidia-smi failed"
  nvcc --version | tail -n 2
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)' 2>&1 |
    tail -n 1
  echo "host: $(uname -srm), $(nproc) CPUs"
  echo "kvc: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(
    git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
  echo "artifacts: $(cat "$ARTIFACTS/bench/chip.txt" 2>/dev/null || echo '?')," \
       "min-blocks-per-sm $(cat "$ARTIFACTS/bench/min-blocks-per-sm.txt" 2>/dev/null || echo '?'),"  \
       "split-blocks $(cat "$ARTIFACTS/bench/split-blocks.txt" 2>/dev/null || echo '?'),"  \
       "code-to-float $(cat "$ARTIFACTS/bench/code-to-float.txt" 2>/dev/null || echo '?')," \
       "launch stream: $(cat "$ARTIFACTS/bench/launch-stream.txt" 2>/dev/null || echo '?')," \
       "wait-on-return $(cat "$ARTIFACTS/bench/wait-on-return.txt" 2>/dev/null || echo '?')"
} > "$MACHINE" 2>&1
tee -a "$LOG" < "$MACHINE"
# The issue's bandwidth targets are fractions of the device's peak.
gpu_name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)"
PEAK="${KVC_GPU_PEAK_TBPS:-}"
if [ -z "$PEAK" ]; then
  case "$gpu_name" in
    *H200*) PEAK=4.8 ;;
    *H100*PCIe*) PEAK=2.0 ;;
    *H100*) PEAK=3.35 ;;
    *) PEAK=3.35
       say "WARNING: peak bandwidth of '${gpu_name:-no GPU}' unknown: % of" \
           "peak uses 3.35 TB/s (set KVC_GPU_PEAK_TBPS)" ;;
  esac
fi
echo "peak bandwidth: $PEAK TB/s" >> "$MACHINE"
echo "KVC_GPU_BENCH_BUDGET=$BUDGET KVC_GPU_BENCH_REPS=$REPS" \
     "KVC_GPU_BENCH_RESERVE=$RESERVE" \
     "scripts/gpu_attention_bench.sh ${LENGTHS[*]}" > "$COMMANDS"
if [ ! -f "$ARTIFACTS/bench/bench_manifest.txt" ]; then
  say "no $ARTIFACTS/bench/bench_manifest.txt: run" \
      "KVC_GPU_BUILD_ONLY=bench scripts/gpu_attention_build.sh on a machine" \
      "with LLVM/MLIR and carry build/gpu-attention"
  exit 1
fi
if [ "$(cat "$ARTIFACTS/bench/launch-stream.txt" 2>/dev/null)" = own ]; then
  say "WARNING: the bench objects launch on a stream of their own: the" \
      "CUDA events do not isolate the kernels (rebuild them with a newer kvc-opt)"
fi

# --- 1. Build -------------------------------------------------------------
generator=(-G Ninja)
command -v ninja >/dev/null || generator=(-G "Unix Makefiles")
cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
       head -n1 | tr -d ' .')"
TARGET="kvc_attention_bench$SUFFIX"
build_start=$SECONDS
if ! { cmake -S "$ROOT/benchmarks/gpu" -B "$BUILD_DIR" "${generator[@]}" \
         -DCMAKE_BUILD_TYPE=RelWithDebInfo \
         -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" \
         -DCMAKE_CUDA_ARCHITECTURES="${cap:-90}" \
         -DKVC_ATTENTION_ARTIFACTS="$ARTIFACTS" \
         ${KVC_GPU_EMULATOR:+"-DKVC_GPU_EMULATOR=$KVC_GPU_EMULATOR"} &&
       cmake --build "$BUILD_DIR" -j "$(nproc)" --target "$TARGET"
     } >> "$LOG" 2>&1; then
  tail -n 40 "$LOG"
  say "the build failed (see $LOG)"
  exit 1
fi
say "built $TARGET in $((SECONDS - build_start)) s"

# --- 2. kvc ----------------------------------------------------------------
# The benchmark starts no row after its share of the budget (all of it but
# the reserve); the timeout, which keeps 60 % of the reserve for SDPA and
# the report, catches a row that overruns (rows are written to the JSON as
# they finish).
share=$(left "$RESERVE")
if [ "$share" -lt 30 ]; then
  say "no time left for the benchmark (budget $BUDGET s)"
  exit 1
fi
ONLY_ARGS=()
[ -n "${KVC_GPU_BENCH_ONLY:-}" ] && ONLY_ARGS=(--only "$KVC_GPU_BENCH_ONLY")
BATCH_ARGS=()
SDPA_BATCH_ARGS=()
if [ -n "${KVC_GPU_BENCH_BATCHES:-}" ]; then
  BATCH_ARGS=(--batches "$KVC_GPU_BENCH_BATCHES")
  read -r -a SDPA_BATCH_ARGS <<< "--batches ${KVC_GPU_BENCH_BATCHES//,/ }"
fi
KVC_CMD=("$BUILD_DIR/$TARGET" --reps "$REPS" "${SEED_ARGS[@]}" "${ONLY_ARGS[@]}"
         "${BATCH_ARGS[@]}" --budget "$share" --peak-tbps "$PEAK"
         --json "$KVC_JSON" "${LENGTHS[@]}")
echo "${KVC_CMD[*]}" >> "$COMMANDS"
say "kvc: ${KVC_CMD[*]}"
timeout -k 10 "$(left $((RESERVE * 3 / 5)))" "${KVC_CMD[@]}" 2>&1 | tee "$LOG_DIR/kvc_bench.log" |
  grep -v "^attention_bench: .*filled" | tee -a "$LOG"
status=${PIPESTATUS[0]}
if [ "$status" -eq 77 ]; then
  say "no usable CUDA device"
  exit 1
elif [ "$status" -ne 0 ]; then
  say "kvc_attention_bench exited with status $status"
  failed=1
fi

# --- 3. PyTorch SDPA -------------------------------------------------------
sdpa_share=$(left 15)
if [ "$sdpa_share" -lt 10 ]; then
  say "no time left for the SDPA baseline"
  failed=1
else
  SDPA_CMD=("$PYTHON" "$ROOT/benchmarks/gpu/sdpa_baseline.py" --reps "$REPS"
            "${SDPA_BATCH_ARGS[@]}"
            --peak-tbps "$PEAK"
            --budget $((sdpa_share - 10)) --json "$SDPA_JSON" "${LENGTHS[@]}")
  echo "${SDPA_CMD[*]}" >> "$COMMANDS"
  say "sdpa: ${SDPA_CMD[*]}"
  timeout -k 5 "$sdpa_share" "${SDPA_CMD[@]}" 2>&1 |
    tee "$LOG_DIR/sdpa_baseline.log" | tee -a "$LOG"
  status=${PIPESTATUS[0]}
  if [ "$status" -eq 77 ] && [ "$PROGRAMS" != cuda ]; then
    say "SDPA not measured: no CUDA device for PyTorch" \
        "(KVC_GPU_PROGRAMS=$PROGRAMS, a dry run)"
  elif [ "$status" -ne 0 ]; then
    say "sdpa_baseline.py exited with status $status"
    failed=1
  fi
fi

# --- 4. The report ---------------------------------------------------------
if [ -f "$KVC_JSON" ]; then
  "$PYTHON" "$ROOT/benchmarks/gpu/bench_report.py" --kvc "$KVC_JSON" \
    --sdpa "$SDPA_JSON" --machine "$MACHINE" --commands "$COMMANDS" \
    --date "$DATE${TAG:+, $TAG}" --out "$STEM.md" 2>&1 | tee -a "$LOG"
  if [ "${PIPESTATUS[0]}" -eq 0 ]; then
    [ -z "$REPORT_PATH_FILE" ] || echo "$STEM.md" > "$REPORT_PATH_FILE"
  else
    failed=1
  fi
  grep -A 12 "^## Targets" "$STEM.md" | tee -a "$LOG"
else
  say "no $KVC_JSON: no report"
  failed=1
fi
say "finished in $((SECONDS - start)) s; log in $LOG"
exit "$failed"
