// kvc.append kernels for kvc-gpu-pipeline.test: every bit width, both axes
// on each side, groups 32 and 128, fp16 and fp8, for Llama-3-8B's KV heads
// (8 x 128) at batch 8, one decode token a step (residual window 128).

#e0 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>, value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 128>
func.func @k2c_v2t_g32(%c: !kvc.cache<8x8x?x128xf16, #e0>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e0> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e0>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e0>
}
#e1 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = token, group = 32>, value = #kvc.quant<bits = 2, axis = channel, group = 32>, residual = 128>
func.func @k2t_v2c_g32(%c: !kvc.cache<8x8x?x128xf16, #e1>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e1> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e1>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e1>
}
#e2 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 128>, value = #kvc.quant<bits = 2, axis = token, group = 128>, residual = 128>
func.func @k2c_v2t_g128(%c: !kvc.cache<8x8x?x128xf16, #e2>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e2> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e2>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e2>
}
#e3 = #kvc.encoding<key = #kvc.quant<bits = 2, axis = token, group = 128>, value = #kvc.quant<bits = 2, axis = channel, group = 128>, residual = 128>
func.func @k2t_v2c_g128(%c: !kvc.cache<8x8x?x128xf16, #e3>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e3> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e3>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e3>
}
#e4 = #kvc.encoding<key = #kvc.quant<bits = 3, axis = channel, group = 32>, value = #kvc.quant<bits = 3, axis = token, group = 32>, residual = 128>
func.func @k3c_v3t_g32(%c: !kvc.cache<8x8x?x128xf16, #e4>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e4> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e4>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e4>
}
#e5 = #kvc.encoding<key = #kvc.quant<bits = 3, axis = token, group = 32>, value = #kvc.quant<bits = 3, axis = channel, group = 32>, residual = 128>
func.func @k3t_v3c_g32(%c: !kvc.cache<8x8x?x128xf16, #e5>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e5> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e5>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e5>
}
#e6 = #kvc.encoding<key = #kvc.quant<bits = 3, axis = channel, group = 128>, value = #kvc.quant<bits = 3, axis = token, group = 128>, residual = 128>
func.func @k3c_v3t_g128(%c: !kvc.cache<8x8x?x128xf16, #e6>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e6> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e6>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e6>
}
#e7 = #kvc.encoding<key = #kvc.quant<bits = 3, axis = token, group = 128>, value = #kvc.quant<bits = 3, axis = channel, group = 128>, residual = 128>
func.func @k3t_v3c_g128(%c: !kvc.cache<8x8x?x128xf16, #e7>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e7> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e7>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e7>
}
#e8 = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>, value = #kvc.quant<bits = 4, axis = token, group = 32>, residual = 128>
func.func @k4c_v4t_g32(%c: !kvc.cache<8x8x?x128xf16, #e8>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e8> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e8>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e8>
}
#e9 = #kvc.encoding<key = #kvc.quant<bits = 4, axis = token, group = 32>, value = #kvc.quant<bits = 4, axis = channel, group = 32>, residual = 128>
func.func @k4t_v4c_g32(%c: !kvc.cache<8x8x?x128xf16, #e9>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e9> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e9>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e9>
}
#e10 = #kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 128>, value = #kvc.quant<bits = 4, axis = token, group = 128>, residual = 128>
func.func @k4c_v4t_g128(%c: !kvc.cache<8x8x?x128xf16, #e10>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e10> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e10>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e10>
}
#e11 = #kvc.encoding<key = #kvc.quant<bits = 4, axis = token, group = 128>, value = #kvc.quant<bits = 4, axis = channel, group = 128>, residual = 128>
func.func @k4t_v4c_g128(%c: !kvc.cache<8x8x?x128xf16, #e11>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e11> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e11>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e11>
}
#e12 = #kvc.encoding<key = #kvc.quant<bits = 8, axis = channel, group = 32>, value = #kvc.quant<bits = 8, axis = token, group = 32>, residual = 128>
func.func @k8c_v8t_g32(%c: !kvc.cache<8x8x?x128xf16, #e12>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e12> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e12>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e12>
}
#e13 = #kvc.encoding<key = #kvc.quant<bits = 8, axis = token, group = 32>, value = #kvc.quant<bits = 8, axis = channel, group = 32>, residual = 128>
func.func @k8t_v8c_g32(%c: !kvc.cache<8x8x?x128xf16, #e13>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e13> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e13>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e13>
}
#e14 = #kvc.encoding<key = #kvc.quant<bits = 8, axis = channel, group = 128>, value = #kvc.quant<bits = 8, axis = token, group = 128>, residual = 128>
func.func @k8c_v8t_g128(%c: !kvc.cache<8x8x?x128xf16, #e14>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e14> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e14>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e14>
}
#e15 = #kvc.encoding<key = #kvc.quant<bits = 8, axis = token, group = 128>, value = #kvc.quant<bits = 8, axis = channel, group = 128>, residual = 128>
func.func @k8t_v8c_g128(%c: !kvc.cache<8x8x?x128xf16, #e15>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #e15> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #e15>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #e15>
}
#plain = #kvc.encoding<key = #kvc.plain, value = #kvc.plain, residual = 128>
func.func @fp16(%c: !kvc.cache<8x8x?x128xf16, #plain>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #plain> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #plain>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #plain>
}
#fp8 = #kvc.encoding<key = #kvc.fp8<e4m3>, value = #kvc.fp8<e5m2>, residual = 128>
func.func @fp8(%c: !kvc.cache<8x8x?x128xf16, #fp8>, %k: tensor<8x8x1x128xf32>, %v: tensor<8x8x1x128xf32>) -> !kvc.cache<8x8x?x128xf16, #fp8> {
  %c1 = kvc.append %c, %k, %v : !kvc.cache<8x8x?x128xf16, #fp8>, tensor<8x8x1x128xf32>, tensor<8x8x1x128xf32>
  return %c1 : !kvc.cache<8x8x?x128xf16, #fp8>
}
