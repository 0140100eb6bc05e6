// kvc.quantize kernels for kvc-gpu-pipeline.test: every bit width, both
// axes, groups 32 and 128, and fp8 (a thread per token), over a 256-token x
// 128-channel fp16 block (a residual flush of Llama-3-8B's head_dim).

func.func @q2_channel_g32(%x: tensor<256x128xf16>) -> (tensor<8x128x8xi8>, tensor<8x128xf16>, tensor<8x128xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 2, axis = channel, group = 32> : tensor<256x128xf16> -> tensor<8x128x8xi8>, tensor<8x128xf16>, tensor<8x128xf16>
  return %c, %s, %z : tensor<8x128x8xi8>, tensor<8x128xf16>, tensor<8x128xf16>
}
func.func @q2_channel_g128(%x: tensor<256x128xf16>) -> (tensor<2x128x32xi8>, tensor<2x128xf16>, tensor<2x128xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 2, axis = channel, group = 128> : tensor<256x128xf16> -> tensor<2x128x32xi8>, tensor<2x128xf16>, tensor<2x128xf16>
  return %c, %s, %z : tensor<2x128x32xi8>, tensor<2x128xf16>, tensor<2x128xf16>
}
func.func @q3_channel_g32(%x: tensor<256x128xf16>) -> (tensor<8x128x12xi8>, tensor<8x128xf16>, tensor<8x128xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 3, axis = channel, group = 32> : tensor<256x128xf16> -> tensor<8x128x12xi8>, tensor<8x128xf16>, tensor<8x128xf16>
  return %c, %s, %z : tensor<8x128x12xi8>, tensor<8x128xf16>, tensor<8x128xf16>
}
func.func @q3_channel_g128(%x: tensor<256x128xf16>) -> (tensor<2x128x48xi8>, tensor<2x128xf16>, tensor<2x128xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 3, axis = channel, group = 128> : tensor<256x128xf16> -> tensor<2x128x48xi8>, tensor<2x128xf16>, tensor<2x128xf16>
  return %c, %s, %z : tensor<2x128x48xi8>, tensor<2x128xf16>, tensor<2x128xf16>
}
func.func @q4_channel_g32(%x: tensor<256x128xf16>) -> (tensor<8x128x16xi8>, tensor<8x128xf16>, tensor<8x128xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 4, axis = channel, group = 32> : tensor<256x128xf16> -> tensor<8x128x16xi8>, tensor<8x128xf16>, tensor<8x128xf16>
  return %c, %s, %z : tensor<8x128x16xi8>, tensor<8x128xf16>, tensor<8x128xf16>
}
func.func @q4_channel_g128(%x: tensor<256x128xf16>) -> (tensor<2x128x64xi8>, tensor<2x128xf16>, tensor<2x128xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 4, axis = channel, group = 128> : tensor<256x128xf16> -> tensor<2x128x64xi8>, tensor<2x128xf16>, tensor<2x128xf16>
  return %c, %s, %z : tensor<2x128x64xi8>, tensor<2x128xf16>, tensor<2x128xf16>
}
func.func @q8_channel_g32(%x: tensor<256x128xf16>) -> (tensor<8x128x32xi8>, tensor<8x128xf16>, tensor<8x128xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 8, axis = channel, group = 32> : tensor<256x128xf16> -> tensor<8x128x32xi8>, tensor<8x128xf16>, tensor<8x128xf16>
  return %c, %s, %z : tensor<8x128x32xi8>, tensor<8x128xf16>, tensor<8x128xf16>
}
func.func @q8_channel_g128(%x: tensor<256x128xf16>) -> (tensor<2x128x128xi8>, tensor<2x128xf16>, tensor<2x128xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 8, axis = channel, group = 128> : tensor<256x128xf16> -> tensor<2x128x128xi8>, tensor<2x128xf16>, tensor<2x128xf16>
  return %c, %s, %z : tensor<2x128x128xi8>, tensor<2x128xf16>, tensor<2x128xf16>
}
func.func @q2_token_g32(%x: tensor<256x128xf16>) -> (tensor<256x32xi8>, tensor<256x4xf16>, tensor<256x4xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 2, axis = token, group = 32> : tensor<256x128xf16> -> tensor<256x32xi8>, tensor<256x4xf16>, tensor<256x4xf16>
  return %c, %s, %z : tensor<256x32xi8>, tensor<256x4xf16>, tensor<256x4xf16>
}
func.func @q2_token_g128(%x: tensor<256x128xf16>) -> (tensor<256x32xi8>, tensor<256x1xf16>, tensor<256x1xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 2, axis = token, group = 128> : tensor<256x128xf16> -> tensor<256x32xi8>, tensor<256x1xf16>, tensor<256x1xf16>
  return %c, %s, %z : tensor<256x32xi8>, tensor<256x1xf16>, tensor<256x1xf16>
}
func.func @q3_token_g32(%x: tensor<256x128xf16>) -> (tensor<256x48xi8>, tensor<256x4xf16>, tensor<256x4xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 3, axis = token, group = 32> : tensor<256x128xf16> -> tensor<256x48xi8>, tensor<256x4xf16>, tensor<256x4xf16>
  return %c, %s, %z : tensor<256x48xi8>, tensor<256x4xf16>, tensor<256x4xf16>
}
func.func @q3_token_g128(%x: tensor<256x128xf16>) -> (tensor<256x48xi8>, tensor<256x1xf16>, tensor<256x1xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 3, axis = token, group = 128> : tensor<256x128xf16> -> tensor<256x48xi8>, tensor<256x1xf16>, tensor<256x1xf16>
  return %c, %s, %z : tensor<256x48xi8>, tensor<256x1xf16>, tensor<256x1xf16>
}
func.func @q4_token_g32(%x: tensor<256x128xf16>) -> (tensor<256x64xi8>, tensor<256x4xf16>, tensor<256x4xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 4, axis = token, group = 32> : tensor<256x128xf16> -> tensor<256x64xi8>, tensor<256x4xf16>, tensor<256x4xf16>
  return %c, %s, %z : tensor<256x64xi8>, tensor<256x4xf16>, tensor<256x4xf16>
}
func.func @q4_token_g128(%x: tensor<256x128xf16>) -> (tensor<256x64xi8>, tensor<256x1xf16>, tensor<256x1xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 4, axis = token, group = 128> : tensor<256x128xf16> -> tensor<256x64xi8>, tensor<256x1xf16>, tensor<256x1xf16>
  return %c, %s, %z : tensor<256x64xi8>, tensor<256x1xf16>, tensor<256x1xf16>
}
func.func @q8_token_g32(%x: tensor<256x128xf16>) -> (tensor<256x128xi8>, tensor<256x4xf16>, tensor<256x4xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 8, axis = token, group = 32> : tensor<256x128xf16> -> tensor<256x128xi8>, tensor<256x4xf16>, tensor<256x4xf16>
  return %c, %s, %z : tensor<256x128xi8>, tensor<256x4xf16>, tensor<256x4xf16>
}
func.func @q8_token_g128(%x: tensor<256x128xf16>) -> (tensor<256x128xi8>, tensor<256x1xf16>, tensor<256x1xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 8, axis = token, group = 128> : tensor<256x128xf16> -> tensor<256x128xi8>, tensor<256x1xf16>, tensor<256x1xf16>
  return %c, %s, %z : tensor<256x128xi8>, tensor<256x1xf16>, tensor<256x1xf16>
}
func.func @fp8_e4m3(%x: tensor<256x128xf16>) -> (tensor<256x128xi8>, tensor<256xf16>) {
  %c, %s = kvc.quantize %x as fp8<e4m3> : tensor<256x128xf16> -> tensor<256x128xi8>, tensor<256xf16>
  return %c, %s : tensor<256x128xi8>, tensor<256xf16>
}
func.func @fp8_e5m2(%x: tensor<256x128xf16>) -> (tensor<256x128xi8>, tensor<256xf16>) {
  %c, %s = kvc.quantize %x as fp8<e5m2> : tensor<256x128xf16> -> tensor<256x128xi8>, tensor<256xf16>
  return %c, %s : tensor<256x128xi8>, tensor<256xf16>
}
