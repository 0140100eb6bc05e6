#!/usr/bin/env bash
# Builds the artifacts of the GPU decode-attention check on a machine WITH
# LLVM/MLIR (and the CUDA toolkit's ptxas), which need not have a GPU: the
# variants of benchmarks/gpu/attention_variants.py through
# `kvc-opt --kvc-gpu-pipeline` (cubins embedded), `mlir-translate` and `llc`
# into x86-64 objects. The GPU machine, which has no LLVM/MLIR, links them
# into benchmarks/gpu's check (scripts/gpu_attention_check.sh).
#
#   scripts/gpu_attention_build.sh [OUTDIR]     (default build/gpu-attention)
#
# OUTDIR gets one object per module, manifest.txt, modules.txt and the MLIR
# sources, and in OUTDIR/host the same functions compiled by
# kvc-cpu-pipeline (the check's host dry run, kvc_attention_check_host,
# which runs anywhere); the intermediate LLVM dialect / IR files go to
# OUTDIR.work (not needed on the GPU machine). The kvc.append variants of
# benchmarks/gpu/append_variants.py (the append check, append_check.cpp)
# go the same way into OUTDIR/append (append_manifest.txt,
# append_modules.txt, one object per module) and OUTDIR/append/host
# (kvc-cpu-pipeline with append=generated), apart from the attention
# objects: each check links only its own. Environment: CUDA_HOME (default
# /usr/local/cuda; the NVVM target needs its ptxas and libdevice), CHIP
# (default sm_90a), MIN_BLOCKS (the split kernels' min-blocks-per-sm,
# default the pipeline's, 5; 0 leaves ptxas its own target), KVC_OPT (default build/bin/kvc-opt), LLVM_BIN (default
# /usr/lib/llvm-22/bin), PYTHON (default .venv/bin/python, else python3),
# KVC_GPU_BUILD_ONLY (attention or append: rebuild only that part, leaving
# the other part of OUTDIR as it is; default both).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTDIR="${1:-$ROOT/build/gpu-attention}"
WORKDIR="$OUTDIR.work"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
CHIP="${CHIP:-sm_90a}"
MIN_BLOCKS="${MIN_BLOCKS:-5}"
KVC_OPT="${KVC_OPT:-$ROOT/build/bin/kvc-opt}"
LLVM_BIN="${LLVM_BIN:-/usr/lib/llvm-22/bin}"
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"
  else PYTHON=python3; fi
fi

fail() { echo "gpu_attention_build: $*" >&2; exit 1; }
[ -x "$KVC_OPT" ] || fail "no kvc-opt at $KVC_OPT (build the kvc-opt target)"
for tool in mlir-translate llc; do
  [ -x "$LLVM_BIN/$tool" ] || fail "no $tool in $LLVM_BIN"
done
[ -x "$CUDA_HOME/bin/ptxas" ] ||
  fail "no ptxas in $CUDA_HOME/bin (set CUDA_HOME): cubins need it"

ONLY="${KVC_GPU_BUILD_ONLY:-}"
case "$ONLY" in
  "") rm -rf "$OUTDIR" "$WORKDIR" ;;
  attention) # everything but the append part
    for dir in "$OUTDIR" "$WORKDIR"; do
      if [ -d "$dir" ]; then
        find "$dir" -mindepth 1 -maxdepth 1 ! -name append -exec rm -rf {} +
      fi
    done ;;
  append) rm -rf "$OUTDIR/append" "$WORKDIR/append" ;;
  *) fail "KVC_GPU_BUILD_ONLY must be attention or append, not '$ONLY'" ;;
esac

# --- Decode attention ------------------------------------------------------
if [ "$ONLY" != append ]; then
  mkdir -p "$OUTDIR/host" "$WORKDIR/host"
  "$PYTHON" "$ROOT/benchmarks/gpu/attention_variants.py" "$OUTDIR"
  start=$SECONDS
  while read -r mlir page_tokens split_tokens; do
    stem="${mlir%.mlir}"
    echo "gpu_attention_build: $mlir (page-tokens=$page_tokens" \
         "split-tokens=$split_tokens chip=$CHIP min-blocks-per-sm=$MIN_BLOCKS)"
    "$KVC_OPT" "$OUTDIR/$mlir" \
      --kvc-gpu-pipeline="chip=$CHIP page-tokens=$page_tokens split-tokens=$split_tokens min-blocks-per-sm=$MIN_BLOCKS" \
      -o "$WORKDIR/$stem.llvm.mlir"
    "$LLVM_BIN/mlir-translate" --mlir-to-llvmir "$WORKDIR/$stem.llvm.mlir" \
      -o "$WORKDIR/$stem.ll"
    "$LLVM_BIN/llc" -O2 -filetype=obj -relocation-model=pic \
      "$WORKDIR/$stem.ll" -o "$OUTDIR/$stem.o"
    # The same functions as CPU loops, for the host dry run of the check.
    "$KVC_OPT" "$OUTDIR/$mlir" --kvc-cpu-pipeline="page-tokens=$page_tokens" \
      -o "$WORKDIR/$stem.host.llvm.mlir"
    "$LLVM_BIN/mlir-translate" --mlir-to-llvmir \
      "$WORKDIR/$stem.host.llvm.mlir" -o "$WORKDIR/host/$stem.ll"
    "$LLVM_BIN/llc" -O2 -filetype=obj -relocation-model=pic \
      "$WORKDIR/host/$stem.ll" -o "$OUTDIR/host/$stem.o"
  done < "$OUTDIR/modules.txt"

  # Every variant must have its C entry point (the check looks them up by
  # name), and the out-parameter must come last: (binding, q, out).
  variants=0
  while read -r name _; do
    variants=$((variants + 1))
    for ir in "$WORKDIR" "$WORKDIR/host"; do
      grep -q "^define void @_mlir_ciface_$name(ptr %0, ptr %1, ptr %2)" \
          "$ir"/*.ll ||
        fail "no _mlir_ciface_$name(binding, q, out) in $ir/*.ll"
    done
  done < "$OUTDIR/manifest.txt"
  echo "$CHIP" > "$OUTDIR/chip.txt"
  echo "$MIN_BLOCKS" > "$OUTDIR/min-blocks-per-sm.txt"
  echo "gpu_attention_build: $variants variants," \
       "$(wc -l < "$OUTDIR/modules.txt") objects in $OUTDIR" \
       "($((SECONDS - start)) s)"
fi

# --- kvc.append ------------------------------------------------------------
if [ "$ONLY" != attention ]; then
  APPEND="$OUTDIR/append"
  APPEND_WORK="$WORKDIR/append"
  mkdir -p "$APPEND/host" "$APPEND_WORK/host"
  "$PYTHON" "$ROOT/benchmarks/gpu/append_variants.py" "$APPEND"
  start=$SECONDS
  while read -r mlir page_tokens; do
    stem="${mlir%.mlir}"
    echo "gpu_attention_build: $mlir (page-tokens=$page_tokens chip=$CHIP" \
         "min-blocks-per-sm=$MIN_BLOCKS)"
    "$KVC_OPT" "$APPEND/$mlir" \
      --kvc-gpu-pipeline="chip=$CHIP page-tokens=$page_tokens min-blocks-per-sm=$MIN_BLOCKS" \
      -o "$APPEND_WORK/$stem.llvm.mlir"
    "$LLVM_BIN/mlir-translate" --mlir-to-llvmir \
      "$APPEND_WORK/$stem.llvm.mlir" -o "$APPEND_WORK/$stem.ll"
    "$LLVM_BIN/llc" -O2 -filetype=obj -relocation-model=pic \
      "$APPEND_WORK/$stem.ll" -o "$APPEND/$stem.o"
    # The same appends as CPU loops (the emitter the kernels use), for the
    # host dry run.
    "$KVC_OPT" "$APPEND/$mlir" \
      --kvc-cpu-pipeline="page-tokens=$page_tokens append=generated" \
      -o "$APPEND_WORK/$stem.host.llvm.mlir"
    "$LLVM_BIN/mlir-translate" --mlir-to-llvmir \
      "$APPEND_WORK/$stem.host.llvm.mlir" -o "$APPEND_WORK/host/$stem.ll"
    "$LLVM_BIN/llc" -O2 -filetype=obj -relocation-model=pic \
      "$APPEND_WORK/host/$stem.ll" -o "$APPEND/host/$stem.o"
  done < "$APPEND/append_modules.txt"

  # `(cache, k, v) -> cache` becomes `ptr _mlir_ciface_<name>(binding,
  # k, v)`: the binding is returned, the tensors are memref descriptors.
  variants=0
  while read -r name _; do
    variants=$((variants + 1))
    for ir in "$APPEND_WORK" "$APPEND_WORK/host"; do
      grep -q "^define ptr @_mlir_ciface_$name(ptr %0, ptr %1, ptr %2)" \
          "$ir"/*.ll ||
        fail "no ptr _mlir_ciface_$name(binding, k, v) in $ir/*.ll"
    done
  done < "$APPEND/append_manifest.txt"
  echo "$CHIP" > "$APPEND/chip.txt"
  echo "gpu_attention_build: $variants append variants," \
       "$(wc -l < "$APPEND/append_modules.txt") objects in $APPEND" \
       "($((SECONDS - start)) s)"
fi
