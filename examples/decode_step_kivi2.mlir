// One decode step of one attention layer of a Llama-3-8B-shaped model
// (32 query heads, 8 KV heads, head_dim 128) over a KIVI-2 cache: keys 2-bit
// per channel, values 2-bit per token, groups of 32, 128 fp16 residual tokens.

#kivi2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 128>

func.func @decode_step(%cache: !kvc.cache<1x8x?x128xf16, #kivi2>,
                       %q: tensor<1x32x1x128xf32>, %k: tensor<1x8x1x128xf32>,
                       %v: tensor<1x8x1x128xf32>)
    -> (tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf16, #kivi2>) {
  %extended = kvc.append %cache, %k, %v
      : !kvc.cache<1x8x?x128xf16, #kivi2>, tensor<1x8x1x128xf32>, tensor<1x8x1x128xf32>
  %out = kvc.attend %q, %extended {causal}
      : tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf16, #kivi2> -> tensor<1x32x1x128xf32>
  return %out, %extended : tensor<1x32x1x128xf32>, !kvc.cache<1x8x?x128xf16, #kivi2>
}
