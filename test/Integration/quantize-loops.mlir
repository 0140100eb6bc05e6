// REQUIRES: kvc-python
// kvc.quantize lowered to loops (kvc-cpu-pipeline: GroupQuantizer, the
// numerics library's quantizer emitted in arith/scf) and run by kvc-run
// --invoke: codes, scales and zeros must equal the numerics library's bit for
// bit (Inputs/quantize_check.py, fresh random inputs each run, with constant
// groups, -0.0, values beyond the fp16 range, fp16 subnormals, and NaN/Inf
// that poison their groups), for every bit width and both axes.

// RUN: %python %S/Inputs/quantize_check.py make %t.in
// RUN: kvc-run --invoke=token_q2 --inputs=%t.in --outputs=%t.token_q2.out %s > /dev/null
// RUN: %python %S/Inputs/quantize_check.py check %t.in %t.token_q2.out token_q2 | FileCheck %s --check-prefix=CHECK-TOKEN-Q2
// RUN: kvc-run --invoke=token_q3 --inputs=%t.in --outputs=%t.token_q3.out %s > /dev/null
// RUN: %python %S/Inputs/quantize_check.py check %t.in %t.token_q3.out token_q3 | FileCheck %s --check-prefix=CHECK-TOKEN-Q3
// RUN: kvc-run --invoke=token_q4 --inputs=%t.in --outputs=%t.token_q4.out %s > /dev/null
// RUN: %python %S/Inputs/quantize_check.py check %t.in %t.token_q4.out token_q4 | FileCheck %s --check-prefix=CHECK-TOKEN-Q4
// RUN: kvc-run --invoke=token_q8 --inputs=%t.in --outputs=%t.token_q8.out %s > /dev/null
// RUN: %python %S/Inputs/quantize_check.py check %t.in %t.token_q8.out token_q8 | FileCheck %s --check-prefix=CHECK-TOKEN-Q8
// RUN: kvc-run --invoke=channel_q2 --inputs=%t.in --outputs=%t.channel_q2.out %s > /dev/null
// RUN: %python %S/Inputs/quantize_check.py check %t.in %t.channel_q2.out channel_q2 | FileCheck %s --check-prefix=CHECK-CHANNEL-Q2
// RUN: kvc-run --invoke=channel_q3 --inputs=%t.in --outputs=%t.channel_q3.out %s > /dev/null
// RUN: %python %S/Inputs/quantize_check.py check %t.in %t.channel_q3.out channel_q3 | FileCheck %s --check-prefix=CHECK-CHANNEL-Q3
// RUN: kvc-run --invoke=channel_q4 --inputs=%t.in --outputs=%t.channel_q4.out %s > /dev/null
// RUN: %python %S/Inputs/quantize_check.py check %t.in %t.channel_q4.out channel_q4 | FileCheck %s --check-prefix=CHECK-CHANNEL-Q4
// RUN: kvc-run --invoke=channel_q8 --inputs=%t.in --outputs=%t.channel_q8.out %s > /dev/null
// RUN: %python %S/Inputs/quantize_check.py check %t.in %t.channel_q8.out channel_q8 | FileCheck %s --check-prefix=CHECK-CHANNEL-Q8
// RUN: kvc-run --invoke=fp8_e4m3 --inputs=%t.in --outputs=%t.fp8_e4m3.out %s > /dev/null
// RUN: %python %S/Inputs/quantize_check.py check %t.in %t.fp8_e4m3.out fp8_e4m3 | FileCheck %s --check-prefix=CHECK-E4M3
// RUN: kvc-run --invoke=fp8_e5m2 --inputs=%t.in --outputs=%t.fp8_e5m2.out %s > /dev/null
// RUN: %python %S/Inputs/quantize_check.py check %t.in %t.fp8_e5m2.out fp8_e5m2 | FileCheck %s --check-prefix=CHECK-E5M2
// RUN: kvc-run --invoke=fp8_e4m3_f16 --inputs=%t.in --outputs=%t.fp8_e4m3_f16.out %s > /dev/null
// RUN: %python %S/Inputs/quantize_check.py check %t.in %t.fp8_e4m3_f16.out fp8_e4m3_f16 | FileCheck %s --check-prefix=CHECK-E4M3-F16

// CHECK-TOKEN-Q2: token_q2 (quant<bits=2, axis=token, group=32>): {{[0-9]+}} groups ({{[0-9]+}} poisoned), codes, scales and zeros identical to the numerics library
// CHECK-TOKEN-Q3: token_q3 (quant<bits=3, axis=token, group=32>): {{[0-9]+}} groups ({{[0-9]+}} poisoned), codes, scales and zeros identical to the numerics library
// CHECK-TOKEN-Q4: token_q4 (quant<bits=4, axis=token, group=64>): {{[0-9]+}} groups ({{[0-9]+}} poisoned), codes, scales and zeros identical to the numerics library
// CHECK-TOKEN-Q8: token_q8 (quant<bits=8, axis=token, group=32>): {{[0-9]+}} groups ({{[0-9]+}} poisoned), codes, scales and zeros identical to the numerics library
// CHECK-CHANNEL-Q2: channel_q2 (quant<bits=2, axis=channel, group=32>): {{[0-9]+}} groups ({{[0-9]+}} poisoned), codes, scales and zeros identical to the numerics library
// CHECK-CHANNEL-Q3: channel_q3 (quant<bits=3, axis=channel, group=64>): {{[0-9]+}} groups ({{[0-9]+}} poisoned), codes, scales and zeros identical to the numerics library
// CHECK-CHANNEL-Q4: channel_q4 (quant<bits=4, axis=channel, group=32>): {{[0-9]+}} groups ({{[0-9]+}} poisoned), codes, scales and zeros identical to the numerics library
// CHECK-CHANNEL-Q8: channel_q8 (quant<bits=8, axis=channel, group=64>): {{[0-9]+}} groups ({{[0-9]+}} poisoned), codes, scales and zeros identical to the numerics library
// fp8 (per-token fp16 scale, FP8Quantizer: floatToFP8 on the f32 bits).
// CHECK-E4M3: fp8_e4m3 (fp8<e4m3>): 8 tokens (2 poisoned), {{[1-9][0-9]*}} subnormal and {{[1-9][0-9]*}} largest-finite codes, codes and scales identical to the numerics library
// CHECK-E5M2: fp8_e5m2 (fp8<e5m2>): 8 tokens (2 poisoned), {{[1-9][0-9]*}} subnormal and {{[1-9][0-9]*}} largest-finite codes, codes and scales identical to the numerics library
// CHECK-E4M3-F16: fp8_e4m3_f16 (fp8<e4m3>): 6 tokens ({{[0-9]+}} poisoned), {{[1-9][0-9]*}} subnormal and {{[1-9][0-9]*}} largest-finite codes, codes and scales identical to the numerics library

func.func @token_q2(%x: tensor<2x4x64xf32> {kvc.name = "x_token_q2"}) -> (tensor<2x4x16xi8>, tensor<2x4x2xf16>, tensor<2x4x2xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 2, axis = token, group = 32>
      : tensor<2x4x64xf32> -> tensor<2x4x16xi8>, tensor<2x4x2xf16>, tensor<2x4x2xf16>
  return %c, %s, %z : tensor<2x4x16xi8>, tensor<2x4x2xf16>, tensor<2x4x2xf16>
}

func.func @token_q3(%x: tensor<4x96xf32> {kvc.name = "x_token_q3"}) -> (tensor<4x36xi8>, tensor<4x3xf16>, tensor<4x3xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 3, axis = token, group = 32>
      : tensor<4x96xf32> -> tensor<4x36xi8>, tensor<4x3xf16>, tensor<4x3xf16>
  return %c, %s, %z : tensor<4x36xi8>, tensor<4x3xf16>, tensor<4x3xf16>
}

func.func @token_q4(%x: tensor<3x128xf16> {kvc.name = "x_token_q4"}) -> (tensor<3x64xi8>, tensor<3x2xf16>, tensor<3x2xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 4, axis = token, group = 64>
      : tensor<3x128xf16> -> tensor<3x64xi8>, tensor<3x2xf16>, tensor<3x2xf16>
  return %c, %s, %z : tensor<3x64xi8>, tensor<3x2xf16>, tensor<3x2xf16>
}

func.func @token_q8(%x: tensor<4x64xf32> {kvc.name = "x_token_q8"}) -> (tensor<4x64xi8>, tensor<4x2xf16>, tensor<4x2xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 8, axis = token, group = 32>
      : tensor<4x64xf32> -> tensor<4x64xi8>, tensor<4x2xf16>, tensor<4x2xf16>
  return %c, %s, %z : tensor<4x64xi8>, tensor<4x2xf16>, tensor<4x2xf16>
}

func.func @channel_q2(%x: tensor<64x8xf32> {kvc.name = "x_channel_q2"}) -> (tensor<2x8x8xi8>, tensor<2x8xf16>, tensor<2x8xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 2, axis = channel, group = 32>
      : tensor<64x8xf32> -> tensor<2x8x8xi8>, tensor<2x8xf16>, tensor<2x8xf16>
  return %c, %s, %z : tensor<2x8x8xi8>, tensor<2x8xf16>, tensor<2x8xf16>
}

func.func @channel_q3(%x: tensor<2x64x4xf32> {kvc.name = "x_channel_q3"}) -> (tensor<2x1x4x24xi8>, tensor<2x1x4xf16>, tensor<2x1x4xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 3, axis = channel, group = 64>
      : tensor<2x64x4xf32> -> tensor<2x1x4x24xi8>, tensor<2x1x4xf16>, tensor<2x1x4xf16>
  return %c, %s, %z : tensor<2x1x4x24xi8>, tensor<2x1x4xf16>, tensor<2x1x4xf16>
}

func.func @channel_q4(%x: tensor<32x6xf32> {kvc.name = "x_channel_q4"}) -> (tensor<1x6x16xi8>, tensor<1x6xf16>, tensor<1x6xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 4, axis = channel, group = 32>
      : tensor<32x6xf32> -> tensor<1x6x16xi8>, tensor<1x6xf16>, tensor<1x6xf16>
  return %c, %s, %z : tensor<1x6x16xi8>, tensor<1x6xf16>, tensor<1x6xf16>
}

func.func @channel_q8(%x: tensor<64x3xf32> {kvc.name = "x_channel_q8"}) -> (tensor<1x3x64xi8>, tensor<1x3xf16>, tensor<1x3xf16>) {
  %c, %s, %z = kvc.quantize %x as quant<bits = 8, axis = channel, group = 64>
      : tensor<64x3xf32> -> tensor<1x3x64xi8>, tensor<1x3xf16>, tensor<1x3xf16>
  return %c, %s, %z : tensor<1x3x64xi8>, tensor<1x3xf16>, tensor<1x3xf16>
}

func.func @fp8_e4m3(%x: tensor<8x64xf32> {kvc.name = "x_fp8_e4m3"}) -> (tensor<8x64xi8>, tensor<8xf16>) {
  %c, %s = kvc.quantize %x as fp8<e4m3> : tensor<8x64xf32> -> tensor<8x64xi8>, tensor<8xf16>
  return %c, %s : tensor<8x64xi8>, tensor<8xf16>
}

func.func @fp8_e5m2(%x: tensor<2x4x128xf32> {kvc.name = "x_fp8_e5m2"}) -> (tensor<2x4x128xi8>, tensor<2x4xf16>) {
  %c, %s = kvc.quantize %x as fp8<e5m2> : tensor<2x4x128xf32> -> tensor<2x4x128xi8>, tensor<2x4xf16>
  return %c, %s : tensor<2x4x128xi8>, tensor<2x4xf16>
}

func.func @fp8_e4m3_f16(%x: tensor<6x64xf16> {kvc.name = "x_fp8_e4m3_f16"}) -> (tensor<6x64xi8>, tensor<6xf16>) {
  %c, %s = kvc.quantize %x as fp8<e4m3> : tensor<6x64xf16> -> tensor<6x64xi8>, tensor<6xf16>
  return %c, %s : tensor<6x64xi8>, tensor<6xf16>
}
