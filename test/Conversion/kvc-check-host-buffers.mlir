// RUN: kvc-opt %s -split-input-file -verify-diagnostics --kvc-check-host-buffers | FileCheck %s
// RUN: not kvc-opt %S/Inputs/gpu_sliced_query.mlir --kvc-gpu-pipeline="format=isa" 2>&1 | FileCheck %s --check-prefix=SLICED
// RUN: not kvc-opt %S/Inputs/gpu_called_step.mlir --kvc-gpu-pipeline="format=isa" 2>&1 | FileCheck %s --check-prefix=CALLED

// kvc-gpu-pipeline's host code after bufferization: it launches kernels on
// the caller's buffers (device memory) and touches none itself.

// CHECK-LABEL: func.func @launches_only
// CHECK: gpu.launch_func @kernels::@k
// CHECK: gpu.func @k
// CHECK: memref.load
module attributes {gpu.container_module} {
  func.func @launches_only(%q: memref<4xf32>, %out: memref<4xf32>) {
    %c1 = arith.constant 1 : index
    %view = memref.expand_shape %q [[0, 1]] output_shape [1, 4] : memref<4xf32> into memref<1x4xf32>
    gpu.launch_func @kernels::@k blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%view : memref<1x4xf32>, %out : memref<4xf32>)
    return
  }
  // Kernels read and write device memory: not host code.
  gpu.module @kernels {
    gpu.func @k(%in: memref<1x4xf32>, %out: memref<4xf32>) kernel {
      %c0 = arith.constant 0 : index
      %x = memref.load %in[%c0, %c0] : memref<1x4xf32>
      memref.store %x, %out[%c0] : memref<4xf32>
      gpu.return
    }
  }
}

// -----
func.func @host_allocation() -> memref<4xf32> {
  // expected-error @+1 {{'memref.alloc' op kvc-gpu-pipeline: the host code allocates a buffer in host memory, which the kernels cannot use (left by bufferization); give kvc ops function arguments, reshapes of them or kvc op results, not slices, and return their results}}
  %a = memref.alloc() : memref<4xf32>
  return %a : memref<4xf32>
}

// -----
func.func @host_copy(%q: memref<2x4xf32>, %out: memref<4xf32>) {
  %row = memref.subview %q[1, 0] [1, 4] [1, 1] : memref<2x4xf32> to memref<4xf32, strided<[1], offset: 4>>
  // expected-error @+1 {{'memref.copy' op kvc-gpu-pipeline: the host code reads or writes a buffer on the host, and the buffers are device memory}}
  memref.copy %row, %out : memref<4xf32, strided<[1], offset: 4>> to memref<4xf32>
  return
}

// -----
func.func @host_read(%q: memref<4xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{'memref.load' op kvc-gpu-pipeline: the host code reads or writes a buffer on the host}}
  %x = memref.load %q[%c0] : memref<4xf32>
  return %x : f32
}

// A sliced query: the kernels take identity-layout buffers, so
// bufferization copies the slice into a new (host) buffer on the host.
// SLICED: gpu_sliced_query.mlir:6:8: error: 'memref.alloc' op kvc-gpu-pipeline: the host code allocates a buffer in host memory, which the kernels cannot use (left by bufferization)
// SLICED-NEXT: %q = tensor.extract_slice

// A call of a compiled step whose result another call reads: the caller's
// buffer for it would be a host allocation.
// CALLED: gpu_called_step.mlir:9:8: error: 'memref.alloc' op kvc-gpu-pipeline: the host code allocates a buffer in host memory
// CALLED-NEXT: %o = func.call @step
