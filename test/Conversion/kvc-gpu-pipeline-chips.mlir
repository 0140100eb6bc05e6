// kvc-gpu-pipeline's chip= and features= reach LLVM's NVPTX backend, which
// aborts the tool on a processor, feature or PTX version it does not take
// and on an instruction the chip lacks: each is the pipeline's error first.

// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=foo" 2>&1 | FileCheck %s --check-prefix=NAME
// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=sm_90x" 2>&1 | FileCheck %s --check-prefix=SUFFIX
// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=sm_60" 2>&1 | FileCheck %s --check-prefix=OLD
// RUN: not kvc-opt %s --kvc-gpu-pipeline="features=ptx80" 2>&1 | FileCheck %s --check-prefix=SIGN
// RUN: not kvc-opt %s --kvc-gpu-pipeline="features=+ptx99" 2>&1 | FileCheck %s --check-prefix=FEATURE
// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=sm_100a features=+ptx80" 2>&1 | FileCheck %s --check-prefix=PTXCHIP
// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=sm_80 features=+ptx63" 2>&1 | FileCheck %s --check-prefix=PTXSM80
// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=sm_90 features=+ptx78 l2-prefetch=bulk" 2>&1 | FileCheck %s --check-prefix=PTXBULK
// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=sm_75 value-product=mma features=+ptx63" 2>&1 | FileCheck %s --check-prefix=PTXMMA
// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=sm_75 key-product=mma" 2>&1 | FileCheck %s --check-prefix=KEYMMA
// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=sm_72 value-product=mma" 2>&1 | FileCheck %s --check-prefix=VALUEMMA
// RUN: not kvc-opt %s --kvc-gpu-pipeline="max-shared-memory=232449" 2>&1 | FileCheck %s --check-prefix=SHARED
// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=sm_86 max-shared-memory=101377" 2>&1 | FileCheck %s --check-prefix=SHARED86
// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=sm_121 max-shared-memory=101377" 2>&1 | FileCheck %s --check-prefix=SHARED121
// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=sm_110 max-shared-memory=232449" 2>&1 | FileCheck %s --check-prefix=SHARED110
// RUN: not kvc-opt %s --kvc-gpu-pipeline="chip=sm_72 max-shared-memory=98305" 2>&1 | FileCheck %s --check-prefix=SHARED72

// NAME: error: kvc-gpu-pipeline: chip 'foo' is not a processor of LLVM's NVPTX backend (e.g. sm_80, sm_90a, sm_100a; `llc -march=nvptx64 -mcpu=help` lists them)
// An option's error is one line: the module it stands at is not printed.
// NAME-NOT: see current operation
// SUFFIX: error: kvc-gpu-pipeline: chip 'sm_90x' is not a processor of LLVM's NVPTX backend
// OLD: error: kvc-gpu-pipeline: chip 'sm_60' is older than the kernels' first, sm_70
// SIGN: error: kvc-gpu-pipeline: features item 'ptx80' is not +name or -name of a feature of LLVM's NVPTX backend (e.g. +ptx86; `llc -march=nvptx64 -mattr=help` lists them)
// FEATURE: error: kvc-gpu-pipeline: features item '+ptx99' is not +name or -name of a feature of LLVM's NVPTX backend
// PTXCHIP: error: kvc-gpu-pipeline: features='+ptx80' gives PTX 8.0, but chip sm_100a needs PTX 8.6 or later; use +ptx86 or leave features out
// PTXSM80: error: kvc-gpu-pipeline: features='+ptx63' gives PTX 6.3, but chip sm_80 needs PTX 7.0 or later; use +ptx70 or leave features out
// PTXBULK: error: kvc-gpu-pipeline: features='+ptx78' gives PTX 7.8, but l2-prefetch=bulk needs PTX 8.0 or later; use +ptx80 or leave features out
// PTXMMA: error: kvc-gpu-pipeline: features='+ptx63' gives PTX 6.3, but value-product=mma needs PTX 6.5 or later; use +ptx65 or leave features out
// KEYMMA: error: kvc-gpu-pipeline: key-product=mma needs chip sm_80 or later (LLVM selects its NVVM instructions from sm_80 on), not 'sm_75'; use key-product=fma
// VALUEMMA: error: kvc-gpu-pipeline: value-product=mma needs chip sm_75 or later (LLVM selects its NVVM instructions from sm_75 on), not 'sm_72'; use value-product=fma
// SHARED: error: kvc-gpu-pipeline: max-shared-memory=232449 is more than a block of sm_90a may take (232448 bytes)
// SHARED86: error: kvc-gpu-pipeline: max-shared-memory=101377 is more than a block of sm_86 may take (101376 bytes)
// SHARED121: error: kvc-gpu-pipeline: max-shared-memory=101377 is more than a block of sm_121 may take (101376 bytes)
// SHARED110: error: kvc-gpu-pipeline: max-shared-memory=232449 is more than a block of sm_110 may take (232448 bytes)
// SHARED72: error: kvc-gpu-pipeline: max-shared-memory=98305 is more than a block of sm_72 may take (98304 bytes)

// Without features, a chip gets its first PTX version, at least 8.0. The
// chips whose first is newer than 8.0 check kvc's table against LLVM's
// (which would abort on an older one).
// RUN: kvc-opt %s --kvc-gpu-pipeline="format=isa" | FileCheck %s --check-prefix=SM90A
// RUN: kvc-opt %s --kvc-gpu-pipeline="chip=sm_80 format=isa" | FileCheck %s --check-prefix=SM80
// RUN: kvc-opt %s --kvc-gpu-pipeline="chip=sm_80 features=+ptx70 format=isa" | FileCheck %s --check-prefix=SM80PTX70
// RUN: kvc-opt %s --kvc-gpu-pipeline="chip=sm_75 value-product=mma features=+ptx65 format=isa" | FileCheck %s --check-prefix=SM75
// RUN: kvc-opt %s --kvc-gpu-pipeline="chip=sm_100a key-product=mma value-product=mma key-stages=2 format=isa" | FileCheck %s --check-prefix=SM100A
// RUN: kvc-opt %s --kvc-gpu-pipeline="chip=sm_100f format=isa" | FileCheck %s --check-prefix=SM100F
// RUN: kvc-opt %s --kvc-gpu-pipeline="chip=sm_103 format=isa" | FileCheck %s --check-prefix=SM103
// RUN: kvc-opt %s --kvc-gpu-pipeline="chip=sm_110 format=isa" | FileCheck %s --check-prefix=SM110
// RUN: kvc-opt %s --kvc-gpu-pipeline="chip=sm_120 format=isa" | FileCheck %s --check-prefix=SM120
// RUN: kvc-opt %s --kvc-gpu-pipeline="chip=sm_121 format=isa" | FileCheck %s --check-prefix=SM121
// RUN: kvc-opt %s --kvc-gpu-pipeline="chip=sm_88 format=isa" | FileCheck %s --check-prefix=SM88

// SM90A: #nvvm.target<chip = "sm_90a", features = "+ptx80">
// SM90A-SAME: .version 8.0
// SM80: #nvvm.target<chip = "sm_80", features = "+ptx80">
// SM80-SAME: .version 8.0
// SM80PTX70: #nvvm.target<chip = "sm_80", features = "+ptx70">
// SM80PTX70-SAME: .version 7.0
// SM75: #nvvm.target<chip = "sm_75", features = "+ptx65">
// SM75-SAME: .version 6.5
// SM75-SAME: mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32
// SM100A: #nvvm.target<chip = "sm_100a", features = "+ptx86">
// SM100A-SAME: .version 8.6
// SM100A-SAME: cp.async.cg.shared.global
// SM100A-SAME: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// SM100F: #nvvm.target<chip = "sm_100f", features = "+ptx88">
// SM100F-SAME: .version 8.8
// SM103: #nvvm.target<chip = "sm_103", features = "+ptx88">
// SM103-SAME: .version 8.8
// SM110: #nvvm.target<chip = "sm_110", features = "+ptx90">
// SM110-SAME: .version 9.0
// SM120: #nvvm.target<chip = "sm_120", features = "+ptx87">
// SM120-SAME: .version 8.7
// SM121: #nvvm.target<chip = "sm_121", features = "+ptx88">
// SM121-SAME: .version 8.8
// SM88: #nvvm.target<chip = "sm_88", features = "+ptx90">
// SM88-SAME: .version 9.0

func.func @attend(%c: !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 128>>, %q: tensor<1x8x1x64xf32>) -> tensor<1x8x1x64xf32> {
  %o = kvc.attend %q, %c : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16, #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 128>> -> tensor<1x8x1x64xf32>
  return %o : tensor<1x8x1x64xf32>
}
