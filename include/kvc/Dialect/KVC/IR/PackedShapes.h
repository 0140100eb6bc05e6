//===- PackedShapes.h - tensor shapes of packed kvc data --------*- C++ -*-===//
//
// The shapes of the codes / scales / zeros tensors of kvc.quantize and
// kvc.dequantize, derived from the numerics library's matrix form.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_DIALECT_KVC_IR_PACKEDSHAPES_H
#define KVC_DIALECT_KVC_IR_PACKEDSHAPES_H

#include "kvc/Dialect/KVC/IR/KVCAttrs.h"
#include "mlir/Support/LLVM.h"

#include <optional>

namespace mlir {
namespace kvc {

struct PackedShapes {
  SmallVector<int64_t> codes;
  SmallVector<int64_t> scales;
  /// Absent for encodings without zero points (fp8).
  std::optional<SmallVector<int64_t>> zeros;
};

/// Shapes of the packed tensors for an unpacked `... x tokens x channels`
/// shape. Leading dims and a dynamic token count carry over; the channel
/// count must be static. Fails, through `emitError`, on a shape the encoding
/// cannot pack.
FailureOr<PackedShapes>
computePackedShapes(SideEncodingAttrInterface encoding,
                    ArrayRef<int64_t> unpacked,
                    function_ref<InFlightDiagnostic()> emitError);

} // namespace kvc
} // namespace mlir

#endif // KVC_DIALECT_KVC_IR_PACKEDSHAPES_H
