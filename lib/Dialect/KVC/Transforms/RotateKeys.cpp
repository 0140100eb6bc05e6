//===- RotateKeys.cpp - store compressed keys Hadamard-rotated ------------===//
//
// For caches whose keys are compressed, appends store K·H and attention
// reads with q·H, H the orthonormal Hadamard matrix of the head dimension
// (kvc/Numerics/Rotation.h): scores are unchanged, and the quantizer sees
// keys whose outlier channels are spread over all channels (QuaRot). The
// rotation is a linalg.generic whose entries come from the loop indices, so
// no D x D constant lands in the IR.
//
//===----------------------------------------------------------------------===//

#include "kvc/Dialect/KVC/IR/KVCOps.h"
#include "kvc/Dialect/KVC/Transforms/Passes.h"
#include "kvc/Numerics/Rotation.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"

#include <cmath>

namespace mlir {
namespace kvc {
#define GEN_PASS_DEF_KVCROTATEKEYS
#include "kvc/Dialect/KVC/Transforms/Passes.h.inc"
} // namespace kvc
} // namespace mlir

using namespace mlir;
using namespace mlir::kvc;

/// Marks rotated ops, so the pass is idempotent.
static constexpr StringLiteral kRotatedAttrName = "kvc.rotated_keys";

namespace {

struct RotateKeysPass
    : public mlir::kvc::impl::KVCRotateKeysBase<RotateKeysPass> {
  using Base::Base;
  void runOnOperation() override;
};

} // namespace

/// Whether caches of `type` store rotated keys: compressed keys only.
static bool storesRotatedKeys(CacheType type) {
  EncodingAttr encoding = type.getEncoding();
  return encoding && !encoding.toNumerics().key.isPlain();
}

/// x · H over the last dimension of a rank-4 f32 tensor.
static Value rotate(OpBuilder &b, Location loc, Value x) {
  auto type = cast<RankedTensorType>(x.getType());
  int64_t d = type.getDimSize(3);
  SmallVector<Value> dynamicSizes;
  for (int64_t i = 0; i < 4; ++i)
    if (type.isDynamicDim(i))
      dynamicSizes.push_back(tensor::DimOp::create(b, loc, x, i));
  Value init = tensor::EmptyOp::create(b, loc, type.getShape(),
                                       type.getElementType(), dynamicSizes);
  Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
  Value acc = linalg::FillOp::create(b, loc, zero, init).getResult(0);
  MLIRContext *context = b.getContext();
  // (b, h, s, j, i): out[b, h, s, j] += x[b, h, s, i] * h(i, j).
  AffineExpr b0, h, s, j, i;
  bindDims(context, b0, h, s, j, i);
  auto input = AffineMap::get(5, 0, {b0, h, s, i}, context);
  auto output = AffineMap::get(5, 0, {b0, h, s, j}, context);
  SmallVector<utils::IteratorType> iterators(4, utils::IteratorType::parallel);
  iterators.push_back(utils::IteratorType::reduction);
  float magnitude = 1.0f / std::sqrt(static_cast<float>(d));
  auto generic = linalg::GenericOp::create(
      b, loc, type, ValueRange{x}, ValueRange{acc},
      ArrayRef<AffineMap>{input, output}, iterators,
      [&](OpBuilder &nb, Location l, ValueRange args) {
        // h(i, j) = (-1)^popcount(i & j) / sqrt(D), as in the numerics.
        Value row = linalg::IndexOp::create(nb, l, 4);
        Value col = linalg::IndexOp::create(nb, l, 3);
        // The parity of popcount(i & j) by xor-folding the bits (i, j < D),
        // in arith only: every backend lowers it.
        Value parity = arith::IndexCastOp::create(
            nb, l, nb.getI64Type(), arith::AndIOp::create(nb, l, row, col));
        for (int64_t shift = d / 2; shift >= 1; shift /= 2)
          parity = arith::XOrIOp::create(
              nb, l, parity,
              arith::ShRUIOp::create(
                  nb, l, parity,
                  arith::ConstantIntOp::create(nb, l, shift, 64)));
        Value one = arith::ConstantIntOp::create(nb, l, 1, 64);
        Value odd = arith::CmpIOp::create(
            nb, l, arith::CmpIPredicate::ne,
            arith::AndIOp::create(nb, l, parity, one),
            arith::ConstantIntOp::create(nb, l, 0, 64));
        Value positive = arith::ConstantOp::create(
            nb, l, nb.getF32FloatAttr(magnitude));
        Value negative = arith::ConstantOp::create(
            nb, l, nb.getF32FloatAttr(-magnitude));
        Value entry = arith::SelectOp::create(nb, l, odd, negative, positive);
        Value product = arith::MulFOp::create(nb, l, args[0], entry);
        linalg::YieldOp::create(
            nb, l, ValueRange{arith::AddFOp::create(nb, l, args[1], product)});
      });
  return generic.getResult(0);
}

/// Why `op`'s cache cannot store rotated keys, or "" if it can.
static std::string rotationProblem(Operation *op, CacheType cache,
                                   Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  if (!type.getElementType().isF32())
    return "the operand is not f32";
  if (type.isDynamicDim(3) ||
      !::kvc::numerics::isHadamardOrder(size_t(cache.getHeadDim())))
    return "the head dimension " + std::to_string(cache.getHeadDim()) +
           " is not a power of two";
  return "";
}

void RotateKeysPass::runOnOperation() {
  ModuleOp module = getOperation();
  // Every op that reads a rotated cache must know: attention rotates its
  // query; anything else (dequantize, evict) would see rotated keys.
  WalkResult checked = module.walk([&](Operation *op) -> WalkResult {
    if (!isa<KVCDialect>(op->getDialect()) ||
        isa<AppendOp, AttendOp, ForkOp, CacheEmptyOp>(op))
      return WalkResult::advance();
    for (Value operand : op->getOperands())
      if (auto cache = dyn_cast<CacheType>(operand.getType());
          cache && storesRotatedKeys(cache)) {
        op->emitError() << "kvc-rotate-keys: " << op->getName()
                        << " reads a cache whose keys would be stored "
                           "rotated; only kvc.append and kvc.attend know how";
        return WalkResult::interrupt();
      }
    return WalkResult::advance();
  });
  if (checked.wasInterrupted())
    return signalPassFailure();

  OpBuilder builder(&getContext());
  WalkResult result = module.walk([&](Operation *op) -> WalkResult {
    if (op->hasAttr(kRotatedAttrName))
      return WalkResult::advance();
    Value cacheValue, tensor;
    OpOperand *operand = nullptr;
    if (auto append = dyn_cast<AppendOp>(op)) {
      cacheValue = append.getCache();
      operand = &append.getKeysMutable();
    } else if (auto attend = dyn_cast<AttendOp>(op)) {
      cacheValue = attend.getCache();
      operand = &attend.getQueryMutable();
    } else {
      return WalkResult::advance();
    }
    auto cache = cast<CacheType>(cacheValue.getType());
    if (!storesRotatedKeys(cache))
      return WalkResult::advance();
    tensor = operand->get();
    std::string problem = rotationProblem(op, cache, tensor);
    if (!problem.empty()) {
      // Appends and attends of one cache must agree, and the conditions
      // depend on the cache type: an error, not a silent skip.
      op->emitError() << "kvc-rotate-keys: cannot rotate: " << problem;
      return WalkResult::interrupt();
    }
    builder.setInsertionPoint(op);
    operand->set(rotate(builder, op->getLoc(), tensor));
    op->setAttr(kRotatedAttrName, builder.getUnitAttr());
    return WalkResult::advance();
  });
  if (result.wasInterrupted())
    return signalPassFailure();
  // Whoever fills or reads such a cache from outside (a host prefilling the
  // runtime cache) must rotate too: say so on the function's arguments.
  module.walk([&](func::FuncOp func) {
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      if (auto cache = dyn_cast<CacheType>(func.getArgumentTypes()[i]);
          cache && storesRotatedKeys(cache))
        func.setArgAttr(i, kRotatedAttrName, builder.getUnitAttr());
  });
}
