// kvc-gpu-pipeline's PTX and binary formats need parts of the CUDA toolkit:
// libdevice for the kernels' math functions (without it the PTX would call
// unresolved externs, which no driver loads), ptxas for format=bin, ptxas
// and fatbinary for format=fatbin. A missing part is one located error
// naming it and where it was looked for, before any kernel is serialized
// (upstream's own error would print the whole gpu.module after it).
// REQUIRES: cuda-toolkit

// RUN: rm -rf %t && mkdir -p %t/bin %t/toolkit/bin %t/toolkit/nvvm/libdevice
// RUN: not env -u CUDA_HOME -u CUDA_ROOT -u CUDA_PATH PATH=%t/bin kvc-opt %s --kvc-gpu-pipeline="format=isa" -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=UNSET
// RUN: not test -e %t/out.mlir
// RUN: not env -u CUDA_HOME -u CUDA_PATH CUDA_ROOT=%t/toolkit PATH=%t/bin kvc-opt %s --kvc-gpu-pipeline="format=bin" 2>&1 | FileCheck %s --check-prefix=LIBDEVICE -DTOOLKIT=%t/toolkit
// RUN: cp %cuda_home/nvvm/libdevice/libdevice.10.bc %t/toolkit/nvvm/libdevice/
// RUN: not env -u CUDA_HOME -u CUDA_PATH CUDA_ROOT=%t/toolkit PATH=%t/bin kvc-opt %s --kvc-gpu-pipeline="format=bin" 2>&1 | FileCheck %s --check-prefix=PTXAS -DTOOLKIT=%t/toolkit
// RUN: ln -s %ptxas %t/toolkit/bin/ptxas
// RUN: not env -u CUDA_HOME -u CUDA_PATH CUDA_ROOT=%t/toolkit PATH=%t/bin kvc-opt %s --kvc-gpu-pipeline="format=fatbin" 2>&1 | FileCheck %s --check-prefix=FATBINARY -DTOOLKIT=%t/toolkit

// With libdevice and ptxas, isa and bin compile; the PTX calls no libdevice
// function (they are linked in).
// RUN: env -u CUDA_HOME -u CUDA_PATH CUDA_ROOT=%t/toolkit PATH=%t/bin kvc-opt %s --kvc-gpu-pipeline="format=bin" | FileCheck %s --check-prefix=BIN
// RUN: env -u CUDA_HOME -u CUDA_PATH CUDA_ROOT=%t/toolkit PATH=%t/bin kvc-opt %s --kvc-gpu-pipeline="format=isa" | FileCheck %s --check-prefix=ISA

// The emulator's bitcode, and modules without kernels, need no toolkit.
// RUN: env -u CUDA_HOME -u CUDA_ROOT -u CUDA_PATH PATH=%t/bin kvc-opt %s --kvc-gpu-pipeline="format=llvm" | FileCheck %s --check-prefix=LLVM
// RUN: echo 'func.func @no_cache(%%a: i32) -> i32 { return %%a : i32 }' > %t/plain.mlir
// RUN: env -u CUDA_HOME -u CUDA_ROOT -u CUDA_PATH PATH=%t/bin kvc-opt %t/plain.mlir --kvc-gpu-pipeline="format=fatbin" | FileCheck %s --check-prefix=NOKERNELS

// UNSET: kvc-gpu-pipeline-toolkit.mlir:[[@LINE+17]]:1: error: kvc-gpu-pipeline: format=isa needs libdevice (the kernels' math functions) from the CUDA toolkit: no toolkit is named by $CUDA_ROOT, $CUDA_HOME or $CUDA_PATH; set one of those, or use format=llvm for the GPU emulator
// UNSET-NOT: see current operation
// UNSET-NOT: error
// LIBDEVICE: error: kvc-gpu-pipeline: format=bin needs libdevice (the kernels' math functions) from the CUDA toolkit: not at '[[TOOLKIT]]/nvvm/libdevice/libdevice.10.bc' (in the toolkit named by $CUDA_ROOT, $CUDA_HOME or $CUDA_PATH)
// LIBDEVICE-NOT: error
// PTXAS: error: kvc-gpu-pipeline: format=bin needs `ptxas` from the CUDA toolkit: not on PATH, and not at '[[TOOLKIT]]/bin/ptxas'
// PTXAS-NOT: error
// FATBINARY: error: kvc-gpu-pipeline: format=fatbin needs `fatbinary` from the CUDA toolkit: not on PATH, and not at '[[TOOLKIT]]/bin/fatbinary'
// FATBINARY-NOT: error
// BIN: gpu.binary @kvc_kernels [#gpu.object<#nvvm.target<chip = "sm_90a", features = "+ptx80">, properties = {{.*}}, bin = "\7FELF
// ISA: gpu.binary @kvc_kernels [#gpu.object<#nvvm.target<chip = "sm_90a", features = "+ptx80">, properties = {{.*}}, assembly = "
// ISA-SAME: ex2.approx
// ISA-NOT: __nv_
// LLVM: gpu.binary @kvc_kernels [#gpu.object<#nvvm.target<chip = "sm_90a", features = "+ptx80">, offload = "
// NOKERNELS-LABEL: llvm.func @no_cache(
// NOKERNELS-NOT: gpu.binary

module {
  func.func @step(%c: !kvc.cache<1x2x?x64xf16>, %q: tensor<1x4x1x64xf32>) -> tensor<1x4x1x64xf32> {
    %o = kvc.attend %q, %c : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x4x1x64xf32>
    return %o : tensor<1x4x1x64xf32>
  }
}
