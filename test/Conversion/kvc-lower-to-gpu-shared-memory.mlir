// RUN: not kvc-opt %s --kvc-lower-to-gpu="key-product=mma value-product=mma key-stages=2" 2>&1 | FileCheck %s --check-prefix=DEFAULT
// REQUIRES: cuda-toolkit
// RUN: kvc-opt %s --kvc-lower-to-gpu="key-product=mma value-product=mma key-stages=2 max-shared-memory=232448" | FileCheck %s
// RUN: not kvc-opt %s --kvc-lower-to-gpu="key-product=mma value-product=mma key-stages=2 max-shared-memory=8192" 2>&1 | FileCheck %s --check-prefix=STATIC
// RUN: kvc-opt %s --kvc-gpu-pipeline="chip=sm_80 format=isa key-product=mma value-product=mma key-stages=2" | FileCheck %s --check-prefix=SM80
// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=sm_86 format=isa key-product=mma value-product=mma key-stages=9" 2>&1 | FileCheck %s --check-prefix=SM86
// RUN: kvc-opt %s --kvc-gpu-pipeline="chip=sm_90a format=isa key-product=mma value-product=mma key-stages=9" | FileCheck %s --check-prefix=SM90

// max-shared-memory: what a split block may take. The scores, queries and
// reductions are static shared memory (at most 48 KB on any GPU); the
// stages (and with them the value pass's sums) are dynamic shared memory,
// which the launch may raise to the chip's opt-in limit. 8-bit keys at
// head_dim 128 with key-stages=2: 4 warps x 2 stages x 4608 bytes = 36864
// bytes of stages beside 12416 static ones, past 48 KB.

// The bare pass allows 49152 bytes, what every GPU allows without opt-in.
// DEFAULT: error: 'kvc.attend' op kvc-lower-to-gpu: key-stages=2 and value-stages=0 need 36864 and 0 bytes of shared memory beside the kernel's 12416 and the value sums' 8192 (at most 49152 in all: max-shared-memory); lower the stages or split-tokens, or raise max-shared-memory to what the chip allows

// CHECK: %[[SIZE:.*]] = arith.constant 36864 : i32
// CHECK: gpu.launch_func async [%{{.*}}] @kvc_kernels::@attend0_split0
// CHECK-SAME: dynamic_shared_memory_size %[[SIZE]]
// CHECK: gpu.module @kvc_kernels
// CHECK-NEXT: llvm.mlir.global external @kvc_dynamic_shared() {addr_space = 3 : i32, alignment = 16 : i64} : !llvm.array<0 x i8>
// CHECK-LABEL: gpu.func @attend0_split0
// CHECK: gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// CHECK: nvvm.cp.async.shared.global

// Below the static part: an error naming it.
// STATIC: error: 'kvc.attend' op kvc-lower-to-gpu: 4 query heads per KV head need 12416 bytes of shared memory with split-tokens=512 (at most 8192); lower split-tokens

// kvc-gpu-pipeline sets the chip's limit: 166912 bytes on sm_80, 101376
// on sm_86 (nine stages, 165888 bytes, do not fit there), 232448 on
// sm_90. The PTX declares the stages `.extern`.
// SM80: .extern .shared .align 16 .b8 kvc_dynamic_shared[];
// SM80-NOT: __dynamic_shmem
// SM86: error: 'kvc.attend' op kvc-lower-to-gpu: key-stages=9 and value-stages=0 need 165888 and 0 bytes of shared memory beside the kernel's 12416 and the value sums' 8192 (at most 101376 in all: max-shared-memory); lower the stages or split-tokens, or raise max-shared-memory to what the chip allows
// SM90: cp.async.wait_group \097;

#k8 = #kvc.encoding<key = #kvc.quant<bits = 8, axis = channel, group = 32>,
                    value = #kvc.quant<bits = 8, axis = token, group = 32>,
                    residual = 128>
func.func @k8(%c: !kvc.cache<1x2x?x128xf16, #k8>, %q: tensor<1x8x1x128xf32>) -> tensor<1x8x1x128xf32> {
  %o = kvc.attend %q, %c : tensor<1x8x1x128xf32>, !kvc.cache<1x2x?x128xf16, #k8> -> tensor<1x8x1x128xf32>
  return %o : tensor<1x8x1x128xf32>
}
