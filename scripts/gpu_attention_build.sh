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
# sources, in OUTDIR/host the same functions compiled by
# kvc-cpu-pipeline (the check's host dry run, kvc_attention_check_host,
# which runs anywhere), and in OUTDIR/emu the kvc-gpu-pipeline objects with
# the kernels as LLVM bitcode (format=llvm) for the emulated check
# (kvc_attention_check_emu, linked with libkvc_gpu_emulator); the intermediate LLVM dialect / IR files go to
# OUTDIR.work (not needed on the GPU machine). The kvc.append variants of
# benchmarks/gpu/append_variants.py (the append check, append_check.cpp)
# go the same way into OUTDIR/append (append_manifest.txt,
# append_modules.txt, one object per module), OUTDIR/append/host
# (kvc-cpu-pipeline with append=generated) and OUTDIR/append/emu
# (format=llvm, for the emulator), apart from the attention
# objects: each check links only its own. The benchmark's variants
# (benchmarks/gpu/bench_variants.py, attention_bench.cpp) go the way of the
# attention ones into OUTDIR/bench (bench_manifest.txt, bench_modules.txt),
# OUTDIR/bench/host and OUTDIR/bench/emu. Environment: CUDA_HOME (default
# /usr/local/cuda; the NVVM target needs its ptxas and libdevice), CHIP
# (default sm_90a), MIN_BLOCKS (the split kernels' min-blocks-per-sm,
# default the pipeline's, 5; 0 leaves ptxas its own target), CODE_TO_FLOAT
# (the attention kernels' code-to-float, bits or convert; default bits),
# BENCH_SPLIT_TOKENS (the bench variants' split-tokens, default 512),
# SPLIT_BLOCKS (the attention kernels' split-blocks, default the
# pipeline's, 512; 0: splits of split-tokens), KVC_OPT (default build/bin/kvc-opt), LLVM_BIN (default
# /usr/lib/llvm-22/bin), PYTHON (default .venv/bin/python, else python3),
# KVC_GPU_BUILD_ONLY (attention, append or bench: rebuild only that part,
# leaving the other parts of OUTDIR as they are; default all three),
# KVC_GPU_BUILD_DEVICE_ONLY=1 (only what a GPU machine links: no host/ or
# emu/ objects, which are for dry runs here; the device tool carries at
# most 64 MiB with the working tree, and the whole build is ~69 MB of
# which the GPU's part is ~25 MB; also about half the build time),
# KVC_GPU_BUILD_JOBS (how many compiles run at once, default nproc).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTDIR="${1:-$ROOT/build/gpu-attention}"
WORKDIR="$OUTDIR.work"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
CHIP="${CHIP:-sm_90a}"
MIN_BLOCKS="${MIN_BLOCKS:-5}"
BENCH_SPLIT_TOKENS="${BENCH_SPLIT_TOKENS:-512}"
SPLIT_BLOCKS="${SPLIT_BLOCKS:-512}"
CODE_TO_FLOAT="${CODE_TO_FLOAT:-bits}"
KVC_OPT="${KVC_OPT:-$ROOT/build/bin/kvc-opt}"
LLVM_BIN="${LLVM_BIN:-/usr/lib/llvm-22/bin}"
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"
  else PYTHON=python3; fi
fi

fail() {
  echo "gpu_attention_build: $*" >&2
  # Jobs still compiling would write into OUTDIR after the failure.
  jobs -p | xargs -r kill 2> /dev/null || true
  exit 1
}
[ -x "$KVC_OPT" ] || fail "no kvc-opt at $KVC_OPT (build the kvc-opt target)"
for tool in mlir-translate llc; do
  [ -x "$LLVM_BIN/$tool" ] || fail "no $tool in $LLVM_BIN"
done
[ -x "$CUDA_HOME/bin/ptxas" ] ||
  fail "no ptxas in $CUDA_HOME/bin (set CUDA_HOME): cubins need it"

# `kvc-opt MLIR --PIPELINE="OPTIONS"`, its LLVM IR (WORKSTEM.ll) and an
# x86-64 object: compile_object MLIR PIPELINE OPTIONS WORKSTEM OBJECT.
# kvc-cpu-pipeline objects (dry runs on this machine) may use F16C: their
# fp16 conversions are then instructions, not libgcc calls
# (kvc-expand-half-fma); the GPU host code stays baseline x86-64.
compile_object() {
  local features=
  if [ "$2" = kvc-cpu-pipeline ]; then features=-mattr=+f16c; fi
  "$KVC_OPT" "$1" --"$2"="$3" -o "$4.llvm.mlir" &&
    "$LLVM_BIN/mlir-translate" --mlir-to-llvmir "$4.llvm.mlir" -o "$4.ll" &&
    "$LLVM_BIN/llc" -O2 $features -filetype=obj -relocation-model=pic \
      "$4.ll" -o "$5"
}

# The compiles run as background jobs, at most JOBS at once: the modules
# are independent, and one kvc-opt or llc keeps one core busy.
JOBS="${KVC_GPU_BUILD_JOBS:-$(nproc)}"
case "$JOBS" in
  ''|*[!0-9]*|0) fail "KVC_GPU_BUILD_JOBS must be a positive number, not '$JOBS'" ;;
esac
running=0
# Waits for one job; a failed compile fails the build (its error is above).
reap() {
  wait -n || fail "a compile failed (its error is printed above)"
  running=$((running - 1))
}
spawn() {
  if [ "$running" -ge "$JOBS" ]; then reap; fi
  "$@" < /dev/null &
  running=$((running + 1))
}
drain() { while [ "$running" -gt 0 ]; do reap; done; }

ONLY="${KVC_GPU_BUILD_ONLY:-}"
DEVICE_ONLY="${KVC_GPU_BUILD_DEVICE_ONLY:-}"
case "$DEVICE_ONLY" in
  ""|0) DEVICE_ONLY= ;;
  1) ;;
  *) fail "KVC_GPU_BUILD_DEVICE_ONLY must be 1 or 0, not '$DEVICE_ONLY'" ;;
esac
# 1 when the host dry-run and emulator objects are built too.
HOST_PARTS=1
if [ -n "$DEVICE_ONLY" ]; then HOST_PARTS=; fi
case "$ONLY" in
  "") rm -rf "$OUTDIR" "$WORKDIR" ;;
  attention) # everything but the append and bench parts
    for dir in "$OUTDIR" "$WORKDIR"; do
      if [ -d "$dir" ]; then
        find "$dir" -mindepth 1 -maxdepth 1 ! -name append ! -name bench \
          -exec rm -rf {} +
      fi
    done ;;
  append) rm -rf "$OUTDIR/append" "$WORKDIR/append" ;;
  bench) rm -rf "$OUTDIR/bench" "$WORKDIR/bench" ;;
  *) fail "KVC_GPU_BUILD_ONLY must be attention, append or bench, not '$ONLY'" ;;
esac

# Compiles the attention modules listed in DIR/MODULES ("<file> <page_tokens>
# <split_tokens> <key_product> <value_product> [<split_blocks>
# [<l2_prefetch> [<key_stages> [<value_stages> [<combine>
# [<mma_codes>]]]]]]", no split_blocks or "-": $SPLIT_BLOCKS, no
# l2_prefetch: none, no key_stages or value_stages: 0, no combine: kernel,
# no mma_codes: subnormal)
# into DIR/*.o (kvc-gpu-pipeline) and DIR/host/*.o
# (kvc-cpu-pipeline), intermediates in WORK, and checks that every variant
# of DIR/MANIFEST has `_mlir_ciface_<name>(binding, q, out)` (with a
# `mask=` field: `(binding, q, mask, out)`). EXTRA: more kvc-gpu-pipeline
# options for every module.
compile_attention() { # DIR WORK MODULES MANIFEST [emu] [EXTRA]
  local dir="$1" work="$2" modules="$3" manifest="$4" emu="${5:-}"
  local extra="${6:-}"
  local mlir page_tokens split_tokens key_product value_product split_blocks
  local l2_prefetch key_stages value_stages combine mma_codes
  local key_reads value_reads gpu_options
  local stem name ir
  local host="$HOST_PARTS"
  if [ -z "$host" ]; then emu=; fi
  mkdir -p "$dir" "$work"
  if [ -n "$host" ]; then mkdir -p "$dir/host" "$work/host"; fi
  if [ -n "$emu" ]; then mkdir -p "$dir/emu" "$work/emu"; fi
  while read -r mlir page_tokens split_tokens key_product value_product \
      split_blocks l2_prefetch key_stages value_stages combine mma_codes; do
    stem="${mlir%.mlir}"
    key_product="${key_product:-fma}"
    value_product="${value_product:-fma}"
    split_blocks="${split_blocks:-$SPLIT_BLOCKS}"
    if [ "$split_blocks" = - ]; then split_blocks="$SPLIT_BLOCKS"; fi
    l2_prefetch="${l2_prefetch:-none}"
    key_stages="${key_stages:-0}"
    value_stages="${value_stages:-0}"
    combine="${combine:-kernel}"
    mma_codes="${mma_codes:-subnormal}"
    echo "gpu_attention_build: $mlir (page-tokens=$page_tokens" \
         "split-tokens=$split_tokens split-blocks=$split_blocks" \
         "key-product=$key_product value-product=$value_product" \
         "l2-prefetch=$l2_prefetch key-stages=$key_stages" \
         "value-stages=$value_stages combine=$combine" \
         "mma-codes=$mma_codes chip=$CHIP" \
         "min-blocks-per-sm=$MIN_BLOCKS${extra:+ $extra})"
    gpu_options="chip=$CHIP page-tokens=$page_tokens split-tokens=$split_tokens split-blocks=$split_blocks min-blocks-per-sm=$MIN_BLOCKS code-to-float=$CODE_TO_FLOAT key-product=$key_product value-product=$value_product l2-prefetch=$l2_prefetch key-stages=$key_stages value-stages=$value_stages combine=$combine mma-codes=$mma_codes${extra:+ $extra}"
    spawn compile_object "$dir/$mlir" kvc-gpu-pipeline "$gpu_options" \
      "$work/$stem" "$dir/$stem.o"
    # The kernels as LLVM bitcode (format=llvm) for the GPU emulator
    # (libkvc_gpu_emulator): the emulated check runs them on the host.
    if [ -n "$emu" ]; then
      spawn compile_object "$dir/$mlir" kvc-gpu-pipeline "format=llvm $gpu_options" \
        "$work/emu/$stem" "$dir/emu/$stem.o"
    fi
    # The same functions as CPU loops, for the host dry run (appends, the
    # benchmark's, written by the kernels' emitter; the tensor-core
    # variants' keys read in that pass's 16-channel parts, their values
    # rounded to fp16).
    if [ -z "$host" ]; then continue; fi
    if [ "$key_product" = mma ]; then key_reads=parts; else key_reads=rows; fi
    if [ "$value_product" = mma ]; then value_reads=f16; else value_reads=f32; fi
    spawn compile_object "$dir/$mlir" kvc-cpu-pipeline \
      "page-tokens=$page_tokens append=generated key-reads=$key_reads value-reads=$value_reads" \
      "$work/host/$stem" "$dir/host/$stem.o"
  done < "$dir/$modules"
  drain

  # Every variant must have its C entry point (the programs look them up by
  # name), and the out-parameter must come last: (binding, q, out), or
  # (binding, q, mask, out) for a variant with a mask operand.
  local params signature fields
  variants=0
  while read -r name fields; do
    variants=$((variants + 1))
    params="ptr %0, ptr %1, ptr %2"
    signature="binding, q, out"
    case " $fields " in
      *" mask="*)
        params="ptr %0, ptr %1, ptr %2, ptr %3"
        signature="binding, q, mask, out" ;;
    esac
    for ir in "$work" ${host:+"$work/host"} ${emu:+"$work/emu"}; do
      grep -q "^define void @_mlir_ciface_$name($params)" "$ir"/*.ll ||
        fail "no _mlir_ciface_$name($signature) in $ir/*.ll"
    done
  done < "$dir/$manifest"
}

# --- Decode attention ------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = attention ]; then
  "$PYTHON" "$ROOT/benchmarks/gpu/attention_variants.py" "$OUTDIR"
  start=$SECONDS
  compile_attention "$OUTDIR" "$WORKDIR" modules.txt manifest.txt emu
  echo "$CHIP" > "$OUTDIR/chip.txt"
  echo "$MIN_BLOCKS" > "$OUTDIR/min-blocks-per-sm.txt"
  echo "gpu_attention_build: $variants variants," \
       "$(wc -l < "$OUTDIR/modules.txt") objects in $OUTDIR" \
       "($((SECONDS - start)) s)"
fi

# --- kvc.append ------------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = append ]; then
  APPEND="$OUTDIR/append"
  APPEND_WORK="$WORKDIR/append"
  mkdir -p "$APPEND" "$APPEND_WORK"
  if [ -z "$DEVICE_ONLY" ]; then
    mkdir -p "$APPEND/host" "$APPEND_WORK/host" "$APPEND/emu" \
      "$APPEND_WORK/emu"
  fi
  "$PYTHON" "$ROOT/benchmarks/gpu/append_variants.py" "$APPEND"
  start=$SECONDS
  while read -r mlir page_tokens; do
    stem="${mlir%.mlir}"
    echo "gpu_attention_build: $mlir (page-tokens=$page_tokens chip=$CHIP" \
         "min-blocks-per-sm=$MIN_BLOCKS)"
    append_options="chip=$CHIP page-tokens=$page_tokens min-blocks-per-sm=$MIN_BLOCKS"
    spawn compile_object "$APPEND/$mlir" kvc-gpu-pipeline "$append_options" \
      "$APPEND_WORK/$stem" "$APPEND/$stem.o"
    if [ -n "$DEVICE_ONLY" ]; then continue; fi
    # The kernels as LLVM bitcode for the GPU emulator's append check.
    spawn compile_object "$APPEND/$mlir" kvc-gpu-pipeline "format=llvm $append_options" \
      "$APPEND_WORK/emu/$stem" "$APPEND/emu/$stem.o"
    # The same appends as CPU loops (the emitter the kernels use), for the
    # host dry run.
    spawn compile_object "$APPEND/$mlir" kvc-cpu-pipeline \
      "page-tokens=$page_tokens append=generated" \
      "$APPEND_WORK/host/$stem" "$APPEND/host/$stem.o"
  done < "$APPEND/append_modules.txt"
  drain

  # `(cache, k, v) -> cache` becomes `ptr _mlir_ciface_<name>(binding,
  # k, v)`: the binding is returned, the tensors are memref descriptors.
  variants=0
  while read -r name _; do
    variants=$((variants + 1))
    for ir in "$APPEND_WORK" ${HOST_PARTS:+"$APPEND_WORK/host"} \
        ${HOST_PARTS:+"$APPEND_WORK/emu"}; do
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

# --- The benchmark's attention variants ------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = bench ]; then
  BENCH="$OUTDIR/bench"
  BENCH_WORK="$WORKDIR/bench"
  "$PYTHON" "$ROOT/benchmarks/gpu/bench_variants.py" "$BENCH" \
    --split-tokens "$BENCH_SPLIT_TOKENS"
  start=$SECONDS
  # The functions return with their kernels enqueued on the cache's stream
  # (no host wait inside a call), as a decode loop would run them: the
  # benchmark's CUDA events then time the device work alone, as they do
  # SDPA's, and it synchronizes the stream itself where a caller would.
  # The emulated benchmark (kvc_attention_bench_emu) runs their
  # format=llvm twins in bench/emu.
  compile_attention "$BENCH" "$BENCH_WORK" bench_modules.txt \
    bench_manifest.txt emu "wait-on-return=false"
  # Every attention variant's append twin: (binding, k, v) -> binding.
  while read -r name _; do
    twin="bench_append_${name#bench_}"
    for ir in "$BENCH_WORK" ${HOST_PARTS:+"$BENCH_WORK/host"} \
        ${HOST_PARTS:+"$BENCH_WORK/emu"}; do
      grep -q "^define ptr @_mlir_ciface_$twin(ptr %0, ptr %1, ptr %2)" \
          "$ir"/*.ll || fail "no _mlir_ciface_$twin(binding, k, v) in $ir/*.ll"
    done
  done < "$BENCH/bench_manifest.txt"
  # The benchmark times the calls with CUDA events on the cache's stream:
  # that measures the kernels only when the host code launches them there.
  if grep -q "kvc_rt_mlir_gpu_stream" "$BENCH_WORK"/*.ll; then
    echo cache > "$BENCH/launch-stream.txt"
  else
    echo "gpu_attention_build: WARNING: the bench objects do not call" \
         "kvc_rt_mlir_gpu_stream (kvc-opt predates launches on the cache's" \
         "stream): their GPU times will be call times" >&2
    echo own > "$BENCH/launch-stream.txt"
  fi
  echo "$CHIP" > "$BENCH/chip.txt"
  echo "$MIN_BLOCKS" > "$BENCH/min-blocks-per-sm.txt"
  echo "$SPLIT_BLOCKS" > "$BENCH/split-blocks.txt"
  echo "$CODE_TO_FLOAT" > "$BENCH/code-to-float.txt"
  echo false > "$BENCH/wait-on-return.txt"
  echo "gpu_attention_build: $variants bench variants," \
       "$(wc -l < "$BENCH/bench_modules.txt") objects in $BENCH" \
       "($((SECONDS - start)) s)"
fi
