//===- QuantizeKernel.h - the kvc.quantize kernel ---------------*- C++ -*-===//
//
// A GPU kernel quantizing and packing kvc.quantize's matrix form, a thread
// per group, with the CPU lowering's GroupQuantizer: the generated code of
// both paths is the numerics library's quantizer (checked bit for bit on the
// CPU by test/Integration/quantize-loops.mlir). It is the quantize-and-pack
// step an append kernel runs when a residual block flushes.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOGPU_QUANTIZEKERNEL_H
#define KVC_LIB_CONVERSION_KVCTOGPU_QUANTIZEKERNEL_H

#include "kvc/Numerics/Encoding.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"

namespace mlir {
namespace kvc {

/// The kernel `name` in `module`: arguments (input, codes, scales, and for
/// `quant` zeros) memrefs of kvc.quantize's operand and result shapes;
/// thread blockIdx.x * blockThreads + threadIdx.x quantizes item number
/// (row-major over `scales`: a group, or an fp8 token) if there is one.
/// Launch it with ceil(items / blockThreads) blocks. `minBlocksPerSM`
/// (nvvm.minctasm, 0: none) lets ptxas use the registers that many blocks
/// leave.
gpu::GPUFuncOp buildQuantizeKernel(OpBuilder &b, Location loc,
                                   gpu::GPUModuleOp module, StringRef name,
                                   const ::kvc::numerics::SideEncoding &side,
                                   MemRefType input, MemRefType codes,
                                   MemRefType params, unsigned blockThreads,
                                   unsigned minBlocksPerSM);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOGPU_QUANTIZEKERNEL_H
