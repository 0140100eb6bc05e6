//===- AttentionMask.cpp - scale and mask of attention scores -------------===//

#include "AttentionMask.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace mlir;
using namespace mlir::kvc;

/// Scores at or below this are masked: -inf, finfo.min, -1e9, ...
static constexpr double kMaskingThreshold = -1.0e4;

//===----------------------------------------------------------------------===//
// Scale and mask decomposition
//===----------------------------------------------------------------------===//

namespace {
struct ScoreCollector {
  ScoreDecomposition &out;
  std::string &error;
  llvm::DenseMap<Expr *, bool> dependence;

  bool depends(Expr *expr) {
    auto [it, inserted] = dependence.try_emplace(expr, false);
    if (inserted)
      it->second = dependsOnScores(expr);
    return it->second;
  }

  LogicalResult fail(const Twine &message) {
    error = message.str();
    return failure();
  }

  bool isMasking(Expr *expr) {
    std::optional<double> value = constantValue(expr);
    if (!value || *value > kMaskingThreshold)
      return false;
    if (!out.fill)
      out.fill = *value;
    return true;
  }

  LogicalResult addPredicate(Expr *predicate, bool keepWhen, double mult) {
    if (mult <= 0.0)
      return fail("mask not recognized: a masked score is negated or scaled "
                  "by a non-positive factor");
    if (predicate->is(Expr::Kind::Constant)) {
      auto flag = dyn_cast<IntegerAttr>(predicate->constant);
      if (flag && (flag.getValue().getBoolValue() == keepWhen))
        return success();
      return fail("mask not recognized: it hides every score");
    }
    if (predicate->is(Expr::Kind::Op)) {
      Operation *op = predicate->op;
      // Conjunctions of kept conditions split; so do De Morgan's duals.
      if ((isa<arith::AndIOp>(op) && keepWhen) ||
          (isa<arith::OrIOp>(op) && !keepWhen))
        return success(
            succeeded(addPredicate(predicate->operands[0], keepWhen, mult)) &&
            succeeded(addPredicate(predicate->operands[1], keepWhen, mult)));
      if (isa<arith::XOrIOp>(op)) {
        for (unsigned side = 0; side < 2; ++side) {
          Expr *flag = predicate->operands[side];
          auto attr = flag->is(Expr::Kind::Constant)
                          ? dyn_cast<IntegerAttr>(flag->constant)
                          : IntegerAttr();
          if (attr && attr.getValue().getBoolValue())
            return addPredicate(predicate->operands[1 - side], !keepWhen,
                                mult);
        }
      }
    }
    out.predicates.push_back({predicate, keepWhen});
    return success();
  }

  /// Adds `mult * expr` to the decomposition. Around the scores, sums,
  /// constant factors and masking selects are taken apart; a mask (no
  /// scores) is only split into its summands and masking selects, so that
  /// its terms are computed as the IR computes them.
  LogicalResult collect(Expr *expr, double mult) {
    bool freeOfScores = !depends(expr);
    if (expr->is(Expr::Kind::Score)) {
      out.coefficient += mult;
      out.scoreReads.push_back(expr);
      return success();
    }
    if (freeOfScores && expr->is(Expr::Kind::Op) &&
        !isa<arith::ExtFOp, arith::TruncFOp, arith::AddFOp, arith::SelectOp>(
            expr->op))
      return addTerm(expr, mult);
    if (expr->is(Expr::Kind::Op)) {
      Operation *op = expr->op;
      ArrayRef<Expr *> operands = expr->operands;
      if (isa<arith::ExtFOp, arith::TruncFOp>(op))
        return collect(operands[0], mult);
      if (isa<arith::AddFOp>(op))
        return success(succeeded(collect(operands[0], mult)) &&
                       succeeded(collect(operands[1], mult)));
      if (isa<arith::SubFOp>(op))
        return success(succeeded(collect(operands[0], mult)) &&
                       succeeded(collect(operands[1], -mult)));
      if (isa<arith::NegFOp>(op))
        return collect(operands[0], -mult);
      if (isa<arith::MulFOp>(op)) {
        for (unsigned side = 0; side < 2; ++side)
          if (std::optional<double> factor = constantValue(operands[side]))
            return collect(operands[1 - side], mult * *factor);
        if (!freeOfScores)
          return fail("scale not recognized: scores are multiplied by a "
                      "value that is not a constant");
      }
      if (isa<arith::DivFOp>(op)) {
        std::optional<double> divisor = constantValue(operands[1]);
        if (divisor && *divisor != 0.0)
          return collect(operands[0], mult / *divisor);
        if (!freeOfScores)
          return fail("scale not recognized: scores are divided by a value "
                      "that is not a non-zero constant");
      }
      if (isa<arith::SelectOp>(op)) {
        if (depends(operands[0]))
          return fail("mask not recognized: the select condition depends on "
                      "the scores");
        // select(c, x, -inf) is x plus "masked unless c".
        if (isMasking(operands[2]))
          return success(succeeded(addPredicate(operands[0], true, mult)) &&
                         succeeded(collect(operands[1], mult)));
        if (isMasking(operands[1]))
          return success(succeeded(addPredicate(operands[0], false, mult)) &&
                         succeeded(collect(operands[2], mult)));
        if (!freeOfScores)
          return fail("mask not recognized: a select between scores keeps "
                      "no large negative value");
      }
      // max(x, finfo.min) guards against -inf and changes nothing else.
      if (isa<arith::MaximumFOp, arith::MaxNumFOp>(op))
        for (unsigned side = 0; side < 2; ++side)
          if (isMasking(operands[side]))
            return collect(operands[1 - side], mult);
    }
    if (!freeOfScores)
      return fail("scores not recognized: the softmax input goes through " +
                  describe(expr));
    return addTerm(expr, mult);
  }

  LogicalResult addTerm(Expr *expr, double mult) {
    if (constantValue(expr)) {
      if (isMasking(expr))
        return fail("mask not recognized: it hides every score");
      // A constant added to every score does not change the softmax.
      return success();
    }
    out.terms.push_back({expr, mult});
    return success();
  }

  static std::string describe(Expr *expr) {
    if (expr->is(Expr::Kind::Op))
      return ("'" + expr->opName() + "'").str();
    if (expr->is(Expr::Kind::Reduce))
      return "a reduction";
    if (expr->is(Expr::Kind::Softmax))
      return "a softmax";
    return "an unsupported value";
  }
};
} // namespace

FailureOr<ScoreDecomposition> mlir::kvc::decomposeScores(Expr *input,
                                                         std::string &error) {
  ScoreDecomposition result;
  ScoreCollector collector{result, error, llvm::DenseMap<Expr *, bool>()};
  if (failed(collector.collect(input, 1.0)))
    return failure();
  if (result.scoreReads.empty()) {
    // Name an op the expression stopped at: usually the reason.
    std::string stoppedAt;
    walkExpr(input, [&](Expr *e) {
      if (Operation *def = e->is(Expr::Kind::Read) ? e->tensor.getDefiningOp()
                                                   : nullptr;
          def && stoppedAt.empty())
        stoppedAt = (" (it stops at '" + def->getName().getStringRef() + "')")
                        .str();
    });
    error = "scores not recognized: the softmax input does not read QKᵀ" +
            stoppedAt;
    return failure();
  }
  return result;
}

//===----------------------------------------------------------------------===//
// Causal and sliding-window masks
//===----------------------------------------------------------------------===//

namespace {
enum class Relation { LT, LE, GT, GE, EQ, NE };

/// A kept-score condition as bounds on the query-relative distance
/// t = token - (offset + position) or the absolute u = token - offset.
struct Bounds {
  std::optional<int64_t> relativeLo, relativeHi, absoluteLo, absoluteHi;
};
} // namespace

static bool nearlyEqual(double a, double b) {
  return std::fabs(a - b) <= 1e-9 * std::max(1.0, std::fabs(a) + std::fabs(b));
}

namespace {
/// A 0-d linalg.generic computing one scalar op of its inputs (as the
/// StableHLO converter emits scalar arithmetic): the op and, per operand,
/// the 0-d tensor or constant it reads.
struct ZeroDimOp {
  Operation *op;
  SmallVector<Value, 3> operands;
};
} // namespace

static std::optional<ZeroDimOp> asZeroDimOp(Value tensor) {
  auto generic = tensor.getDefiningOp<linalg::GenericOp>();
  if (!generic || generic.getNumLoops() != 0 || generic->getNumResults() != 1)
    return std::nullopt;
  Block *body = generic.getBody();
  Operation *op = body->getTerminator()->getOperand(0).getDefiningOp();
  if (!op || &body->front() != op || op->getNextNode() != body->getTerminator())
    return std::nullopt;
  ZeroDimOp result{op, {}};
  for (Value operand : op->getOperands()) {
    auto arg = dyn_cast<BlockArgument>(operand);
    if (!arg || arg.getOwner() != body ||
        arg.getArgNumber() >= generic.getNumDpsInputs())
      return std::nullopt;
    result.operands.push_back(generic.getDpsInputs()[arg.getArgNumber()]);
  }
  return result;
}

static bool isConstantInt(Value value, int64_t expected) {
  APInt constant;
  return matchPattern(value, m_ConstantInt(&constant)) &&
         constant.getSExtValue() == expected;
}

/// `pos` when `tensor` is JAX's wrap of a negative index,
/// select(pos < 0, pos + extent, pos), null otherwise.
static Value unwrapNegativeIndex(Value tensor, int64_t extent) {
  std::optional<ZeroDimOp> select = asZeroDimOp(tensor);
  if (!select || !isa<arith::SelectOp>(select->op))
    return Value();
  Value pos = select->operands[2];
  std::optional<ZeroDimOp> isNegative = asZeroDimOp(select->operands[0]);
  std::optional<ZeroDimOp> wrapped = asZeroDimOp(select->operands[1]);
  auto cmp = isNegative ? dyn_cast<arith::CmpIOp>(isNegative->op)
                        : arith::CmpIOp();
  if (!cmp || cmp.getPredicate() != arith::CmpIPredicate::slt ||
      isNegative->operands[0] != pos ||
      !isConstantInt(isNegative->operands[1], 0))
    return Value();
  if (!wrapped || !isa<arith::AddIOp>(wrapped->op))
    return Value();
  for (unsigned side = 0; side < 2; ++side)
    if (wrapped->operands[side] == pos &&
        isConstantInt(wrapped->operands[1 - side], extent))
      return pos;
  return Value();
}

/// The position the cache is written at. A dynamic-update-slice from JAX
/// writes at clamp(select(pos < 0, pos + T, pos), 0, T - S) for a buffer of
/// T slots and S new tokens, while its mask compares with `pos` itself. The
/// two are equal when 0 <= pos <= T - S, which this assumes (a position
/// outside would overrun the buffer and is a caller error; RaiseAttention
/// says so in a remark). Other offsets are returned as they are.
static Value writePosition(const CacheExtension &keys) {
  Value offset = stripIntegerCasts(keys.dynamicOffset);
  // clamp(x, 0, T - S) as min(max(x, 0), T - S) or max(min(x, T - S), 0).
  const int64_t hi = keys.extent - keys.newCount;
  Value inner = offset;
  bool clamped = false;
  for (bool minOutside : {true, false}) {
    Operation *outer = offset.getDefiningOp();
    bool outerOk = minOutside ? isa_and_present<arith::MinSIOp>(outer)
                              : isa_and_present<arith::MaxSIOp>(outer);
    if (!outerOk || !isConstantInt(outer->getOperand(1),
                                   minOutside ? hi : 0))
      continue;
    Operation *innerOp = outer->getOperand(0).getDefiningOp();
    bool innerOk = minOutside ? isa_and_present<arith::MaxSIOp>(innerOp)
                              : isa_and_present<arith::MinSIOp>(innerOp);
    if (!innerOk || !isConstantInt(innerOp->getOperand(1),
                                   minOutside ? 0 : hi))
      continue;
    inner = innerOp->getOperand(0);
    clamped = true;
    break;
  }
  if (!clamped)
    return positionSymbol(offset);
  Value symbol = positionSymbol(inner);
  if (Value pos = unwrapNegativeIndex(symbol, keys.extent))
    return pos;
  return symbol;
}

/// The common factor k with coefficient(leaf) = k * stride(leaf) over the
/// row-major `leaves`; nullopt when the coefficients are not of that form.
static std::optional<double> groupCoefficient(const AtomTable &table,
                                              const LinearForm &form,
                                              ArrayRef<AtomId> leaves) {
  if (!table.hasStaticStrides(leaves))
    return std::nullopt;
  std::optional<double> factor;
  int64_t stride = 1;
  for (AtomId leaf : llvm::reverse(leaves)) {
    double coefficient = form.atoms.lookup(leaf) / double(stride);
    if (factor && !nearlyEqual(*factor, coefficient))
      return std::nullopt;
    factor = coefficient;
    if (!table.isDynamic(leaf))
      stride *= table.getSize(leaf);
  }
  return factor.value_or(0.0);
}

/// Whether the concat extending the cache has a dynamic past: its offset
/// is the past length, known at run time only.
static bool hasDynamicPast(const CacheExtension &keys) {
  return !keys.staticOffset && !keys.dynamicOffset;
}

/// `form` with the past length of a dynamic concat as one symbol, the past
/// keys: tensor.dim of the past keys or values along the tokens, or of the
/// extended ones minus the new tokens.
static LinearForm withPastLength(const AttentionSite &site,
                                 const LinearForm &form) {
  const CacheExtension &keys = site.keys, &values = site.values;
  LinearForm result;
  result.constant = form.constant;
  result.atoms = form.atoms;
  for (auto [symbol, coefficient] : form.symbols) {
    auto dim = symbol.getDefiningOp<tensor::DimOp>();
    std::optional<int64_t> index = dim ? dim.getConstantIndex() : std::nullopt;
    if (hasDynamicPast(keys) && index == int64_t(keys.tokenDim)) {
      Value source = dim.getSource();
      if (source == keys.past || source == values.past) {
        result.symbols[keys.past] += coefficient;
        continue;
      }
      if (source == keys.op->getResult(0) ||
          source == values.op->getResult(0)) {
        result.symbols[keys.past] += coefficient;
        result.constant += coefficient * double(keys.newCount);
        continue;
      }
    }
    result.symbols[symbol] += coefficient;
  }
  return result;
}

/// Forms equal to zero that relate other symbols to the offset: with a
/// dynamic token count, the size a tensor read along the tokens was created
/// with is offset + new tokens (e.g. an arange over past + 1 tokens whose
/// past length is read from another layer's cache).
static SmallVector<LinearForm> tokenCountIdentities(const AttentionSite &site,
                                                    const LinearForm &offset) {
  SmallVector<LinearForm> identities;
  const AtomTable &table = *site.atoms;
  if (!ShapedType::isDynamic(table.getSize(site.tokens)))
    return identities;
  for (const ExprBuilder::DynamicDim &dim : site.exprs->getDynamicDims()) {
    if (table.leaves(dim.atom) != site.tokens)
      continue;
    Value size = getSizeValue(dim.tensor, dim.dim);
    if (!size)
      continue;
    LinearForm identity = withPastLength(site, linearizeScalar(size));
    identity.add(offset, -1.0);
    identity.constant -= double(site.keys.newCount);
    identities.push_back(std::move(identity));
  }
  return identities;
}

/// Where the new tokens go when it is not a constant: the position of a
/// dynamic-update-slice, or the past length of a dynamic concat.
static std::optional<LinearForm> dynamicOffset(const AttentionSite &site) {
  if (site.keys.dynamicOffset)
    return linearizeScalar(writePosition(site.keys));
  if (!hasDynamicPast(site.keys))
    return std::nullopt;
  LinearForm form;
  form.symbols[site.keys.past] = 1.0;
  return form;
}

static std::optional<Relation> relationOf(Operation *op, bool &isUnsigned) {
  isUnsigned = false;
  if (auto cmp = dyn_cast<arith::CmpIOp>(op)) {
    using P = arith::CmpIPredicate;
    switch (cmp.getPredicate()) {
    case P::eq: return Relation::EQ;
    case P::ne: return Relation::NE;
    case P::slt: return Relation::LT;
    case P::sle: return Relation::LE;
    case P::sgt: return Relation::GT;
    case P::sge: return Relation::GE;
    case P::ult: isUnsigned = true; return Relation::LT;
    case P::ule: isUnsigned = true; return Relation::LE;
    case P::ugt: isUnsigned = true; return Relation::GT;
    case P::uge: isUnsigned = true; return Relation::GE;
    }
  }
  if (auto cmp = dyn_cast<arith::CmpFOp>(op)) {
    // Integral positions are never NaN: ordered and unordered agree.
    using P = arith::CmpFPredicate;
    switch (cmp.getPredicate()) {
    case P::OEQ: case P::UEQ: return Relation::EQ;
    case P::ONE: case P::UNE: return Relation::NE;
    case P::OLT: case P::ULT: return Relation::LT;
    case P::OLE: case P::ULE: return Relation::LE;
    case P::OGT: case P::UGT: return Relation::GT;
    case P::OGE: case P::UGE: return Relation::GE;
    default: return std::nullopt;
    }
  }
  return std::nullopt;
}

static Relation negate(Relation relation) {
  switch (relation) {
  case Relation::LT: return Relation::GE;
  case Relation::LE: return Relation::GT;
  case Relation::GT: return Relation::LE;
  case Relation::GE: return Relation::LT;
  case Relation::EQ: return Relation::NE;
  case Relation::NE: return Relation::EQ;
  }
  llvm_unreachable("unknown relation");
}

static Relation mirror(Relation relation) {
  switch (relation) {
  case Relation::LT: return Relation::GT;
  case Relation::LE: return Relation::GE;
  case Relation::GT: return Relation::LT;
  case Relation::GE: return Relation::LE;
  default: return relation;
  }
}

static void tightenLo(std::optional<int64_t> &lo, int64_t value) {
  lo = lo ? std::max(*lo, value) : value;
}
static void tightenHi(std::optional<int64_t> &hi, int64_t value) {
  hi = hi ? std::min(*hi, value) : value;
}

/// Adds the kept-score condition `predicate` to `bounds` when it is a
/// comparison of the query position, the token and the offset that kvc can
/// express; fails when it is not (the predicate then goes to the mask
/// operand). Sets `hidesAll` for a condition no score satisfies.
static LogicalResult addStructural(const AttentionSite &site,
                                   const MaskPredicate &predicate,
                                   Bounds &bounds, bool &hidesAll) {
  Expr *expr = predicate.expr;
  if (!expr->is(Expr::Kind::Op))
    return failure();
  bool isUnsigned;
  std::optional<Relation> relation = relationOf(expr->op, isUnsigned);
  if (!relation)
    return failure();
  const AtomTable &table = *site.atoms;
  FailureOr<LinearForm> lhs = linearize(table, expr->operands[0]);
  FailureOr<LinearForm> rhs = linearize(table, expr->operands[1]);
  if (failed(lhs) || failed(rhs))
    return failure();
  // Unsigned comparisons are signed ones when both sides are positions.
  if (isUnsigned && !(lhs->isNonNegative() && rhs->isNonNegative()))
    return failure();
  LinearForm form = *lhs;
  form.add(*rhs, -1.0);
  form = withPastLength(site, form);
  Relation rel = predicate.keepWhen ? *relation : negate(*relation);

  std::optional<double> alpha = groupCoefficient(table, form, site.positions);
  std::optional<double> beta = groupCoefficient(table, form, site.tokens);
  if (!alpha || !beta)
    return failure();
  for (auto [atom, coefficient] : form.atoms)
    if (coefficient != 0.0 && !llvm::is_contained(site.positions, atom) &&
        !llvm::is_contained(site.tokens, atom))
      return failure();
  // The symbols must add up to gamma times the offset.
  double gamma = 0.0;
  std::optional<LinearForm> offset = dynamicOffset(site);
  if (offset) {
    // Other symbols may be the offset under another name.
    for (const LinearForm &identity : tokenCountIdentities(site, *offset)) {
      for (auto [symbol, coefficient] : identity.symbols) {
        double inForm = form.symbols.lookup(symbol);
        if (coefficient == 0.0 || inForm == 0.0 ||
            offset->symbols.lookup(symbol) != 0.0)
          continue;
        form.add(identity, -inForm / coefficient);
        break;
      }
    }
    for (auto [symbol, coefficient] : offset->symbols) {
      if (coefficient == 0.0)
        continue;
      gamma = form.symbols.lookup(symbol) / coefficient;
      break;
    }
    form.add(*offset, -gamma);
  }
  if (llvm::any_of(form.symbols, [](auto &p) { return p.second != 0.0; }))
    return failure();

  if (*beta == 0.0) {
    if (*alpha != 0.0 || gamma != 0.0)
      return failure();
    double c = form.constant;
    bool holds = false;
    switch (rel) {
    case Relation::LT: holds = c < 0; break;
    case Relation::LE: holds = c <= 0; break;
    case Relation::GT: holds = c > 0; break;
    case Relation::GE: holds = c >= 0; break;
    case Relation::EQ: holds = c == 0; break;
    case Relation::NE: holds = c != 0; break;
    }
    hidesAll |= !holds;
    return success();
  }
  bool relative = site.positions.empty() || nearlyEqual(*alpha, -*beta);
  if (!relative && *alpha != 0.0)
    return failure();
  // form = beta * x + c, with x = t (relative) or u (absolute).
  double c;
  if (offset) {
    if (!nearlyEqual(gamma, -*beta))
      return failure();
    c = form.constant;
  } else {
    if (gamma != 0.0 || !site.keys.staticOffset)
      return failure();
    c = form.constant + *beta * double(*site.keys.staticOffset);
  }
  if (*beta < 0.0)
    rel = mirror(rel);
  double bound = -c / *beta;
  constexpr double eps = 1e-9;
  std::optional<int64_t> &lo =
      relative ? bounds.relativeLo : bounds.absoluteLo;
  std::optional<int64_t> &hi =
      relative ? bounds.relativeHi : bounds.absoluteHi;
  switch (rel) {
  case Relation::LT: tightenHi(hi, int64_t(std::ceil(bound - eps)) - 1); break;
  case Relation::LE: tightenHi(hi, int64_t(std::floor(bound + eps))); break;
  case Relation::GT: tightenLo(lo, int64_t(std::floor(bound + eps)) + 1); break;
  case Relation::GE: tightenLo(lo, int64_t(std::ceil(bound - eps))); break;
  case Relation::EQ:
    if (!nearlyEqual(bound, std::round(bound))) {
      hidesAll = true;
      return success();
    }
    tightenLo(lo, int64_t(std::round(bound)));
    tightenHi(hi, int64_t(std::round(bound)));
    break;
  case Relation::NE:
    return failure();
  }
  return success();
}

/// Whether the mask operand can compute `expr` from the site's indices.
static bool isMaterializable(const AttentionSite &site, Expr *expr,
                             bool &dependsOnHeads) {
  llvm::SmallDenseSet<AtomId> allowed, heads;
  for (const AtomList *group : {&site.batch, &site.kvHeads, &site.groups,
                                &site.positions, &site.tokens})
    allowed.insert(group->begin(), group->end());
  heads.insert(site.kvHeads.begin(), site.kvHeads.end());
  heads.insert(site.groups.begin(), site.groups.end());
  bool ok = true;
  auto checkAtoms = [&](ArrayRef<AtomId> atoms) {
    // The mask generic indexes with constant strides.
    ok &= site.atoms->hasStaticStrides(atoms);
    for (AtomId leaf : site.atoms->leaves(atoms)) {
      ok &= allowed.contains(leaf);
      dependsOnHeads |= heads.contains(leaf);
    }
  };
  walkExpr(expr, [&](Expr *node) {
    switch (node->kind) {
    case Expr::Kind::Constant:
    case Expr::Kind::Scalar:
    case Expr::Kind::Op:
      break;
    case Expr::Kind::Index:
      checkAtoms(node->atoms);
      break;
    case Expr::Kind::Read:
      for (const AtomList &dim : node->layout)
        checkAtoms(dim);
      break;
    default:
      ok = false;
    }
  });
  return ok;
}

/// With a dynamic token count, the mask operand takes its size from a
/// tensor it reads along the tokens: one whose size there is the token
/// count by the IR's semantics if there is one, else one a gather took to
/// have it.
static LogicalResult findMaskTokenCount(AttentionSite &site) {
  const AtomTable &table = *site.atoms;
  if (!ShapedType::isDynamic(table.getSize(site.tokens)))
    return success();
  SmallVector<Expr *> roots;
  for (const MaskTerm &term : site.maskTerms)
    roots.push_back(term.expr);
  for (const MaskPredicate &predicate : site.maskPredicates)
    roots.push_back(predicate.expr);
  bool found = false;
  for (Expr *root : roots) {
    walkExpr(root, [&](Expr *node) {
      if (!node->is(Expr::Kind::Read) || (found && !site.maskTokenAssumption))
        return;
      for (auto [dim, atoms] : llvm::enumerate(node->layout)) {
        if (table.leaves(atoms) != site.tokens)
          continue;
        Operation *assumption = site.exprs->getAssumedExtent(node);
        if (found && assumption)
          continue;
        site.maskTokenSource = node->tensor;
        site.maskTokenDim = dim;
        site.maskTokenAssumption = assumption;
        found = true;
      }
    });
  }
  return success(found);
}

LogicalResult mlir::kvc::classifyMask(AttentionSite &site,
                                      ScoreDecomposition &scores,
                                      std::string &error) {
  auto fail = [&](const Twine &message) {
    error = ("mask not recognized: " + message).str();
    return failure();
  };
  Bounds bounds;
  bool hidesAll = false;
  site.assumesPositionInBuffer =
      site.keys.dynamicOffset &&
      writePosition(site.keys) != positionSymbol(site.keys.dynamicOffset);
  for (const MaskPredicate &predicate : scores.predicates)
    if (failed(addStructural(site, predicate, bounds, hidesAll)))
      site.maskPredicates.push_back(predicate);
  if (hidesAll)
    return fail("it hides every score");
  site.maskTerms = scores.terms;

  const int64_t newCount = site.keys.newCount;
  const CacheExtension &keys = site.keys;
  // Keys visible to query i: token <= offset + i + relativeHi and
  // token <= offset + absoluteHi. kvc.attend shows every cached token
  // (up to offset + newCount - 1) or, with `causal`, those up to the query.
  if (bounds.relativeHi) {
    int64_t hi = *bounds.relativeHi;
    if (hi == 0)
      site.causal = true;
    else if (hi < newCount - 1)
      return fail(llvm::formatv("each query sees the keys up to {0} "
                                "position(s) after its own, which is "
                                "neither causal nor full attention",
                                hi)
                      .str());
  }
  if (bounds.absoluteHi && *bounds.absoluteHi < newCount - 1)
    return fail("it hides some of the new tokens from every query");
  if (bounds.absoluteLo &&
      !(keys.staticOffset && *bounds.absoluteLo <= -*keys.staticOffset))
    return fail("it hides the oldest tokens whatever the query position");
  if (!keys.fillsExtent()) {
    bool unwrittenHidden =
        site.causal || (bounds.absoluteHi && *bounds.absoluteHi == newCount - 1);
    if (!unwrittenHidden)
      return fail("the cache buffer has slots after the new tokens that it "
                  "does not hide");
  }
  if (bounds.relativeLo) {
    int64_t window = 1 - *bounds.relativeLo;
    if (window < 1)
      return fail("it hides every score");
    if (!site.causal) {
      // A single query is the newest token: a window is causal anyway.
      if (newCount != 1)
        return fail("a sliding window without a causal mask");
      site.causal = true;
    }
    site.window = window;
  }

  for (const MaskTerm &term : site.maskTerms)
    if (!isMaterializable(site, term.expr, site.maskDependsOnHeads))
      return fail("an additive mask depends on values other than the batch, "
                  "head, query position and token");
  for (const MaskPredicate &predicate : site.maskPredicates)
    if (!isMaterializable(site, predicate.expr, site.maskDependsOnHeads))
      return fail("a mask condition depends on values other than the batch, "
                  "head, query position and token");
  site.maskFill = scores.fill;
  if (site.hasMaskOperand() && failed(findMaskTokenCount(site)))
    return fail("the cache token count is dynamic and the mask reads no "
                "tensor that has it as a dimension");
  return success();
}
