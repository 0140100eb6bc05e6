//===- AttentionMask.h - scale and mask of attention scores -----*- C++ -*-===//
//
// The softmax input of a matched attention is an expression of the raw
// scores s = QKᵀ. kvc.attend can represent it when it is `a * s + m` with a
// constant a > 0 (the scale) and m independent of s: the mask, made of
// additive terms and of conditions under which a score is replaced by a
// large negative value. Conditions on the query position and the cache
// token that kvc expresses natively become `causal` and `window`; the rest
// is passed to kvc.attend as its mask operand.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_DIALECT_KVC_TRANSFORMS_ATTENTIONMASK_H
#define KVC_LIB_DIALECT_KVC_TRANSFORMS_ATTENTIONMASK_H

#include "AttentionMatcher.h"

namespace mlir {
namespace kvc {

/// The softmax input as `coefficient * s + sum(terms) + masked-unless(...)`.
struct ScoreDecomposition {
  double coefficient = 0.0;
  SmallVector<MaskTerm> terms;
  SmallVector<MaskPredicate> predicates;
  /// The Score leaves: where the expression reads QKᵀ.
  SmallVector<Expr *> scoreReads;
  /// The first large negative constant that masks a score.
  std::optional<double> fill;
};

/// Splits `input` (the softmax input); errors name the part that failed.
FailureOr<ScoreDecomposition> decomposeScores(Expr *input,
                                              std::string &error);

/// Turns the mask of `scores` into site.causal / site.window and the mask
/// operand parts, once the site's index roles are known.
LogicalResult classifyMask(AttentionSite &site, ScoreDecomposition &scores,
                           std::string &error);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_DIALECT_KVC_TRANSFORMS_ATTENTIONMASK_H
