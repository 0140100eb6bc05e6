#!/usr/bin/env bash
# Fuzzes the ONNX importer (kvc-translate --import-onnx) with libFuzzer
# (clang, ASan + UBSan) over mutated .onnx files.
#
#   scripts/onnx_fuzz.sh [RUNS] [libFuzzer args...]
#
# Compiles lib/Target/ONNX/*.cpp and the fuzz target with clang into
# $KVC_ONNX_FUZZ_BUILD_DIR (default build-onnx-fuzz), linking the kvc
# libraries of the main build ($KVC_BUILD_DIR, default build: its generated
# headers and libKVCDialect/KVCSupport/KVCNumerics are reused), then runs
# RUNS inputs (default 100000) from a corpus seeded with the test models in
# test/Frontend/ONNX/Inputs. A crash, a sanitizer report or an unverified
# module aborts with the input saved as crash-*. Ends with "N passed, N failed".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAIN_BUILD="${KVC_BUILD_DIR:-$ROOT/build}"
BUILD_DIR="${KVC_ONNX_FUZZ_BUILD_DIR:-$ROOT/build-onnx-fuzz}"
RUNS="${1:-100000}"
shift || true

CXX_BIN="$(command -v clang++ || command -v clang++-14 || true)"
if [ -z "$CXX_BIN" ]; then
  echo "onnx_fuzz: clang is required (Debian: clang libclang-rt-14-dev)" >&2
  exit 1
fi
for lib in libKVCDialect.a Support/libKVCSupport.a Numerics/libKVCNumerics.a; do
  if [ ! -f "$MAIN_BUILD/lib/$lib" ]; then
    echo "onnx_fuzz: $MAIN_BUILD/lib/$lib is missing; build the project first" >&2
    exit 1
  fi
done
LLVM_PREFIX="$(llvm-config-22 --prefix 2>/dev/null || echo /usr/lib/llvm-22)"
mkdir -p "$BUILD_DIR/obj"
SAN=("-fsanitize=fuzzer,address,undefined" -fno-sanitize=vptr -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
FLAGS=(-std=c++17 -O1 -g "${SAN[@]}" -DONNX_ML=1 -DONNX_NAMESPACE=onnx
       -I"$ROOT/include" -I"$MAIN_BUILD/include" -I"$LLVM_PREFIX/include"
       -Wno-unused-command-line-argument)

# Compile what changed (two jobs, like the main build).
SOURCES=("$ROOT"/lib/Target/ONNX/*.cpp "$ROOT/lib/Target/ONNX/fuzz/ONNXImportFuzzer.cpp")
OBJECTS=()
pids=()
for src in "${SOURCES[@]}"; do
  obj="$BUILD_DIR/obj/$(basename "${src%.cpp}").o"
  OBJECTS+=("$obj")
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$ROOT/lib/Target/ONNX/Importer.h" -nt "$obj" ] \
     || [ "$ROOT/include/kvc/Target/ONNX/ImportONNX.h" -nt "$obj" ]; then
    if [[ "$src" == */fuzz/* ]]; then
      "$CXX_BIN" "${FLAGS[@]}" -c "$src" -o "$obj" &
    else
      # Only the fuzz target gets libFuzzer's main; the rest is instrumented.
      "$CXX_BIN" "${FLAGS[@]/-fsanitize=fuzzer,address,undefined/-fsanitize=fuzzer-no-link,address,undefined}" -c "$src" -o "$obj" &
    fi
    pids+=($!)
    if [ "${#pids[@]}" -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
BIN="$BUILD_DIR/kvc_onnx_fuzz"
"$CXX_BIN" "${SAN[@]}" "${OBJECTS[@]}" -o "$BIN" \
  "$MAIN_BUILD/lib/libKVCDialect.a" "$MAIN_BUILD/lib/Support/libKVCSupport.a" \
  "$MAIN_BUILD/lib/Numerics/libKVCNumerics.a" \
  -L"$LLVM_PREFIX/lib" -Wl,-rpath,"$LLVM_PREFIX/lib" -lMLIR -lLLVM \
  -lonnx_proto -lprotobuf -lpthread

CORPUS="$BUILD_DIR/fuzz-corpus"
mkdir -p "$CORPUS"
cp -n "$ROOT"/test/Frontend/ONNX/Inputs/*.onnx "$CORPUS"/ 2>/dev/null || true
cd "$BUILD_DIR"
start=$(date +%s)
status=0
"$BIN" -runs="$RUNS" -max_len=4096 -seed=1 -rss_limit_mb=4096 \
  -dict="$ROOT/lib/Target/ONNX/fuzz/onnx.dict" \
  -print_final_stats=1 "$@" "$CORPUS" || status=$?
echo "onnx_fuzz: $RUNS runs requested, $(( $(date +%s) - start )) s, exit $status"
if [ "$status" -eq 0 ]; then
  echo "1 passed, 0 failed"
else
  echo "0 passed, 1 failed"
fi
exit "$status"
