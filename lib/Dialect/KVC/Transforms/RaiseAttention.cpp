//===- RaiseAttention.cpp - raise attention over KV caches to kvc ops -----===//
//
// Rewrites every attention AttentionMatcher recognizes into kvc.append +
// kvc.attend, turns the function's past K/V arguments of each layer into
// one !kvc.cache argument and its present K/V results into one cache
// result, and erases what the old computation leaves dead. Attention that
// does not match stays as it is, with a remark.
//
//===----------------------------------------------------------------------===//

#include "AttentionMatcher.h"

#include "kvc/Dialect/KVC/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/FormatVariadic.h"

namespace mlir {
namespace kvc {
#define GEN_PASS_DEF_KVCRAISEATTENTION
#include "kvc/Dialect/KVC/Transforms/Passes.h.inc"
} // namespace kvc
} // namespace mlir

using namespace mlir;
using namespace mlir::kvc;

/// The attribute naming the layer of a cache argument (read by
/// kvc-decouple-compression).
static constexpr StringLiteral kLayerAttrName = "kvc.layer";

namespace {

struct RaiseAttentionPass
    : public mlir::kvc::impl::KVCRaiseAttentionBase<RaiseAttentionPass> {
  using Base::Base;
  void runOnOperation() override;
};

using SiteList = SmallVector<std::unique_ptr<AttentionSite>>;

/// Rewrites the matched attention sites of one function.
class FunctionRewriter {
public:
  FunctionRewriter(func::FuncOp func, SiteList sites)
      : func(func), sites(std::move(sites)) {}

  /// Drops the sites whose rewrite would leave the old cache alive or
  /// break the signature, with a remark each.
  void filterSites();
  void rewrite();

private:
  /// The ops that die once every site's P·V result is replaced and its
  /// present K/V leave the return.
  llvm::SetVector<Operation *> predictDeadOps();
  /// The return operand positions of `value` (at most one is expected).
  SmallVector<unsigned> returnPositions(Value value);
  Value rewriteSite(AttentionSite &site, BlockArgument cache);
  /// Folds the reshapes and transposes the rewrite created into their
  /// neighbours (collapse-then-expand pairs, transposes of transposes).
  void foldCreatedReshapes();

  /// Records the ops the rewrite creates.
  struct Recorder : public OpBuilder::Listener {
    SmallVector<Operation *> created;
    void notifyOperationInserted(Operation *op,
                                 OpBuilder::InsertPoint) override {
      created.push_back(op);
    }
  };
  Recorder recorder;

  func::FuncOp func;
  SiteList sites;
};

} // namespace

//===----------------------------------------------------------------------===//
// Emitting kvc ops
//===----------------------------------------------------------------------===//

/// New keys or values as batch x kv_heads x tokens x head_dim.
static Value toBHSD(OpBuilder &builder, Location loc,
                    const CacheExtension &ext) {
  Value tokens = ext.newTokens;
  if (!ext.isBSHD())
    return tokens;
  auto type = cast<RankedTensorType>(tokens.getType());
  SmallVector<int64_t> permutation = {0, 2, 1, 3};
  SmallVector<int64_t> shape;
  for (int64_t dim : permutation)
    shape.push_back(type.getDimSize(dim));
  Value init =
      tensor::EmptyOp::create(builder, loc, shape, type.getElementType());
  return linalg::TransposeOp::create(builder, loc, tokens, init, permutation)
      ->getResult(0);
}

static AtomList concatAtoms(ArrayRef<AtomId> a, ArrayRef<AtomId> b) {
  AtomList result(a.begin(), a.end());
  llvm::append_range(result, b);
  return result;
}

static Value castFloat(OpBuilder &builder, Location loc, Value value,
                       FloatType type) {
  Type from = value.getType();
  if (from == type)
    return value;
  if (auto fromFloat = dyn_cast<FloatType>(from)) {
    if (fromFloat.getWidth() < type.getWidth())
      return arith::ExtFOp::create(builder, loc, type, value);
    return arith::TruncFOp::create(builder, loc, type, value);
  }
  if (from.isInteger(1))
    return arith::UIToFPOp::create(builder, loc, type, value);
  return arith::SIToFPOp::create(builder, loc, type, value);
}

namespace {
/// Emits the scalar expressions of a mask inside a linalg.generic body.
struct MaskBodyEmitter {
  OpBuilder &builder;
  Location loc;
  const AtomTable &table;
  llvm::DenseMap<AtomId, unsigned> loopOf;
  llvm::DenseMap<Expr *, Value> values;

  Value emit(Expr *expr) {
    if (Value known = values.lookup(expr))
      return known;
    Value result;
    switch (expr->kind) {
    case Expr::Kind::Constant:
      result = arith::ConstantOp::create(builder, loc,
                                         cast<TypedAttr>(expr->constant));
      break;
    case Expr::Kind::Scalar:
      result = expr->scalar;
      break;
    case Expr::Kind::Index: {
      // The row-major index of the atoms, from the loops of their leaves.
      int64_t stride = 1;
      for (AtomId leaf : llvm::reverse(table.leaves(expr->atoms))) {
        Value index = linalg::IndexOp::create(builder, loc, loopOf.at(leaf));
        if (stride != 1)
          index = arith::MulIOp::create(
              builder, loc, index,
              arith::ConstantIndexOp::create(builder, loc, stride));
        result = result ? arith::AddIOp::create(builder, loc, result, index)
                              .getResult()
                        : index;
        // A dynamic leaf is the outermost one (isMaterializable).
        if (!table.isDynamic(leaf))
          stride *= table.getSize(leaf);
      }
      if (!result)
        result = arith::ConstantIndexOp::create(builder, loc, 0);
      // An integer arange constant is an index of its type.
      if (!expr->type.isIndex())
        result = arith::IndexCastOp::create(builder, loc, expr->type, result);
      break;
    }
    case Expr::Kind::Op: {
      IRMapping mapping;
      for (auto [operand, sub] :
           llvm::zip(expr->op->getOperands(), expr->operands))
        mapping.map(operand, emit(sub));
      Operation *clone = builder.clone(*expr->op, mapping);
      // Tensor-level arith ops become their scalar form.
      for (Value cloned : clone->getResults())
        cloned.setType(getElementTypeOrSelf(cloned.getType()));
      result = clone->getResult(0);
      break;
    }
    default:
      llvm_unreachable("the matcher only keeps materializable masks");
    }
    values[expr] = result;
    return result;
  }
};
} // namespace

/// The mask over the whole extended tensor: the additive terms and the
/// conditions the matcher could not turn into `causal` / `window`, computed
/// by one linalg.generic over batch x (1 | q_heads) x q_len x tokens.
static Value emitMaskOverExtent(OpBuilder &builder, Location loc,
                                AttentionSite &site) {
  const AtomTable &table = *site.atoms;
  MLIRContext *context = builder.getContext();
  AtomList heads;
  if (site.maskDependsOnHeads)
    heads = table.leaves(concatAtoms(site.kvHeads, site.groups));
  Layout target = {site.batch, heads, site.positions, site.tokens};
  Layout flat;
  for (AtomId leaf : table.flatLeaves(target))
    flat.push_back({leaf});
  FloatType type = site.scoreType;

  // A single mask tensor that already has the operand's indices is used
  // as it is.
  if (site.maskPredicates.empty() && site.maskTerms.size() == 1 &&
      site.maskTerms[0].multiplier == 1.0) {
    Expr *term = site.maskTerms[0].expr;
    if (term->is(Expr::Kind::Read) && term->type == type) {
      AtomList leaves = table.flatLeaves(term->layout);
      AtomList wanted = table.flatLeaves(target);
      llvm::SmallDenseSet<AtomId> set(leaves.begin(), leaves.end());
      if (leaves.size() == wanted.size() && set.size() == leaves.size() &&
          llvm::all_of(wanted, [&](AtomId a) { return set.contains(a); }))
        return convertLayout(builder, loc, table, term->tensor, term->layout,
                             target);
    }
  }

  MaskBodyEmitter emitter{builder, loc, table,
                          llvm::DenseMap<AtomId, unsigned>(),
                          llvm::DenseMap<Expr *, Value>()};
  SmallVector<int64_t> shape;
  for (auto [index, dim] : llvm::enumerate(flat)) {
    emitter.loopOf[dim[0]] = index;
    shape.push_back(table.getSize(dim));
  }
  auto loopOf = [&](AtomId leaf) -> std::optional<unsigned> {
    auto it = emitter.loopOf.find(leaf);
    if (it == emitter.loopOf.end())
      return std::nullopt;
    return it->second;
  };
  // Every tensor the mask reads becomes an input of the generic.
  SmallVector<Expr *> reads;
  auto collectReads = [&](Expr *root) {
    walkExpr(root, [&](Expr *e) {
      if (e->is(Expr::Kind::Read) && !llvm::is_contained(reads, e))
        reads.push_back(e);
    });
  };
  for (const MaskTerm &term : site.maskTerms)
    collectReads(term.expr);
  for (const MaskPredicate &predicate : site.maskPredicates)
    collectReads(predicate.expr);
  SmallVector<Value> inputs;
  SmallVector<AffineMap> maps;
  for (Expr *read : reads) {
    SmallVector<AffineExpr> results;
    for (const AtomList &dim : read->layout)
      results.push_back(linearizeAtoms(table, dim, loopOf, context));
    inputs.push_back(read->tensor);
    maps.push_back(AffineMap::get(flat.size(), 0, results, context));
  }
  maps.push_back(AffineMap::getMultiDimIdentityMap(flat.size(), context));
  // A dynamic token count is the size of a tensor the mask reads.
  SmallVector<Value> dynamicSizes;
  if (llvm::any_of(shape, ShapedType::isDynamic))
    dynamicSizes.push_back(tensor::DimOp::create(
        builder, loc, site.maskTokenSource, site.maskTokenDim));
  Value init = tensor::EmptyOp::create(builder, loc, shape, type, dynamicSizes);
  SmallVector<utils::IteratorType> iterators(flat.size(),
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      builder, loc, TypeRange{init.getType()}, inputs, ValueRange{init}, maps,
      iterators, [&](OpBuilder &body, Location bodyLoc, ValueRange args) {
        // The emitter builds with `builder`, which records what it creates.
        OpBuilder::InsertionGuard guard(builder);
        builder.setInsertionPoint(body.getInsertionBlock(),
                                  body.getInsertionPoint());
        for (auto [read, arg] : llvm::zip(reads, args))
          emitter.values[read] = arg;
        Value sum;
        for (const MaskTerm &term : site.maskTerms) {
          Value value = castFloat(builder, bodyLoc, emitter.emit(term.expr),
                                  type);
          if (term.multiplier != 1.0)
            value = arith::MulFOp::create(
                builder, bodyLoc, value,
                arith::ConstantOp::create(
                    builder, bodyLoc,
                    builder.getFloatAttr(type, term.multiplier)));
          sum = sum ? arith::AddFOp::create(builder, bodyLoc, sum, value)
                          .getResult()
                    : value;
        }
        if (!sum)
          sum = arith::ConstantOp::create(builder, bodyLoc,
                                          builder.getFloatAttr(type, 0.0));
        Value keep;
        for (const MaskPredicate &predicate : site.maskPredicates) {
          Value condition = emitter.emit(predicate.expr);
          if (!predicate.keepWhen)
            condition = arith::XOrIOp::create(
                builder, bodyLoc, condition,
                arith::ConstantIntOp::create(builder, bodyLoc, 1, 1));
          keep = keep ? arith::AndIOp::create(builder, bodyLoc, keep,
                                              condition)
                            .getResult()
                      : condition;
        }
        if (keep) {
          double fill = site.maskFill.value_or(
              -std::numeric_limits<double>::infinity());
          Value masked = arith::ConstantOp::create(
              builder, bodyLoc, builder.getFloatAttr(type, fill));
          sum = arith::SelectOp::create(builder, bodyLoc, keep, sum, masked);
        }
        linalg::YieldOp::create(builder, bodyLoc, sum);
      });
  return convertLayout(builder, loc, table, generic->getResult(0), flat,
                       target);
}

/// The mask operand of kvc.attend.
static Value emitMask(OpBuilder &builder, Location loc, AttentionSite &site) {
  Value mask = emitMaskOverExtent(builder, loc, site);
  // A fixed-size buffer holds more slots than the cache has tokens: the
  // operand covers the cached ones only.
  const CacheExtension &keys = site.keys;
  if (keys.fillsExtent())
    return mask;
  auto maskType = cast<RankedTensorType>(mask.getType());
  SmallVector<OpFoldResult> offsets(4, builder.getIndexAttr(0));
  SmallVector<OpFoldResult> sizes, strides(4, builder.getIndexAttr(1));
  for (int64_t dim = 0; dim < 3; ++dim)
    sizes.push_back(builder.getIndexAttr(maskType.getDimSize(dim)));
  if (keys.staticOffset) {
    sizes.push_back(
        builder.getIndexAttr(*keys.staticOffset + keys.newCount));
  } else {
    Value offset = keys.dynamicOffset;
    Value count = arith::ConstantIndexOp::create(builder, loc, keys.newCount);
    sizes.push_back(arith::AddIOp::create(builder, loc, offset, count)
                        .getResult());
  }
  return tensor::ExtractSliceOp::create(builder, loc, mask, offsets, sizes,
                                        strides);
}

Value FunctionRewriter::rewriteSite(AttentionSite &site, BlockArgument cache) {
  linalg::LinalgOp pv = site.pv;
  OpBuilder builder(pv, &recorder);
  Location loc = builder.getFusedLoc({site.qk->getLoc(), pv->getLoc()});
  const AtomTable &table = *site.atoms;

  Value keys = toBHSD(builder, loc, site.keys);
  Value values = toBHSD(builder, loc, site.values);
  Value appended = AppendOp::create(builder, loc, cache, keys, values);

  AtomList queryHeads = concatAtoms(site.kvHeads, site.groups);
  Layout queryLayout = {site.batch, queryHeads, site.positions, site.headDim};
  Value query = convertLayout(builder, loc, table, site.query,
                              site.queryLayout, queryLayout);
  Value mask = site.hasMaskOperand() ? emitMask(builder, loc, site) : Value();

  auto queryType = cast<RankedTensorType>(query.getType());
  Type outputElement = getElementTypeOrSelf(pv->getResult(0).getType());
  auto resultType =
      RankedTensorType::get(queryType.getShape(), outputElement);
  Value attended =
      AttendOp::create(
          builder, loc, resultType, /*mass=*/Type(), query, appended, mask,
          builder.getF32FloatAttr(site.scale), site.causal,
          site.window ? builder.getI64IntegerAttr(*site.window) : IntegerAttr(),
          FloatAttr())
          .getResult();
  Layout attendedLayout = {site.batch, queryHeads, site.positions,
                           site.valueDim};
  Value output = convertLayout(builder, loc, table, attended, attendedLayout,
                               site.outputLayout);
  pv->getResult(0).replaceAllUsesWith(output);
  return appended;
}

//===----------------------------------------------------------------------===//
// Function rewriting
//===----------------------------------------------------------------------===//

SmallVector<unsigned> FunctionRewriter::returnPositions(Value value) {
  SmallVector<unsigned> positions;
  Operation *ret = func.getBody().front().getTerminator();
  for (OpOperand &operand : ret->getOpOperands())
    if (operand.get() == value)
      positions.push_back(operand.getOperandNumber());
  return positions;
}

/// The values the rewrite of `site` reads: the queries, the new keys and
/// values, and what the mask operand is computed from.
static SmallVector<Value> valuesReused(const AttentionSite &site) {
  SmallVector<Value> values = {site.query, site.keys.newTokens,
                               site.values.newTokens};
  if (site.maskTokenSource)
    values.push_back(site.maskTokenSource);
  SmallVector<Expr *> roots;
  for (const MaskTerm &term : site.maskTerms)
    roots.push_back(term.expr);
  for (const MaskPredicate &predicate : site.maskPredicates)
    roots.push_back(predicate.expr);
  for (Expr *root : roots)
    walkExpr(root, [&](Expr *node) {
      if (node->is(Expr::Kind::Read))
        values.push_back(node->tensor);
      else if (node->is(Expr::Kind::Scalar))
        values.push_back(node->scalar);
    });
  return values;
}

llvm::SetVector<Operation *> FunctionRewriter::predictDeadOps() {
  Block &block = func.getBody().front();
  Operation *ret = block.getTerminator();
  llvm::DenseSet<Value> returnedCaches;
  llvm::DenseSet<Operation *> dead, reused;
  for (auto &site : sites) {
    dead.insert(site->pv);
    returnedCaches.insert(site->keys.op->getResult(0));
    returnedCaches.insert(site->values.op->getResult(0));
    for (Value value : valuesReused(*site))
      if (Operation *def = value.getDefiningOp())
        reused.insert(block.findAncestorOpInBlock(*def));
  }
  // Users come after their operands: one backward sweep finds every op
  // whose uses all die. Ops that had no use before stay as they were, and
  // so do those the rewrite reads.
  for (Operation &op : llvm::reverse(block)) {
    if (&op == ret || dead.contains(&op) || op.use_empty() ||
        reused.contains(&op) || !isMemoryEffectFree(&op))
      continue;
    bool allDead = llvm::all_of(op.getUses(), [&](OpOperand &use) {
      Operation *user = block.findAncestorOpInBlock(*use.getOwner());
      if (user == ret)
        return returnedCaches.contains(use.get());
      return dead.contains(user);
    });
    if (allDead)
      dead.insert(&op);
  }
  llvm::SetVector<Operation *> ordered;
  for (Operation &op : block)
    if (dead.contains(&op))
      ordered.insert(&op);
  return ordered;
}

void FunctionRewriter::filterSites() {
  // One cache belongs to one attention.
  llvm::DenseSet<Operation *> claimed;
  llvm::DenseSet<Value> claimedArgs;
  SiteList unique;
  for (auto &site : sites) {
    bool fresh = !claimed.contains(site->keys.op) &&
                 !claimed.contains(site->values.op) &&
                 !claimedArgs.contains(site->keys.past) &&
                 !claimedArgs.contains(site->values.past);
    if (!fresh) {
      site->qk->emitRemark("kvc-raise-attention: cache not recognized: "
                           "another attention already reads this cache");
      continue;
    }
    claimed.insert(site->keys.op);
    claimed.insert(site->values.op);
    claimedArgs.insert(site->keys.past);
    claimedArgs.insert(site->values.past);
    unique.push_back(std::move(site));
  }
  sites = std::move(unique);

  // The present keys and values are returned together or not at all.
  SiteList returnable;
  for (auto &site : sites) {
    size_t k = returnPositions(site->keys.op->getResult(0)).size();
    size_t v = returnPositions(site->values.op->getResult(0)).size();
    if (k > 1 || v > 1 || k != v) {
      site->qk->emitRemark("kvc-raise-attention: cache not recognized: the "
                           "function must return the present keys and "
                           "values once each, or neither");
      continue;
    }
    returnable.push_back(std::move(site));
  }
  sites = std::move(returnable);

  // Everything that reads the old caches must die with the attention.
  bool changed = true;
  while (changed && !sites.empty()) {
    changed = false;
    llvm::SetVector<Operation *> dead = predictDeadOps();
    for (auto it = sites.begin(); it != sites.end(); ++it) {
      AttentionSite &site = **it;
      auto dies = [&](BlockArgument arg) {
        return llvm::all_of(arg.getUsers(), [&](Operation *user) {
          return dead.contains(user);
        });
      };
      if (dead.contains(site.keys.op) && dead.contains(site.values.op) &&
          dies(site.keys.past) && dies(site.values.past))
        continue;
      site.qk->emitRemark("kvc-raise-attention: cache not recognized: the "
                          "past or extended keys/values are used outside "
                          "this attention");
      sites.erase(it);
      changed = true;
      break;
    }
  }
}

void FunctionRewriter::rewrite() {
  if (sites.empty())
    return;
  MLIRContext *context = func.getContext();
  Builder builder(context);
  llvm::SetVector<Operation *> dead = predictDeadOps();

  // One cache argument per layer, placed where its past keys were.
  SmallVector<std::pair<unsigned, unsigned>> byPosition;
  for (auto [layer, site] : llvm::enumerate(sites))
    byPosition.push_back({site->keys.past.getArgNumber(), unsigned(layer)});
  llvm::sort(byPosition);
  SmallVector<unsigned> indices;
  SmallVector<Type> types;
  SmallVector<DictionaryAttr> attrs;
  SmallVector<Location> locs;
  for (auto [position, layer] : byPosition) {
    AttentionSite &site = *sites[layer];
    auto past = cast<RankedTensorType>(site.keys.past.getType());
    unsigned heads = site.keys.headsDim();
    SmallVector<int64_t> shape = {past.getDimSize(0), past.getDimSize(heads),
                                  ShapedType::kDynamic, past.getDimSize(3)};
    auto cacheType =
        CacheType::get(context, shape, past.getElementType(), EncodingAttr());
    indices.push_back(position);
    types.push_back(cacheType);
    attrs.push_back(builder.getDictionaryAttr(builder.getNamedAttr(
        kLayerAttrName, builder.getI64IntegerAttr(layer))));
    locs.push_back(site.keys.past.getLoc());
  }
  // Old argument `index` moves past the caches inserted at or before it.
  auto shifted = [&](unsigned index) {
    return index + unsigned(llvm::count_if(indices, [&](unsigned inserted) {
             return inserted <= index;
           }));
  };
  SmallVector<unsigned> pastK, pastV;
  for (auto &site : sites) {
    pastK.push_back(site->keys.past.getArgNumber());
    pastV.push_back(site->values.past.getArgNumber());
  }
  if (failed(func.insertArguments(indices, types, attrs, locs)))
    return;

  Block &block = func.getBody().front();
  Operation *ret = block.getTerminator();
  llvm::BitVector droppedResults(ret->getNumOperands());
  for (auto [rank, entry] : llvm::enumerate(byPosition)) {
    AttentionSite &site = *sites[entry.second];
    BlockArgument cache = func.getArgument(entry.first + rank);
    Value keysOut = site.keys.op->getResult(0);
    Value valuesOut = site.values.op->getResult(0);
    SmallVector<unsigned> keyPositions = returnPositions(keysOut);
    SmallVector<unsigned> valuePositions = returnPositions(valuesOut);
    if (site.assumesPositionInBuffer)
      site.qk->emitRemark(
          llvm::formatv("kvc-raise-attention: assumes 0 <= position <= {0}: "
                        "the cache is written at the clamped position, the "
                        "mask compares with the position itself",
                        site.keys.extent - site.keys.newCount)
              .str());
    if (Operation *gather = site.maskTokenAssumption)
      site.qk->emitRemark("kvc-raise-attention: assumes the tensor gathered "
                          "at ")
          << gather->getLoc()
          << " (e.g. attention_mask) has as many tokens as the cache, not "
             "more: the mask operand takes its size from it (kvc.attend "
             "checks it at run time)";
    Value appended = rewriteSite(site, cache);
    for (unsigned position : keyPositions)
      ret->setOperand(position, appended);
    for (unsigned position : valuePositions)
      droppedResults.set(position);
  }

  // The present values leave the results, then what died is erased, users
  // first.
  ret->eraseOperands(droppedResults);
  (void)func.eraseResults(droppedResults);
  for (Operation *op : llvm::reverse(dead))
    if (op->use_empty())
      op->erase();

  llvm::BitVector droppedArgs(func.getNumArguments());
  for (auto [k, v] : llvm::zip(pastK, pastV)) {
    droppedArgs.set(shifted(k));
    droppedArgs.set(shifted(v));
  }
  for (unsigned index : droppedArgs.set_bits())
    if (!func.getArgument(index).use_empty())
      droppedArgs.reset(index);
  (void)func.eraseArguments(droppedArgs);
  func.setType(FunctionType::get(context, func.getArgumentTypes(),
                                 ret->getOperandTypes()));
  foldCreatedReshapes();
}

void FunctionRewriter::foldCreatedReshapes() {
  MLIRContext *context = func.getContext();
  auto isReshape = [](Operation *op) {
    return isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp,
               linalg::TransposeOp>(op);
  };
  // The created reshapes and the reshape chains they feed.
  llvm::SetVector<Operation *> ops;
  SmallVector<Operation *> worklist;
  for (Operation *op : recorder.created)
    if (isReshape(op))
      worklist.push_back(op);
  while (!worklist.empty()) {
    Operation *op = worklist.pop_back_val();
    if (!ops.insert(op))
      continue;
    for (Operation *user : op->getUsers())
      if (isReshape(user))
        worklist.push_back(user);
  }
  if (ops.empty())
    return;
  RewritePatternSet patterns(context);
  tensor::ExpandShapeOp::getCanonicalizationPatterns(patterns, context);
  tensor::CollapseShapeOp::getCanonicalizationPatterns(patterns, context);
  linalg::TransposeOp::getCanonicalizationPatterns(patterns, context);
  GreedyRewriteConfig config;
  config.setStrictness(GreedyRewriteStrictness::ExistingAndNewOps);
  (void)applyOpPatternsGreedily(ops.getArrayRef(), std::move(patterns),
                                config);
}

//===----------------------------------------------------------------------===//
// The pass
//===----------------------------------------------------------------------===//

void RaiseAttentionPass::runOnOperation() {
  ModuleOp module = getOperation();
  for (auto func : llvm::make_early_inc_range(module.getOps<func::FuncOp>())) {
    if (func.isExternal())
      continue;
    SiteList sites;
    func.walk<WalkOrder::PreOrder>([&](linalg::LinalgOp op) {
      AttentionMatch match = matchAttention(op);
      if (!match.isCandidate)
        return;
      if (!match.site) {
        match.failedOp->emitRemark(match.failure);
        return;
      }
      sites.push_back(std::move(match.site));
    });
    if (sites.empty())
      continue;
    // The signature changes: callers, several blocks or another
    // terminator would need more than this pass does.
    StringRef reason;
    if (!func.getBody().hasOneBlock() ||
        !isa<func::ReturnOp>(func.getBody().front().getTerminator()))
      reason = "its body is not a single block ending in func.return";
    else if (!SymbolTable::symbolKnownUseEmpty(func, module))
      reason = "it has callers";
    if (!reason.empty()) {
      for (auto &site : sites)
        site->qk->emitRemark("kvc-raise-attention: function signature not "
                             "rewritten: ")
            << reason;
      continue;
    }
    FunctionRewriter rewriter(func, std::move(sites));
    rewriter.filterSites();
    rewriter.rewrite();
  }
}
