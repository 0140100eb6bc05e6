#kivi2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>,
                       value = #kvc.quant<bits = 2, axis = token, group = 32>,
                       residual = 128>
func.func @decode(%cache: !kvc.cache<8x8x?x128xf16, #kivi2>, %q: tensor<8x32x1x128xf16>) -> tensor<8x32x1x128xf16> {
  %o = kvc.attend %q, %cache : tensor<8x32x1x128xf16>, !kvc.cache<8x8x?x128xf16, #kivi2> -> tensor<8x32x1x128xf16>
  return %o : tensor<8x32x1x128xf16>
}
