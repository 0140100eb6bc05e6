//===- IndexOps.h - index arithmetic with constants folded ------*- C++ -*-===//

#ifndef KVC_LIB_CONVERSION_KVCTOLOOPS_INDEXOPS_H
#define KVC_LIB_CONVERSION_KVCTOLOOPS_INDEXOPS_H

#include "PageReader.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

namespace mlir {
namespace kvc {
/// Index arithmetic with constants folded.
struct IndexOps {
  OpBuilder &b;
  Location loc;
  Value add(Value x, Value y) {
    return b.createOrFold<arith::AddIOp>(loc, x, y);
  }
  Value add(Value x, int64_t y) { return add(x, indexConst(b, loc, y)); }
  Value mul(Value x, int64_t y) {
    return b.createOrFold<arith::MulIOp>(loc, x, indexConst(b, loc, y));
  }
  Value div(Value x, int64_t y) {
    return b.createOrFold<arith::DivUIOp>(loc, x, indexConst(b, loc, y));
  }
  Value rem(Value x, int64_t y) {
    return b.createOrFold<arith::RemUIOp>(loc, x, indexConst(b, loc, y));
  }
};

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOLOOPS_INDEXOPS_H
