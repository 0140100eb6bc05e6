//===- ExpandHalfFMA.cpp - fp16 fma as exactly rounded f32 code -----------===//
//
// The CPU loops that mirror the GPU's tensor-core passes compute fp16 fmas
// (the kernels' fma.rn.f16x2). x86 without AVX512-FP16 has none, and LLVM
// legalizes one through f64 and a libgcc call per element. This pass writes
// each as f32 arithmetic that rounds once: the sum rounded to odd in f32
// (24 bits ≥ 11 + 2), then rounded to nearest fp16 by one fptrunc.
//
//===----------------------------------------------------------------------===//

#include "kvc/Conversion/Passes.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir {
namespace kvc {
#define GEN_PASS_DEF_KVCEXPANDHALFFMA
#include "kvc/Conversion/Passes.h.inc"
} // namespace kvc
} // namespace mlir

using namespace mlir;

/// `type` with its (element) type replaced by `element`.
static Type withElementType(Type type, Type element) {
  if (auto vector = dyn_cast<VectorType>(type))
    return vector.clone(element);
  return element;
}

/// A splat (or scalar) integer or float constant of `type`.
static Value constant(OpBuilder &b, Location loc, Type type, TypedAttr scalar) {
  if (auto vector = dyn_cast<VectorType>(type))
    return LLVM::ConstantOp::create(b, loc, type,
                                    SplatElementsAttr::get(vector, scalar));
  return LLVM::ConstantOp::create(b, loc, type, scalar);
}

namespace {

struct ExpandHalfFMA : OpRewritePattern<LLVM::FMAOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LLVM::FMAOp op,
                                PatternRewriter &rewriter) const override {
    Type type = op.getType();
    if (!getElementTypeOrSelf(type).isF16())
      return rewriter.notifyMatchFailure(op, "not an fp16 fma");
    Location loc = op.getLoc();
    Type f32 = withElementType(type, rewriter.getF32Type());
    Type i32 = withElementType(type, rewriter.getI32Type());
    auto extend = [&](Value v) {
      return LLVM::FPExtOp::create(rewriter, loc, f32, v);
    };
    Value a = extend(op.getA()), b = extend(op.getB()), c = extend(op.getC());

    // Exact: two 11-bit significands make 22 bits, and |a·b| lies in
    // [2^-48, 2^32], well inside f32's normal range.
    Value product = LLVM::FMulOp::create(rewriter, loc, a, b);
    Value sum = LLVM::FAddOp::create(rewriter, loc, product, c);
    // TwoSum: sum + error == product + c exactly (no overflow: |sum| < 2^33).
    Value cPart = LLVM::FSubOp::create(rewriter, loc, sum, product);
    Value productPart = LLVM::FSubOp::create(rewriter, loc, sum, cPart);
    Value productError =
        LLVM::FSubOp::create(rewriter, loc, product, productPart);
    Value cError = LLVM::FSubOp::create(rewriter, loc, c, cPart);
    Value error = LLVM::FAddOp::create(rewriter, loc, productError, cError);

    // Round to odd: an inexact sum whose significand is even moves one ulp
    // towards the exact value (up in magnitude when the error has the sum's
    // sign). NaN errors (infinite or NaN operands) compare unordered and
    // leave the sum as it is.
    Value sumBits = LLVM::BitcastOp::create(rewriter, loc, i32, sum);
    Value errorBits = LLVM::BitcastOp::create(rewriter, loc, i32, error);
    Value zero = constant(rewriter, loc, f32, rewriter.getF32FloatAttr(0));
    Value inexact = LLVM::FCmpOp::create(rewriter, loc,
                                         LLVM::FCmpPredicate::one, error, zero);
    Value one = constant(rewriter, loc, i32, rewriter.getI32IntegerAttr(1));
    Value minusOne =
        constant(rewriter, loc, i32, rewriter.getI32IntegerAttr(-1));
    Value izero = constant(rewriter, loc, i32, rewriter.getI32IntegerAttr(0));
    Value even = LLVM::ICmpOp::create(
        rewriter, loc, LLVM::ICmpPredicate::eq,
        LLVM::AndOp::create(rewriter, loc, sumBits, one), izero);
    Value sameSign = LLVM::ICmpOp::create(
        rewriter, loc, LLVM::ICmpPredicate::sge,
        LLVM::XOrOp::create(rewriter, loc, sumBits, errorBits), izero);
    Value step = LLVM::SelectOp::create(rewriter, loc, sameSign, one, minusOne);
    Value moved = LLVM::AddOp::create(rewriter, loc, sumBits, step);
    Value toOdd = LLVM::AndOp::create(rewriter, loc, inexact, even);
    Value oddBits =
        LLVM::SelectOp::create(rewriter, loc, toOdd, moved, sumBits);
    Value odd = LLVM::BitcastOp::create(rewriter, loc, f32, oddBits);
    rewriter.replaceOpWithNewOp<LLVM::FPTruncOp>(op, type, odd);
    return success();
  }
};

struct KVCExpandHalfFMAPass
    : public mlir::kvc::impl::KVCExpandHalfFMABase<KVCExpandHalfFMAPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<ExpandHalfFMA>(&getContext());
    // One rewrite an fma and nothing to fold: a single walk.
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
