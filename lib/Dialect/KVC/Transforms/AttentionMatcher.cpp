//===- AttentionMatcher.cpp - find attention over an extended cache -------===//
//
// The match goes QKᵀ -> keys -> queries -> P·V -> values -> softmax ->
// scale and mask, then names the index roles: batch, KV heads, query groups
// (GQA), query positions, tokens and head channels. Any step that fails
// leaves the IR untouched and says which part of the attention it could
// not recognize.
//
//===----------------------------------------------------------------------===//

#include "AttentionMatcher.h"
#include "AttentionMask.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetOperations.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::kvc;

//===----------------------------------------------------------------------===//
// The site matcher
//===----------------------------------------------------------------------===//

namespace {

/// The atoms of one side of the cache: the extended tensor's dimensions.
struct CacheSide {
  AtomList batch, heads, tokens, channels;
  AtomList broadcast;
};

class SiteMatcher {
public:
  explicit SiteMatcher(linalg::LinalgOp qk) : qk(qk) {}

  AttentionMatch run();

private:
  LogicalResult fail(Operation *op, const Twine &message) {
    if (failureMessage.empty()) {
      failureMessage = ("kvc-raise-attention: " + message).str();
      failedOp = op;
    }
    return mlir::failure();
  }

  /// Whether the contraction reads a cache extension through views; sets
  /// `operand` to that input.
  static std::optional<CacheExtension> findExtension(linalg::LinalgOp op,
                                                     unsigned &operand);
  /// Checks `op` is a float contraction on tensors from zeros whose only
  /// dynamic loops are over the cache tokens: reduction loops of P·V
  /// (`tokensReduced`), or loops of QKᵀ that index the keys
  /// (`cacheOperand`) but not the queries.
  LogicalResult checkContraction(linalg::LinalgOp op, StringRef part,
                                 unsigned cacheOperand, bool tokensReduced);
  LogicalResult traceCacheSide(linalg::LinalgOp op, unsigned operand,
                               const Layout &loops,
                               const CacheExtension &ext, StringRef part,
                               CacheSide &side);
  LogicalResult matchKeys();
  LogicalResult matchQueries();
  LogicalResult findValues();
  LogicalResult matchValues();
  LogicalResult matchSoftmax();
  LogicalResult matchScores();
  LogicalResult assignRoles();
  LogicalResult checkExtensions();

  AtomList leavesOfLoops(linalg::LinalgOp op, const Layout &loops,
                         utils::IteratorType kind);

  linalg::LinalgOp qk;
  std::unique_ptr<AttentionSite> site = std::make_unique<AttentionSite>();
  AtomTable *table = nullptr;
  std::string failureMessage;
  Operation *failedOp = nullptr;

  /// Which input of QKᵀ (P·V) is the key (value) cache.
  unsigned keyOperand = 1, valueOperand = 1;
  /// The atoms of the QKᵀ and P·V loops, and of the QKᵀ result.
  Layout qkLoops, pvLoops, scoresLayout;
  CacheSide keySide, valueSide;
  /// A constant the queries were multiplied by before QKᵀ.
  double queryScale = 1.0;
  /// The softmax input and the atoms it normalizes over.
  Expr *softmaxInput = nullptr;
  AtomList softmaxAtoms;
  std::optional<ScoreDecomposition> scores;
};

} // namespace

std::optional<CacheExtension>
SiteMatcher::findExtension(linalg::LinalgOp op, unsigned &operand) {
  for (unsigned index : {1u, 0u}) {
    if (index >= op.getNumDpsInputs())
      continue;
    Value source = skipViewsBackward(op.getDpsInputOperand(index)->get(),
                                     /*allowCasts=*/true);
    if (std::optional<CacheExtension> ext = matchCacheExtension(source)) {
      operand = index;
      return ext;
    }
  }
  return std::nullopt;
}

LogicalResult SiteMatcher::checkContraction(linalg::LinalgOp op, StringRef part,
                                            unsigned cacheOperand,
                                            bool tokensReduced) {
  if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1 || !linalg::isaContractionOpInterface(op))
    return fail(op, part + " not recognized: not a contraction on tensors");
  SmallVector<int64_t> loopSizes = op.getStaticLoopRanges();
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  AffineMap cacheMap =
      op.getMatchingIndexingMap(op.getDpsInputOperand(cacheOperand));
  AffineMap otherMap =
      op.getMatchingIndexingMap(op.getDpsInputOperand(1 - cacheOperand));
  for (auto [loop, size] : llvm::enumerate(loopSizes)) {
    if (!ShapedType::isDynamic(size))
      continue;
    bool overTokens = tokensReduced
                          ? iterators[loop] == utils::IteratorType::reduction
                          : iterators[loop] == utils::IteratorType::parallel &&
                                cacheMap.isFunctionOfDim(loop) &&
                                !otherMap.isFunctionOfDim(loop);
    if (!overTokens)
      return fail(op, part + " not recognized: dynamic shapes are not "
                             "supported except for the cache token count: "
                             "a batch, head, query or channel dimension is "
                             "dynamic");
  }
  if (llvm::any_of(loopSizes, [](int64_t size) {
        return !ShapedType::isDynamic(size) && size < 1;
      }))
    return fail(op, part + " not recognized: empty shapes");
  // The rewrite changes the function signature: the attention must be at
  // its top level, not inside a loop or a branch.
  if (!isa<FunctionOpInterface>(op->getParentOp()))
    return fail(op, part + " not recognized: it is nested in a region");
  if (!isa<FloatType>(getElementTypeOrSelf(op->getResult(0).getType())))
    return fail(op, part + " not recognized: not a float contraction");
  // The contraction accumulates into its init: it must be zeros.
  Value init = op.getDpsInitOperand(0)->get();
  Value zero;
  if (auto fill = init.getDefiningOp<linalg::FillOp>())
    zero = fill.getInputs()[0];
  if (!(zero && matchPattern(zero, m_AnyZeroFloat())) &&
      !matchPattern(init, m_AnyZeroFloat()))
    return fail(op, part + " not recognized: the contraction does not "
                           "start from zeros");
  return success();
}

AtomList SiteMatcher::leavesOfLoops(linalg::LinalgOp op, const Layout &loops,
                                    utils::IteratorType kind) {
  AtomList atoms;
  for (auto [iterator, loop] :
       llvm::zip(op.getIteratorTypesArray(), loops))
    if (iterator == kind)
      llvm::append_range(atoms, table->leaves(loop));
  return atoms;
}

LogicalResult SiteMatcher::traceCacheSide(linalg::LinalgOp op,
                                          unsigned operand,
                                          const Layout &loops,
                                          const CacheExtension &ext,
                                          StringRef part, CacheSide &side) {
  OpOperand *input = op.getDpsInputOperand(operand);
  auto type = cast<RankedTensorType>(input->get().getType());
  FailureOr<Layout> layout = layoutFromMap(
      *table, op.getMatchingIndexingMap(input), loops, type.getShape());
  if (failed(layout))
    return fail(op, part + " not recognized: unsupported indexing map");
  std::string error;
  FailureOr<ViewSource> source = traceViewsBackward(
      *table, input->get(), *layout, /*allowCasts=*/true, error);
  if (failed(source))
    return fail(op, part + " not recognized: " + error);
  if (source->value.getDefiningOp() != ext.op)
    return fail(op, part + " not recognized: the cache is reached through "
                           "unsupported ops");
  side.batch = source->layout[0];
  side.heads = source->layout[ext.headsDim()];
  side.tokens = source->layout[ext.tokenDim];
  side.channels = source->layout[3];
  side.broadcast = source->broadcastAtoms;
  return success();
}

LogicalResult SiteMatcher::matchKeys() {
  if (failed(checkContraction(qk, "QKᵀ", keyOperand,
                              /*tokensReduced=*/false)))
    return failure();
  qkLoops.clear();
  for (int64_t size : qk.getStaticLoopRanges())
    qkLoops.push_back(table->createDim(size));
  if (failed(traceCacheSide(qk, keyOperand, qkLoops, site->keys, "keys",
                            keySide)))
    return failure();
  auto type = cast<RankedTensorType>(qk->getResult(0).getType());
  FailureOr<Layout> layout =
      layoutFromMap(*table, qk.getIndexingMapMatchingResult(qk->getResult(0)),
                    qkLoops, type.getShape());
  if (failed(layout))
    return fail(qk, "scores not recognized: unsupported indexing map");
  scoresLayout = *layout;
  return success();
}

LogicalResult SiteMatcher::matchQueries() {
  OpOperand *input = qk.getDpsInputOperand(1 - keyOperand);
  auto type = cast<RankedTensorType>(input->get().getType());
  FailureOr<Layout> layout = layoutFromMap(
      *table, qk.getMatchingIndexingMap(input), qkLoops, type.getShape());
  if (failed(layout))
    return fail(qk, "queries not recognized: unsupported indexing map");
  Value value = input->get();
  Layout current = *layout;
  // Follow views, and fold a constant pre-scale into the score scale.
  for (unsigned step = 0; step < 4; ++step) {
    std::string error;
    FailureOr<ViewSource> source = traceViewsBackward(
        *table, value, current, /*allowCasts=*/true, error);
    if (failed(source))
      return fail(qk, "queries not recognized: " + error);
    value = source->value;
    current = source->layout;
    ExprBuilder shallow(*table, Value(), /*maxDepth=*/1);
    FailureOr<Expr *> expr = shallow.read(value, current);
    if (failed(expr) || !(*expr)->is(Expr::Kind::Op) ||
        !isa<arith::MulFOp, arith::DivFOp>((*expr)->op))
      break;
    Expr *lhs = (*expr)->operands[0], *rhs = (*expr)->operands[1];
    bool isDiv = isa<arith::DivFOp>((*expr)->op);
    if (!isDiv && lhs->is(Expr::Kind::Constant))
      std::swap(lhs, rhs);
    auto factor = rhs->is(Expr::Kind::Constant)
                      ? dyn_cast<FloatAttr>(rhs->constant)
                      : FloatAttr();
    if (!factor || !lhs->is(Expr::Kind::Read) ||
        factor.getValueAsDouble() == 0.0)
      break;
    double f = factor.getValueAsDouble();
    queryScale *= isDiv ? 1.0 / f : f;
    value = lhs->tensor;
    current = lhs->layout;
  }
  site->query = value;
  site->queryLayout = current;
  return success();
}

LogicalResult SiteMatcher::findValues() {
  // P·V is the first other contraction downstream of the scores that reads
  // a cache extension.
  SmallVector<Operation *> worklist(qk->getUsers());
  llvm::DenseSet<Operation *> visited;
  while (!worklist.empty() && visited.size() < 512) {
    Operation *op = worklist.pop_back_val();
    if (!visited.insert(op).second)
      continue;
    if (auto linalgOp = dyn_cast<linalg::LinalgOp>(op);
        linalgOp && linalgOp != qk && linalg::isaContractionOpInterface(linalgOp)) {
      unsigned operand;
      std::optional<CacheExtension> ext = findExtension(linalgOp, operand);
      if (ext && ext->op != site->keys.op) {
        site->pv = linalgOp;
        site->values = *ext;
        valueOperand = operand;
        return success();
      }
    }
    for (Operation *user : op->getUsers())
      worklist.push_back(user);
  }
  return fail(qk, "values not recognized: no P·V contraction with a value "
                  "cache reads these scores");
}

LogicalResult SiteMatcher::matchValues() {
  linalg::LinalgOp pv = site->pv;
  if (failed(checkContraction(pv, "P·V", valueOperand,
                              /*tokensReduced=*/true)))
    return failure();
  for (int64_t size : pv.getStaticLoopRanges())
    pvLoops.push_back(table->createDim(size));
  if (failed(traceCacheSide(pv, valueOperand, pvLoops, site->values,
                            "values", valueSide)))
    return failure();
  auto type = cast<RankedTensorType>(pv->getResult(0).getType());
  FailureOr<Layout> layout =
      layoutFromMap(*table, pv.getIndexingMapMatchingResult(pv->getResult(0)),
                    pvLoops, type.getShape());
  if (failed(layout))
    return fail(pv, "output not recognized: unsupported indexing map");
  site->outputLayout = *layout;
  return success();
}

LogicalResult SiteMatcher::matchSoftmax() {
  linalg::LinalgOp pv = site->pv;
  OpOperand *input = pv.getDpsInputOperand(1 - valueOperand);
  auto type = cast<RankedTensorType>(input->get().getType());
  FailureOr<Layout> layout = layoutFromMap(
      *table, pv.getMatchingIndexingMap(input), pvLoops, type.getShape());
  if (failed(layout))
    return fail(pv, "softmax not recognized: unsupported indexing map");
  site->exprs = std::make_unique<ExprBuilder>(*table, qk->getResult(0));
  FailureOr<Expr *> probabilities = site->exprs->read(input->get(), *layout);
  if (failed(probabilities)) {
    Operation *at = site->exprs->getErrorOp();
    return fail(at ? at : pv.getOperation(),
                "softmax not recognized: " + site->exprs->getError());
  }
  Operation *at = input->get().getDefiningOp();
  if (!at)
    at = pv;
  Expr *p = stripCasts(*probabilities);
  if (p->is(Expr::Kind::Softmax)) {
    softmaxInput = p->operands[0];
    softmaxAtoms = table->leaves(p->atoms);
    return success();
  }

  // exp(x - max(x)) / sum(exp(x - max(x))), with the max optional and the
  // division possibly a multiplication by the reciprocal.
  Expr *numerator = nullptr, *denominator = nullptr;
  if (p->is(Expr::Kind::Op) && isa<arith::DivFOp>(p->op)) {
    numerator = p->operands[0];
    denominator = p->operands[1];
  } else if (p->is(Expr::Kind::Op) && isa<arith::MulFOp>(p->op)) {
    for (unsigned side = 0; side < 2; ++side) {
      Expr *r = stripCasts(p->operands[side]);
      if (r->is(Expr::Kind::Op) && isa<arith::DivFOp>(r->op) &&
          r->operands[0]->is(Expr::Kind::Constant) &&
          cast<FloatAttr>(r->operands[0]->constant).getValueAsDouble() ==
              1.0) {
        numerator = p->operands[1 - side];
        denominator = r->operands[1];
      }
    }
  }
  if (!numerator)
    return fail(at, "softmax not recognized: the probabilities are not a "
                    "quotient of exponentials and their sum");
  numerator = stripCasts(numerator);
  denominator = stripCasts(denominator);
  if (!numerator->is(Expr::Kind::Op) || !isa<math::ExpOp>(numerator->op))
    return fail(at, "softmax not recognized: the numerator is not an "
                    "exponential");
  auto isZeroConstant = [](Expr *e) {
    e = stripCasts(e);
    auto attr = e->is(Expr::Kind::Constant) ? dyn_cast<FloatAttr>(e->constant)
                                            : FloatAttr();
    return attr && attr.getValueAsDouble() == 0.0;
  };
  if (!denominator->is(Expr::Kind::Reduce) ||
      !isa<arith::AddFOp>(denominator->op) ||
      !isZeroConstant(denominator->operands[1]))
    return fail(at, "softmax not recognized: the denominator is not a sum "
                    "starting from zero");
  llvm::DenseMap<AtomId, AtomList> sumBinding;
  if (!matchModulo(*table, stripCasts(denominator->operands[0]), numerator,
                   denominator->atoms, sumBinding))
    return fail(at, "softmax not recognized: the sum does not add up the "
                    "exponentials of the numerator");
  for (AtomId leaf : table->leaves(denominator->atoms)) {
    auto it = sumBinding.find(leaf);
    if (it == sumBinding.end())
      return fail(at, "softmax not recognized: the sum runs over an index "
                      "the exponentials do not use");
    llvm::append_range(softmaxAtoms, table->leaves(it->second));
  }

  Expr *exponent = numerator->operands[0];
  softmaxInput = exponent;
  Expr *shifted = stripCasts(exponent);
  if (shifted->is(Expr::Kind::Op) && isa<arith::SubFOp>(shifted->op)) {
    Expr *max = stripCasts(shifted->operands[1]);
    if (max->is(Expr::Kind::Reduce) &&
        isa<arith::MaximumFOp, arith::MaxNumFOp>(max->op)) {
      // Subtracting the row max leaves the softmax unchanged: skip it, but
      // only when it is the max over the same row.
      llvm::DenseMap<AtomId, AtomList> maxBinding;
      AtomList maxAtoms;
      if (!matchModulo(*table, stripCasts(max->operands[0]),
                       stripCasts(shifted->operands[0]), max->atoms,
                       maxBinding))
        return fail(at, "softmax not recognized: the subtracted max is not "
                        "the max of the softmax input");
      for (AtomId leaf : table->leaves(max->atoms))
        if (auto it = maxBinding.find(leaf); it != maxBinding.end())
          llvm::append_range(maxAtoms, table->leaves(it->second));
      if (llvm::SmallDenseSet<AtomId>(maxAtoms.begin(), maxAtoms.end()) !=
          llvm::SmallDenseSet<AtomId>(softmaxAtoms.begin(),
                                      softmaxAtoms.end()))
        return fail(at, "softmax not recognized: the max and the sum run "
                        "over different indices");
      softmaxInput = shifted->operands[0];
    }
  }
  return success();
}

LogicalResult SiteMatcher::matchScores() {
  std::string error;
  FailureOr<ScoreDecomposition> decomposition =
      decomposeScores(softmaxInput, error);
  if (failed(decomposition))
    return fail(site->pv, error);
  for (Expr *read : decomposition->scoreReads)
    if (failed(table->unify(read->layout, scoresLayout)))
      return fail(site->pv, "scores not recognized: the softmax reads QKᵀ "
                            "with an index layout that does not factor");
  double scale = decomposition->coefficient * queryScale;
  if (!(scale > 0.0) || !std::isfinite(scale))
    return fail(site->pv, llvm::formatv("scale not recognized: the effective "
                                        "score scale {0} is not positive",
                                        scale)
                              .str());
  site->scale = scale;
  site->scoreType = dyn_cast<FloatType>(softmaxInput->type);
  if (!site->scoreType)
    return fail(site->pv, "scores not recognized: not floats");
  scores = std::move(*decomposition);
  return success();
}

/// Whether `a` holds exactly the leaves of `b`, in any order.
static bool sameLeaves(ArrayRef<AtomId> a, ArrayRef<AtomId> b) {
  if (a.size() != b.size())
    return false;
  llvm::SmallDenseSet<AtomId> set(b.begin(), b.end());
  return set.size() == b.size() &&
         llvm::all_of(a, [&](AtomId atom) { return set.contains(atom); });
}

static AtomList concat(std::initializer_list<ArrayRef<AtomId>> lists) {
  AtomList result;
  for (ArrayRef<AtomId> list : lists)
    llvm::append_range(result, list);
  return result;
}

LogicalResult SiteMatcher::assignRoles() {
  AttentionSite &s = *site;
  const AtomTable &t = *table;
  s.batch = t.leaves(keySide.batch);
  s.kvHeads = t.leaves(keySide.heads);
  s.tokens = t.leaves(keySide.tokens);
  s.headDim = t.leaves(keySide.channels);
  s.valueDim = t.leaves(valueSide.channels);
  if (t.leaves(valueSide.batch) != s.batch ||
      t.leaves(valueSide.heads) != s.kvHeads ||
      t.leaves(valueSide.tokens) != s.tokens)
    return fail(s.pv, "values not recognized: P·V does not read the value "
                      "cache with the batch, heads and tokens of the keys");
  if (!sameLeaves(leavesOfLoops(qk, qkLoops, utils::IteratorType::reduction),
                  s.headDim))
    return fail(qk, "keys not recognized: QKᵀ does not sum over the head "
                    "dimension of the key cache");
  if (!sameLeaves(leavesOfLoops(s.pv, pvLoops, utils::IteratorType::reduction),
                  s.tokens))
    return fail(s.pv, "values not recognized: P·V does not sum over the "
                      "cache tokens");
  if (!sameLeaves(t.leaves(softmaxAtoms), s.tokens))
    return fail(s.pv, "softmax not recognized: it does not normalize over "
                      "the cache tokens");
  if (t.getSize(s.headDim) != t.getSize(s.valueDim))
    return fail(s.pv, "values not recognized: keys and values have "
                      "different head dimensions");

  // Query indices beyond batch, KV heads and channels are query groups
  // (GQA) or query positions.
  AtomList query = t.flatLeaves(s.queryLayout);
  AtomList known = concat({s.batch, s.kvHeads, s.headDim});
  llvm::SmallDenseSet<AtomId> knownSet(known.begin(), known.end());
  AtomList rest;
  for (AtomId leaf : query)
    if (!knownSet.contains(leaf))
      rest.push_back(leaf);
  if (query.size() != known.size() + rest.size() ||
      llvm::SmallDenseSet<AtomId>(query.begin(), query.end()).size() !=
          query.size())
    return fail(qk, "queries not recognized: the queries do not carry the "
                    "batch, KV heads and channels of the keys once each");
  llvm::SmallDenseSet<AtomId> groupSet;
  for (AtomId leaf : t.leaves(keySide.broadcast))
    groupSet.insert(leaf);
  for (AtomId leaf : t.leaves(valueSide.broadcast))
    groupSet.insert(leaf);
  // A query dimension that holds KV heads (or groups) holds query heads:
  // what else it holds is groups.
  bool grew = true;
  while (grew) {
    grew = false;
    for (const AtomList &dim : s.queryLayout) {
      AtomList leaves = t.leaves(dim);
      bool isHeadDim = llvm::any_of(leaves, [&](AtomId leaf) {
        return llvm::is_contained(s.kvHeads, leaf) || groupSet.contains(leaf);
      });
      if (!isHeadDim)
        continue;
      for (AtomId leaf : leaves)
        if (llvm::is_contained(rest, leaf) && groupSet.insert(leaf).second)
          grew = true;
    }
  }
  int64_t newCount = s.keys.newCount;
  AtomList undecided;
  for (AtomId leaf : rest)
    (groupSet.contains(leaf) ? s.groups : undecided).push_back(leaf);
  auto split = [&](function_ref<bool(AtomId)> isGroup) {
    for (AtomId leaf : undecided)
      (isGroup(leaf) ? s.groups : s.positions).push_back(leaf);
  };
  auto sizeIsNewCount = [&](AtomId leaf) {
    return t.getSize(leaf) == newCount;
  };
  if (newCount == 1 || t.getSize(undecided) == newCount) {
    // All undecided indices are groups (decode) or all are positions.
    split([&](AtomId) { return newCount == 1; });
  } else if (llvm::count_if(undecided, sizeIsNewCount) == 1) {
    // Groups and positions in separate dimensions: the one of q_len is the
    // query position.
    split([&](AtomId leaf) { return !sizeIsNewCount(leaf); });
  } else if (s.queryLayout.size() == 4 && s.kvHeads.empty()) {
    // MQA with fused groups and positions: the queries have their heads
    // where the cache has them.
    AtomList heads = t.leaves(s.queryLayout[s.keys.headsDim()]);
    split([&](AtomId leaf) { return llvm::is_contained(heads, leaf); });
  } else {
    s.positions = undecided;
  }
  if (t.getSize(s.positions) != newCount)
    return fail(qk, llvm::formatv("queries not recognized: {0} query "
                                  "positions per head, but the cache gets "
                                  "{1} new tokens",
                                  t.getSize(s.positions), newCount)
                        .str());
  for (AtomId leaf : concat({t.leaves(keySide.broadcast),
                             t.leaves(valueSide.broadcast)}))
    if (!llvm::is_contained(s.groups, leaf))
      return fail(qk, "keys not recognized: the cache is broadcast along an "
                      "index that is not a query head");

  // Views may have carried a dynamic size elsewhere (a reshape of the
  // tokens into the heads, say): only the tokens may be dynamic, as one
  // index.
  if ((ShapedType::isDynamic(t.getSize(s.tokens)) && s.tokens.size() != 1) ||
      llvm::any_of(concat({s.batch, s.kvHeads, s.groups, s.positions, s.headDim,
                           s.valueDim}),
                   [&](AtomId leaf) { return t.isDynamic(leaf); }))
    return fail(qk, "scores not recognized: only the cache token count may "
                    "be dynamic");
  AtomList scoresExpected =
      concat({s.batch, s.kvHeads, s.groups, s.positions, s.tokens});
  if (!sameLeaves(t.flatLeaves(scoresLayout), scoresExpected))
    return fail(qk, "scores not recognized: QKᵀ does not produce one score "
                    "per batch, query head, query and token");
  OpOperand *probabilities = s.pv.getDpsInputOperand(1 - valueOperand);
  auto pType = cast<RankedTensorType>(probabilities->get().getType());
  FailureOr<Layout> pLayout =
      layoutFromMap(t, s.pv.getMatchingIndexingMap(probabilities), pvLoops,
                    pType.getShape());
  if (failed(pLayout) || !sameLeaves(t.flatLeaves(*pLayout), scoresExpected))
    return fail(s.pv, "values not recognized: P·V does not read one "
                      "probability per batch, query head, query and token");
  if (!sameLeaves(
          t.flatLeaves(s.outputLayout),
          concat({s.batch, s.kvHeads, s.groups, s.positions, s.valueDim})))
    return fail(s.pv, "output not recognized: P·V does not produce one "
                      "vector per batch, query head and query");
  // Every index has one role (two views of one index that unified two
  // roles would make the rewrite wrong).
  AtomList all = concat({s.batch, s.kvHeads, s.groups, s.positions,
                         s.tokens, s.headDim, s.valueDim});
  if (llvm::SmallDenseSet<AtomId>(all.begin(), all.end()).size() !=
      all.size())
    return fail(qk, "scores not recognized: one index plays two roles");
  // Keep the groups and positions in the order the queries have them.
  auto inQueryOrder = [&](AtomList &group) {
    AtomList ordered;
    for (AtomId leaf : query)
      if (llvm::is_contained(group, leaf))
        ordered.push_back(leaf);
    group = ordered;
  };
  inQueryOrder(s.groups);
  inQueryOrder(s.positions);
  return success();
}

LogicalResult SiteMatcher::checkExtensions() {
  const CacheExtension &k = site->keys, &v = site->values;
  auto pastType = [](const CacheExtension &e) {
    return cast<RankedTensorType>(e.past.getType());
  };
  if (k.tokenDim != v.tokenDim || k.newCount != v.newCount ||
      k.extent != v.extent || k.staticOffset != v.staticOffset ||
      k.dynamicOffset != v.dynamicOffset)
    return fail(qk, "cache not recognized: keys and values are extended "
                    "differently");
  if (pastType(k) != pastType(v))
    return fail(qk, "cache not recognized: past keys and values have "
                    "different types");
  if (k.past == v.past)
    return fail(qk, "cache not recognized: keys and values share one past "
                    "tensor");
  return success();
}

/// Whether the operand of `op` other than `cacheOperand` is computed, with
/// no contraction in between, from a contraction that reads a cache: then
/// `op` is a P·V, reported by its QKᵀ.
static bool readsCacheScores(linalg::LinalgOp op, unsigned cacheOperand) {
  SmallVector<Value> worklist{op.getDpsInputOperand(1 - cacheOperand)->get()};
  llvm::DenseSet<Operation *> visited;
  while (!worklist.empty() && visited.size() < 256) {
    Operation *def = worklist.pop_back_val().getDefiningOp();
    if (!def || !visited.insert(def).second)
      continue;
    auto linalgOp = dyn_cast<linalg::LinalgOp>(def);
    if (linalgOp && linalg::isaContractionOpInterface(linalgOp)) {
      for (unsigned index : {0u, 1u})
        if (index < linalgOp.getNumDpsInputs() &&
            matchCacheExtension(skipViewsBackward(
                linalgOp.getDpsInputOperand(index)->get(), true)))
          return true;
      continue;
    }
    llvm::append_range(worklist, def->getOperands());
  }
  return false;
}

AttentionMatch SiteMatcher::run() {
  AttentionMatch result;
  if (!linalg::isaContractionOpInterface(qk))
    return result;
  std::optional<CacheExtension> keys = findExtension(qk, keyOperand);
  if (!keys)
    return result;
  site->atoms = std::make_unique<AtomTable>();
  table = site->atoms.get();
  site->qk = qk;
  site->keys = *keys;
  bool matched = succeeded(matchKeys());
  // A contraction over the cache tokens is a P·V: its QKᵀ reports. When the
  // layouts are unknown, a contraction fed by another one over a cache is
  // taken for a P·V.
  if (matched
          ? sameLeaves(
                leavesOfLoops(qk, qkLoops, utils::IteratorType::reduction),
                table->leaves(keySide.tokens))
          : readsCacheScores(qk, keyOperand))
    return result;
  result.isCandidate = true;
  matched = matched && succeeded(matchQueries()) && succeeded(findValues()) &&
            succeeded(checkExtensions()) && succeeded(matchValues()) &&
            succeeded(matchSoftmax()) && succeeded(matchScores()) &&
            succeeded(assignRoles());
  if (matched) {
    std::string error;
    if (failed(classifyMask(*site, *scores, error))) {
      (void)fail(site->pv, error);
      matched = false;
    }
  }
  if (!matched) {
    result.failedOp = failedOp ? failedOp : qk.getOperation();
    result.failure = failureMessage;
    return result;
  }
  result.site = std::move(site);
  return result;
}

AttentionMatch mlir::kvc::matchAttention(linalg::LinalgOp qk) {
  return SiteMatcher(qk).run();
}
