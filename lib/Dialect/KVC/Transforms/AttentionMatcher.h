//===- AttentionMatcher.h - find attention over an extended cache -*- C++ -*-===//
//
// Recognizes scaled dot-product attention in linalg-on-tensors IR, starting
// from a QKᵀ contraction whose keys come from a KV cache extended by
// tensor.concat, tensor.insert_slice or a dynamic-update-slice, and
// describes it in the terms of kvc.append + kvc.attend.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_DIALECT_KVC_TRANSFORMS_ATTENTIONMATCHER_H
#define KVC_LIB_DIALECT_KVC_TRANSFORMS_ATTENTIONMATCHER_H

#include "AttentionExpr.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

#include <memory>
#include <optional>

namespace mlir {
namespace kvc {

/// How an attention extends its past keys (or values) by new tokens:
/// `concat(past, new)`, the same with two insert_slices into a
/// tensor.empty, or `insert_slice new into past[offset]` (a
/// dynamic-update-slice into a fixed-size buffer).
struct CacheExtension {
  /// The op whose result is the extended tensor.
  Operation *op = nullptr;
  /// The past tokens: a function argument.
  BlockArgument past;
  Value newTokens;
  /// 2 for batch x heads x tokens x head_dim, 1 for batch x tokens x heads
  /// x head_dim.
  unsigned tokenDim = 2;
  /// New tokens (S) and token extent of the extended tensor (T).
  int64_t newCount = 0;
  int64_t extent = 0;
  /// Where the new tokens go: the past length (neither for a concat whose
  /// past length is dynamic).
  std::optional<int64_t> staticOffset;
  Value dynamicOffset;
  /// Whether `op` is a tensor.concat: the past and new tokens exactly.
  bool concatenates = false;

  unsigned headsDim() const { return tokenDim == 2 ? 1 : 2; }
  bool isBSHD() const { return tokenDim == 1; }
  /// Whether the extended tensor holds exactly past + new tokens; otherwise
  /// slots after the new tokens are unwritten and must be masked.
  bool fillsExtent() const {
    return concatenates || (staticOffset && *staticOffset + newCount == extent);
  }
};

/// An additive part of the mask that kvc.attend receives as its mask
/// operand: `multiplier * expr`.
struct MaskTerm {
  Expr *expr;
  double multiplier;
};

/// A condition under which a score is kept (masked otherwise).
struct MaskPredicate {
  Expr *expr;
  bool keepWhen;
};

/// A matched attention, in kvc terms. The index leaves name the parts of
/// every tensor involved (AttentionLayout.h).
struct AttentionSite {
  std::unique_ptr<AtomTable> atoms;
  std::unique_ptr<ExprBuilder> exprs;

  linalg::LinalgOp qk, pv;
  CacheExtension keys, values;

  /// Where the kvc query comes from, and its layout.
  Value query;
  Layout queryLayout;
  /// The P·V result layout, which the kvc.attend result is converted to.
  Layout outputLayout;

  AtomList batch, kvHeads, groups, positions, tokens, headDim, valueDim;

  double scale = 1.0;
  bool causal = false;
  std::optional<int64_t> window;
  /// The mask compares with the position JAX clamps to write the cache:
  /// exact only when 0 <= position <= extent - newCount (AttentionMask.cpp).
  bool assumesPositionInBuffer = false;

  /// The part of the mask kvc.attend gets as an operand (empty: none).
  SmallVector<MaskTerm> maskTerms;
  SmallVector<MaskPredicate> maskPredicates;
  bool maskDependsOnHeads = false;
  /// With a dynamic token count: the tensor the mask reads whose dimension
  /// `maskTokenDim` has the token count, and the gather that took it to
  /// have it (null when the IR says so).
  Value maskTokenSource;
  unsigned maskTokenDim = 0;
  Operation *maskTokenAssumption = nullptr;
  /// The value a masked score gets, and the scores' element type.
  std::optional<double> maskFill;
  FloatType scoreType;

  bool hasMaskOperand() const {
    return !maskTerms.empty() || !maskPredicates.empty();
  }
};

/// The outcome of matching from one contraction.
struct AttentionMatch {
  /// False when the contraction does not read a cache extension as keys:
  /// not an attention site, nothing to report.
  bool isCandidate = false;
  std::unique_ptr<AttentionSite> site;
  /// On failure: the op to attach the remark to and its text.
  Operation *failedOp = nullptr;
  std::string failure;
};

/// Matches the attention whose QKᵀ is `qk`.
AttentionMatch matchAttention(linalg::LinalgOp qk);

/// The cache extension producing `value`, if any.
std::optional<CacheExtension> matchCacheExtension(Value value);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_DIALECT_KVC_TRANSFORMS_ATTENTIONMATCHER_H
