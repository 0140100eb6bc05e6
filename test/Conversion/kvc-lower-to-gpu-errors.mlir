// RUN: kvc-opt %s -split-input-file -verify-diagnostics --kvc-lower-to-gpu
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="split-tokens=100" 2>&1 | FileCheck %s --check-prefix=SPLIT
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="block-threads=96" 2>&1 | FileCheck %s --check-prefix=THREADS
// RUN: not kvc-opt %s -split-input-file --kvc-gpu-pipeline="format=elf" 2>&1 | FileCheck %s --check-prefix=FORMAT
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="min-blocks-per-sm=17" 2>&1 | FileCheck %s --check-prefix=BLOCKS
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="code-to-float=fast" 2>&1 | FileCheck %s --check-prefix=CODES
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="key-product=wmma" 2>&1 | FileCheck %s --check-prefix=PRODUCT
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="key-product=mma" 2>&1 | FileCheck %s --check-prefix=MMA
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="value-product=wmma" 2>&1 | FileCheck %s --check-prefix=VPRODUCT
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="value-product=mma" 2>&1 | FileCheck %s --check-prefix=VMMA
// RUN: not kvc-opt %s -split-input-file --kvc-gpu-pipeline="value-product=mma,x" 2>&1 | FileCheck %s --check-prefix=VFORMAT
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="l2-prefetch=all" 2>&1 | FileCheck %s --check-prefix=PREFETCH
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="l2-prefetch=lines l2-prefetch-bytes=0" 2>&1 | FileCheck %s --check-prefix=PREFETCHBYTES
// RUN: not kvc-opt %s -split-input-file --kvc-gpu-pipeline="chip=sm_80 l2-prefetch=bulk" 2>&1 | FileCheck %s --check-prefix=BULKCHIP
// RUN: not kvc-opt %s -split-input-file --kvc-gpu-pipeline="chip=sm_86 l2-prefetch=lines" 2>&1 | FileCheck %s --check-prefix=LINESCHIP
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="key-product=mma key-stages=1" 2>&1 | FileCheck %s --check-prefix=STAGES
// RUN: not kvc-opt %s -split-input-file --kvc-gpu-pipeline="chip=sm_75 key-product=mma key-stages=2" 2>&1 | FileCheck %s --check-prefix=STAGESCHIP
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="value-product=mma value-stages=1" 2>&1 | FileCheck %s --check-prefix=VSTAGES
// RUN: not kvc-opt %s -split-input-file --kvc-gpu-pipeline="chip=sm_75 value-product=mma value-stages=2" 2>&1 | FileCheck %s --check-prefix=VSTAGESCHIP
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="combine=atomic" 2>&1 | FileCheck %s --check-prefix=COMBINE
// RUN: not kvc-opt %s -split-input-file --kvc-gpu-pipeline="combine=fused,x" 2>&1 | FileCheck %s --check-prefix=CFORMAT
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="key-product=mma mma-codes=flushed" 2>&1 | FileCheck %s --check-prefix=MMACODES
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="mma-codes=normal" 2>&1 | FileCheck %s --check-prefix=MMACODESFMA
// RUN: not kvc-opt %s -split-input-file --kvc-gpu-pipeline="value-product=mma mma-codes=normal,x" 2>&1 | FileCheck %s --check-prefix=MFORMAT

// What the GPU kernels do not cover yet is a compile-time error at the op,
// never a silent slow path.

// SPLIT: error: kvc-lower-to-gpu: split-tokens (100) must be a positive multiple of 32 and block-threads (128) a power of two from 32 to 1024
// SPLIT-NOT: see current operation
// THREADS: error: kvc-lower-to-gpu: split-tokens (512) must be a positive multiple of 32 and block-threads (96) a power of two from 32 to 1024
// BLOCKS: error: kvc-lower-to-gpu: min-blocks-per-sm (17) blocks of 128 threads exceed the 2048 threads an SM holds
// CODES: error: kvc-lower-to-gpu: code-to-float must be 'bits' or 'convert', not 'fast'
// PRODUCT: error: kvc-lower-to-gpu: key-product must be 'fma' or 'mma', not 'wmma'
// VPRODUCT: error: kvc-lower-to-gpu: value-product must be 'fma' or 'mma', not 'wmma'
// FORMAT: error: kvc-gpu-pipeline: bad options chip='sm_90a' features='' format='elf' code-to-float='bits' key-product='fma' value-product='fma' mma-codes='subnormal' l2-prefetch='none' combine='kernel' (expected e.g. chip=sm_90a features=+ptx80, format isa, bin, fatbin or llvm, code-to-float bits or convert, key-product and value-product fma or mma, mma-codes subnormal or normal, l2-prefetch none, lines or bulk, combine kernel or fused)
// PREFETCH: error: kvc-lower-to-gpu: l2-prefetch must be 'none', 'lines' or 'bulk', not 'all'
// PREFETCHBYTES: error: kvc-lower-to-gpu: l2-prefetch-bytes must be positive
// BULKCHIP: error: kvc-gpu-pipeline: l2-prefetch=bulk needs chip sm_90 or later (LLVM selects its NVVM instructions from sm_90 on), not 'sm_80'; use l2-prefetch=none
// LINESCHIP: error: kvc-gpu-pipeline: l2-prefetch=lines needs chip sm_90 or later (LLVM selects its NVVM instructions from sm_90 on), not 'sm_86'; use l2-prefetch=none
// STAGES: error: kvc-lower-to-gpu: key-stages must be 0 (no staging) or at least 2 (a unit read while the next is copied), not 1
// STAGESCHIP: error: kvc-gpu-pipeline: key-stages=2 needs chip sm_80 or later (LLVM selects its NVVM instructions from sm_80 on), not 'sm_75'; use key-stages=0
// VSTAGES: error: kvc-lower-to-gpu: value-stages must be 0 (no staging) or at least 2 (a unit read while the next is copied), not 1
// VSTAGESCHIP: error: kvc-gpu-pipeline: value-stages=2 needs chip sm_80 or later (LLVM selects its NVVM instructions from sm_80 on), not 'sm_75'; use value-stages=0
// VFORMAT: error: kvc-gpu-pipeline: bad options chip='sm_90a' features='' format='bin' code-to-float='bits' key-product='fma' value-product='mma,x' mma-codes='subnormal' l2-prefetch='none' combine='kernel' (expected
// COMBINE: error: kvc-lower-to-gpu: combine must be 'kernel' or 'fused', not 'atomic'
// MMACODES: error: kvc-lower-to-gpu: mma-codes must be 'subnormal' or 'normal', not 'flushed'
// MMACODESFMA: error: kvc-lower-to-gpu: mma-codes=normal changes only the tensor-core passes' reads: it needs key-product=mma or value-product=mma
// MFORMAT: error: kvc-gpu-pipeline: bad options chip='sm_90a' features='' format='bin' code-to-float='bits' key-product='fma' value-product='mma' mma-codes='normal,x' l2-prefetch='none' combine='kernel' (expected
// CFORMAT: error: kvc-gpu-pipeline: bad options chip='sm_90a' features='' format='bin' code-to-float='bits' key-product='fma' value-product='fma' mma-codes='subnormal' l2-prefetch='none' combine='fused,x' (expected

func.func @append_dynamic(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<1x2x?x64xf32>) -> !kvc.cache<1x2x?x64xf16> {
  // expected-error @+1 {{'kvc.append' op kvc-lower-to-gpu: the appended keys and values must have static shapes}}
  %c1 = kvc.append %c, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<1x2x?x64xf32>, tensor<1x2x?x64xf32>
  return %c1 : !kvc.cache<1x2x?x64xf16>
}

// -----
// The kernels update the bound cache in place.
func.func @read_after_append(%c: !kvc.cache<1x2x?x64xf16>, %k: tensor<1x2x1x64xf32>, %q: tensor<1x2x1x64xf32>) -> tensor<1x2x1x64xf32> {
  %c1 = kvc.append %c, %k, %k : !kvc.cache<1x2x?x64xf16>, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  // expected-error @+1 {{'kvc.attend' op reads a cache after 'kvc.append' updated it; the GPU lowering updates caches in place}}
  %o = kvc.attend %q, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x2x1x64xf32>
  return %o : tensor<1x2x1x64xf32>
}

// -----
func.func @prefill(%c: !kvc.cache<1x2x?x64xf16>, %q: tensor<1x4x16x64xf32>) -> tensor<1x4x16x64xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-gpu: only decode attention (one query token) has a kernel; got 16 query tokens}}
  %o = kvc.attend %q, %c {causal} : tensor<1x4x16x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x4x16x64xf32>
  return %o : tensor<1x4x16x64xf32>
}

// -----
func.func @dynamic_batch(%c: !kvc.cache<?x2x?x64xf16>, %q: tensor<?x4x1x64xf32>) -> tensor<?x4x1x64xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-gpu: the query ('tensor<?x4x1x64xf32>') and the cache's KV heads must be static}}
  %o = kvc.attend %q, %c : tensor<?x4x1x64xf32>, !kvc.cache<?x2x?x64xf16> -> tensor<?x4x1x64xf32>
  return %o : tensor<?x4x1x64xf32>
}

// -----
func.func @head_dim(%c: !kvc.cache<1x2x?x80xf16>, %q: tensor<1x4x1x80xf32>) -> tensor<1x4x1x80xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-gpu: head_dim 80 must be a multiple of 32, at most 1024, whose channels whole warps of 128 threads divide (64, 96, 128, 192, 256, 512, ...)}}
  %o = kvc.attend %q, %c : tensor<1x4x1x80xf32>, !kvc.cache<1x2x?x80xf16> -> tensor<1x4x1x80xf32>
  return %o : tensor<1x4x1x80xf32>
}

// -----
// 160 channels: spans of 8, 4 or 2 channels take 80 threads, not whole warps.
func.func @head_dim_160(%c: !kvc.cache<1x2x?x160xf16>, %q: tensor<1x4x1x160xf32>) -> tensor<1x4x1x160xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-gpu: head_dim 160 must be a multiple of 32, at most 1024, whose channels whole warps of 128 threads divide (64, 96, 128, 192, 256, 512, ...)}}
  %o = kvc.attend %q, %c : tensor<1x4x1x160xf32>, !kvc.cache<1x2x?x160xf16> -> tensor<1x4x1x160xf32>
  return %o : tensor<1x4x1x160xf32>
}

// -----
// 32 query heads per KV head: their scores for 512 tokens do not fit in
// shared memory.
func.func @wide_group(%c: !kvc.cache<1x1x?x128xf16>, %q: tensor<1x32x1x128xf32>) -> tensor<1x32x1x128xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-gpu: 32 query heads per KV head need 82944 bytes of shared memory with split-tokens=512 (at most 49152); lower split-tokens}}
  %o = kvc.attend %q, %c : tensor<1x32x1x128xf32>, !kvc.cache<1x1x?x128xf16> -> tensor<1x32x1x128xf32>
  return %o : tensor<1x32x1x128xf32>
}

// -----
func.func @page_too_small(%c: !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 128>, value = #kvc.plain, residual = 128>>, %q: tensor<1x2x1x64xf32>) -> tensor<1x2x1x64xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-gpu: channel-axis group (128) must divide the token count (64)}}
  %o = kvc.attend %q, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 128>, value = #kvc.plain, residual = 128>> -> tensor<1x2x1x64xf32>
  return %o : tensor<1x2x1x64xf32>
}

// -----
func.func @evict(%c: !kvc.cache<1x2x?x64xf16>) -> !kvc.cache<1x2x?x64xf16> {
  // expected-error @+1 {{'kvc.evict' op is not lowered by kvc-lower-to-gpu yet}}
  %c1 = kvc.evict %c with <policy = streaming, sink = 4, window = 60, budget = 64> : !kvc.cache<1x2x?x64xf16>
  return %c1 : !kvc.cache<1x2x?x64xf16>
}

// -----
func.func @attention_mass(%c: !kvc.cache<1x2x?x64xf16>, %q: tensor<1x8x1x64xf32>) -> tensor<1x2x?xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-gpu: the attention-mass result (H2O/SnapKV scores) has no kernel yet; kvc-lower-to-loops computes it on the CPU}}
  %o, %m = kvc.attend %q, %c : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x8x1x64xf32>, tensor<1x2x?xf32>
  return %m : tensor<1x2x?xf32>
}

// -----
#evicting = #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 0, evict = #kvc.evict<policy = streaming, sink = 4, window = 60, budget = 64>>
func.func @evicting_cache(%c: !kvc.cache<1x2x?x64xf16, #evicting>, %q: tensor<1x2x1x64xf32>) -> tensor<1x2x1x64xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-gpu: attention over a cache with eviction (#kvc.evict) is not lowered yet; kvc-lower-to-loops lowers it on the CPU}}
  %o = kvc.attend %q, %c : tensor<1x2x1x64xf32>, !kvc.cache<1x2x?x64xf16, #evicting> -> tensor<1x2x1x64xf32>
  return %o : tensor<1x2x1x64xf32>
}

// -----
func.func @quantize_dynamic(%x: tensor<?x64xf32>) -> (tensor<?x16xi8>, tensor<?x2xf16>, tensor<?x2xf16>) {
  // expected-error @+1 {{'kvc.quantize' op kvc-lower-to-gpu: the input must have a static shape}}
  %c, %s, %z = kvc.quantize %x as quant<bits = 2, axis = token, group = 32> : tensor<?x64xf32> -> tensor<?x16xi8>, tensor<?x2xf16>, tensor<?x2xf16>
  return %c, %s, %z : tensor<?x16xi8>, tensor<?x2xf16>, tensor<?x2xf16>
}

// -----
// The kernels write results only into the function's results: buffer-
// results-to-out-params (kvc-gpu-pipeline) makes those the caller's device
// buffers. Any other result would be a host allocation the GPU cannot
// write (and the emulator would not notice), so it is an error.
func.func @result_not_returned(%c0: !kvc.cache<1x2x?x64xf16>, %c1: !kvc.cache<1x2x?x64xf16>, %q: tensor<1x4x1x64xf32>) -> tensor<1x4x1x64xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-gpu: result #0 is not returned by the function; the GPU kernels write their results only into the function's results (the caller's device buffers), each returned once from the function's body}}
  %o0 = kvc.attend %q, %c0 : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x4x1x64xf32>
  %o1 = kvc.attend %o0, %c1 : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x4x1x64xf32>
  return %o1 : tensor<1x4x1x64xf32>
}

// -----
func.func @result_returned_twice(%c: !kvc.cache<1x2x?x64xf16>, %q: tensor<1x4x1x64xf32>) -> (tensor<1x4x1x64xf32>, tensor<1x4x1x64xf32>) {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-gpu: result #0 is returned 2 times}}
  %o = kvc.attend %q, %c : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x4x1x64xf32>
  return %o, %o : tensor<1x4x1x64xf32>, tensor<1x4x1x64xf32>
}

// -----
func.func @result_in_region(%c: !kvc.cache<1x2x?x64xf16>, %q: tensor<1x4x1x64xf32>, %again: i1) -> tensor<1x4x1x64xf32> {
  %o = scf.if %again -> tensor<1x4x1x64xf32> {
    // expected-error @+1 {{'kvc.attend' op kvc-lower-to-gpu: result #0 cannot be returned by the function: the op is nested in a region or in a function of several blocks}}
    %r = kvc.attend %q, %c : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x4x1x64xf32>
    scf.yield %r : tensor<1x4x1x64xf32>
  } else {
    scf.yield %q : tensor<1x4x1x64xf32>
  }
  return %o : tensor<1x4x1x64xf32>
}

// -----
func.func @quantize_scales_dropped(%x: tensor<2x64x128xf16>) -> tensor<2x2x128x16xi8> {
  // expected-error @+1 {{'kvc.quantize' op kvc-lower-to-gpu: result #1 is not returned by the function}}
  %c, %s, %z = kvc.quantize %x as quant<bits = 4, axis = channel, group = 32> : tensor<2x64x128xf16> -> tensor<2x2x128x16xi8>, tensor<2x2x128xf16>, tensor<2x2x128xf16>
  return %c : tensor<2x2x128x16xi8>
}

// -----
// key-product=mma (tensor-core key dot products) takes head_dim 64 or 128
// and at most 8 query heads per KV head (one m16n8k16 tile's N); these
// sites lower with the default key-product=fma.
// MMA: error: 'kvc.attend' op kvc-lower-to-gpu: key-product=mma has no kernel for head_dim 96 (the tensor-core key pass takes 64 or 128); use key-product=fma
// So does value-product=mma (tensor-core weighted sums of values).
// VMMA: error: 'kvc.attend' op kvc-lower-to-gpu: value-product=mma has no kernel for head_dim 96 (the tensor-core value pass takes 64 or 128); use value-product=fma
func.func @mma_head_dim(%c: !kvc.cache<1x2x?x96xf16>, %q: tensor<1x8x1x96xf32>) -> tensor<1x8x1x96xf32> {
  %o = kvc.attend %q, %c : tensor<1x8x1x96xf32>, !kvc.cache<1x2x?x96xf16> -> tensor<1x8x1x96xf32>
  return %o : tensor<1x8x1x96xf32>
}

// -----
// MMA: error: 'kvc.attend' op kvc-lower-to-gpu: key-product=mma has no kernel for 16 query heads per KV head (the tensor-core key pass takes up to 8, the N of one m16n8k16 tile); use key-product=fma
// VMMA: error: 'kvc.attend' op kvc-lower-to-gpu: value-product=mma has no kernel for 16 query heads per KV head (the tensor-core value pass takes up to 8, the N of one m16n8k16 tile); use value-product=fma
func.func @mma_group(%c: !kvc.cache<1x1x?x64xf16>, %q: tensor<1x16x1x64xf32>) -> tensor<1x16x1x64xf32> {
  %o = kvc.attend %q, %c : tensor<1x16x1x64xf32>, !kvc.cache<1x1x?x64xf16> -> tensor<1x16x1x64xf32>
  return %o : tensor<1x16x1x64xf32>
}

