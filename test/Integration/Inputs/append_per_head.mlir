// A decode step over per-KV-head encodings for decode-append-generated.mlir:
// head 0 alone, heads 1 and 2 one run (one writer each).
#h0 = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>,
                    value = #kvc.quant<bits = 2, axis = token, group = 32>,
                    residual = 64>
#h12 = #kvc.encoding<key = #kvc.plain,
                     value = #kvc.quant<bits = 8, axis = token, group = 32>,
                     residual = 64>
!heads = !kvc.cache<1x3x?x64xf32, #h0>
func.func @step(%cache: !heads {kvc.head_encodings = [#h0, #h12, #h12]},
                %q: tensor<1x6x1x64xf32>, %k: tensor<1x3x1x64xf32>,
                %v: tensor<1x3x1x64xf32>) -> (tensor<1x6x1x64xf32>, !heads) {
  %c = kvc.append %cache, %k, %v : !heads, tensor<1x3x1x64xf32>, tensor<1x3x1x64xf32>
  %o = kvc.attend %q, %c {causal} : tensor<1x6x1x64xf32>, !heads -> tensor<1x6x1x64xf32>
  return %o, %c : tensor<1x6x1x64xf32>, !heads
}
