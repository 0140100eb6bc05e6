#!/usr/bin/env bash
# Fuzzes the runtime's C API with libFuzzer (clang, ASan + UBSan).
#
#   scripts/runtime_fuzz.sh [RUNS] [libFuzzer args...]
#
# Configures a standalone runtime build with clang in $KVC_RT_FUZZ_BUILD_DIR
# (default build-rt-fuzz), builds kvc_runtime_fuzz and runs RUNS inputs
# (default 100000) from the corpus in that build directory; the inputs
# drive the model-based checker of runtime/test/ModelDriver.h. A mismatch
# or a sanitizer report aborts with the crashing input saved as crash-*.
# Ends with a "N passed, N failed" line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${KVC_RT_FUZZ_BUILD_DIR:-$ROOT/build-rt-fuzz}"
RUNS="${1:-100000}"
shift || true

CXX_BIN="$(command -v clang++ || command -v clang++-14 || true)"
C_BIN="$(command -v clang || command -v clang-14 || true)"
if [ -z "$CXX_BIN" ] || [ -z "$C_BIN" ]; then
  echo "runtime_fuzz: clang is required (Debian: clang libclang-rt-14-dev)" >&2
  exit 1
fi
GENERATOR=(-G Ninja)
command -v ninja >/dev/null || GENERATOR=(-G "Unix Makefiles")
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S "$ROOT/runtime" -B "$BUILD_DIR" "${GENERATOR[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER="$C_BIN" -DCMAKE_CXX_COMPILER="$CXX_BIN" \
    -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" \
    -DKVC_RUNTIME_CUDA=OFF
fi
cmake --build "$BUILD_DIR" --target kvc_runtime_fuzz -j 2

CORPUS="$BUILD_DIR/fuzz-corpus"
mkdir -p "$CORPUS"
cd "$BUILD_DIR"
start=$(date +%s)
status=0
"$BUILD_DIR/fuzz/kvc_runtime_fuzz" -runs="$RUNS" -max_len=4096 -seed=1 \
  -print_final_stats=1 "$@" "$CORPUS" || status=$?
echo "runtime_fuzz: $RUNS runs requested, $(( $(date +%s) - start )) s, exit $status"
if [ "$status" -eq 0 ]; then
  echo "1 passed, 0 failed"
else
  echo "0 passed, 1 failed"
fi
exit "$status"
