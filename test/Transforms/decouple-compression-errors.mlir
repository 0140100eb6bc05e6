// Bad options and encodings that do not fit a cache are errors that name
// the bad token; nothing is rewritten.

// RUN: not kvc-opt %s -allow-unregistered-dialect --kvc-decouple-compression="spec=key=q5:channel:g32" 2>&1 | FileCheck %s --check-prefix=BITS
// BITS: error: kvc-decouple-compression: bad spec: key: invalid encoding 'q5:channel:g32': bits must be 2, 3, 4 or 8 (got 5)

// RUN: not kvc-opt %s -allow-unregistered-dialect --kvc-decouple-compression="spec=key=q2:heads:g32" 2>&1 | FileCheck %s --check-prefix=AXIS
// AXIS: error: kvc-decouple-compression: bad spec: key: unknown quantization axis 'heads' in 'q2:heads:g32' (expected channel or token)

// RUN: not kvc-opt %s -allow-unregistered-dialect --kvc-decouple-compression="spec=key=int2" 2>&1 | FileCheck %s --check-prefix=SIDE
// SIDE: error: kvc-decouple-compression: bad spec: key: bad encoding 'int2' (expected fp16, fp8:<e4m3|e5m2> or q<bits>:<channel|token>:g<group>)

// RUN: not kvc-opt %s -allow-unregistered-dialect --kvc-decouple-compression="spec=keys=fp16" 2>&1 | FileCheck %s --check-prefix=ITEM
// ITEM: error: kvc-decouple-compression: bad spec: unknown spec item 'keys' (expected key, value or residual)

// RUN: not kvc-opt %s -allow-unregistered-dialect --kvc-decouple-compression="spec=residual=lots" 2>&1 | FileCheck %s --check-prefix=RESIDUAL
// RESIDUAL: error: kvc-decouple-compression: bad spec: bad residual 'lots' (expected a token count)

// RUN: not kvc-opt %s -allow-unregistered-dialect --kvc-decouple-compression="spec=value=fp8:e3m4" 2>&1 | FileCheck %s --check-prefix=FP8
// FP8: error: kvc-decouple-compression: bad spec: value: unknown fp8 format 'e3m4' (expected e4m3 or e5m2)

// RUN: not kvc-opt %s -allow-unregistered-dialect --kvc-decouple-compression="layers=3-1:key=fp16" 2>&1 | FileCheck %s --check-prefix=RANGE
// RANGE: error: kvc-decouple-compression: bad layers option: bad layer override '3-1:key=fp16' (expected <first>[-<last>]:<spec>)

// RUN: not kvc-opt %s -allow-unregistered-dialect --kvc-decouple-compression="layers=0:value=q2:token:g24" 2>&1 | FileCheck %s --check-prefix=OVERRIDE
// OVERRIDE: error: kvc-decouple-compression: bad layers option: layers 0: value: invalid encoding 'q2:token:g24': group must be a positive multiple of 32, the packing unit (got 24)

// RUN: not kvc-opt %s -allow-unregistered-dialect --kvc-decouple-compression="storage-type=f8" 2>&1 | FileCheck %s --check-prefix=STORAGE
// STORAGE: error: kvc-decouple-compression: bad storage-type 'f8' (expected f16, bf16 or f32)

// The spec parses but does not fit this cache: residual 100 is no multiple
// of the key group, and a 128-channel value group does not divide 64.
// RUN: not kvc-opt %s -allow-unregistered-dialect --kvc-decouple-compression="spec=residual=100" 2>&1 | FileCheck %s --check-prefix=FIT
// FIT: decouple-compression-errors.mlir:[[# @LINE + 8]]:{{[0-9]+}}: error: layer 0: residual 100 must be a positive multiple of the key group 32
// RUN: not kvc-opt %s -allow-unregistered-dialect --kvc-decouple-compression="spec=value=q2:token:g128" 2>&1 | FileCheck %s --check-prefix=HEADDIM
// HEADDIM: error: layer 0: value encoding: token-axis group 128 must divide the value dimension 64

// A cache flowing into an op the pass cannot retype is an error too.
// RUN: not kvc-opt %s -allow-unregistered-dialect --kvc-decouple-compression 2>&1 | FileCheck %s --check-prefix=USER
// USER: error: 'test.consume' op uses a cache whose encoding kvc-decouple-compression would change; only kvc ops and func.return can carry it

func.func @f(%c: !kvc.cache<1x2x?x64xf32>) {
  "test.consume"(%c) : (!kvc.cache<1x2x?x64xf32>) -> ()
  return
}
