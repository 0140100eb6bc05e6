// RUN: kvc-opt %s -split-input-file -verify-diagnostics --kvc-lower-to-gpu="key-product=mma value-product=mma key-stages=2"
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="key-stages=2" 2>&1 | FileCheck %s --check-prefix=FMA
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="key-product=mma value-stages=2" 2>&1 | FileCheck %s --check-prefix=VFMA
// RUN: not kvc-opt %s -split-input-file --kvc-lower-to-gpu="key-product=mma value-product=mma value-stages=2" 2>&1 | FileCheck %s --check-prefix=VALUES

// key-stages stages the tensor-core key pass's channel-axis 2-, 4- and
// 8-bit keys, value-stages the value pass's token-axis 2-, 4- and 8-bit
// values; any other site is an error at the op (stages that would not
// fit in shared memory: kvc-lower-to-gpu-shared-memory.mlir).

// FMA: error: 'kvc.attend' op kvc-lower-to-gpu: key-stages=2 stages the tensor-core key pass's channel-axis 2-, 4- and 8-bit keys (key-product=mma); this site has key-product=fma; use key-stages=0
// VFMA: error: 'kvc.attend' op kvc-lower-to-gpu: value-stages=2 stages the tensor-core value pass's token-axis 2-, 4- and 8-bit values (value-product=mma); this site has value-product=fma; use value-stages=0
// The per-head site: its second head's values are fp16.
// VALUES: error: 'kvc.attend' op kvc-lower-to-gpu: value-stages=2 stages the tensor-core value pass's token-axis 2-, 4- and 8-bit values (value-product=mma); this site has values 'fp16'; use value-stages=0

#token_keys = #kvc.encoding<key = #kvc.quant<bits = 2, axis = token, group = 32>,
                            value = #kvc.quant<bits = 2, axis = token, group = 32>,
                            residual = 128>
func.func @token_axis_keys(%c: !kvc.cache<1x2x?x64xf16, #token_keys>, %q: tensor<1x4x1x64xf32>) -> tensor<1x4x1x64xf32> {
  // expected-error @+1 {{'kvc.attend' op kvc-lower-to-gpu: key-stages=2 stages the tensor-core key pass's channel-axis 2-, 4- and 8-bit keys (key-product=mma); this site has keys 'quant<bits=2, axis=token, group=32>'; use key-stages=0}}
  %o = kvc.attend %q, %c : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf16, #token_keys> -> tensor<1x4x1x64xf32>
  return %o : tensor<1x4x1x64xf32>
}

// -----
// Per-head encodings: every KV head's keys must be staged.
#k2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                    value = #kvc.quant<bits = 2, axis = token, group = 32>,
                    residual = 128>
#k3 = #kvc.encoding<key = #kvc.quant<bits = 3, axis = channel, group = 32>,
                    value = #kvc.plain,
                    residual = 128>
func.func @per_head(%c: !kvc.cache<1x2x?x64xf16, #k2> {kvc.head_encodings = [#k2, #k3]}, %q: tensor<1x4x1x64xf32>) -> tensor<1x4x1x64xf32> {
  // expected-error @+1 {{this site has keys 'quant<bits=3, axis=channel, group=32>'; use key-stages=0}}
  %o = kvc.attend %q, %c : tensor<1x4x1x64xf32>, !kvc.cache<1x2x?x64xf16, #k2> -> tensor<1x4x1x64xf32>
  return %o : tensor<1x4x1x64xf32>
}
