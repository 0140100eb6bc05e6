//===- AttentionExpr.h - scalar view of elementwise tensor chains -*- C++ -*-===//
//
// Between QKᵀ and P·V, attention is a chain of elementwise ops, reductions
// and reshapes (scale, mask, max, exp, sum, div) spread over any number of
// linalg ops. kvc-raise-attention reads that chain as one scalar expression
// per element of the probabilities, indexed by atoms (AttentionLayout.h):
// producers are inlined through their bodies and indexing maps, reshapes
// only change which atoms index a tensor. The matcher then recognizes the
// softmax, the scale and the mask on the expression, whatever op boundaries
// the IR had.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_DIALECT_KVC_TRANSFORMS_ATTENTIONEXPR_H
#define KVC_LIB_DIALECT_KVC_TRANSFORMS_ATTENTIONEXPR_H

#include "AttentionLayout.h"

#include "mlir/IR/Operation.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/MapVector.h"

#include <deque>
#include <map>

namespace mlir {
namespace kvc {

/// One node of the scalar expression of a tensor element.
struct Expr {
  enum class Kind {
    /// An element of the QKᵀ result (`tensor` at `layout`).
    Score,
    /// A constant scalar (`constant`).
    Constant,
    /// A scalar SSA value defined outside the chain (`scalar`).
    Scalar,
    /// The row-major index of `atoms`, as a linalg.index would give it.
    Index,
    /// An element of a tensor the builder does not look into.
    Read,
    /// A scalar arith/math op (`op`) applied to `operands`.
    Op,
    /// A reduction over `atoms` with combiner `op`: operands are the
    /// reduced element (indexed by `atoms`) and the initial value.
    Reduce,
    /// linalg.softmax of operands[0] over `atoms`.
    Softmax,
    /// The accumulator of the reduction being read (internal).
    Accumulator,
  };

  Kind kind;
  /// The scalar type of the value.
  Type type;
  Value tensor;
  Layout layout;
  Attribute constant;
  Value scalar;
  AtomList atoms;
  Operation *op = nullptr;
  SmallVector<Expr *, 2> operands;

  bool is(Kind k) const { return kind == k; }
  /// The op name for Op nodes, empty otherwise.
  StringRef opName() const;
};

/// Builds expressions; owns their nodes.
class ExprBuilder {
public:
  /// `scores` is where expressions stop (Score leaves); `maxDepth` bounds
  /// how many producer ops are inlined in a row (reshapes are free).
  ExprBuilder(AtomTable &table, Value scores, unsigned maxDepth = ~0u)
      : table(table), scores(scores), maxDepth(maxDepth) {}

  /// The element of `tensor` at `layout`.
  FailureOr<Expr *> read(Value tensor, const Layout &layout);

  /// Why the last build failed, and where.
  const std::string &getError() const { return error; }
  Operation *getErrorOp() const { return errorOp; }

  Expr *makeConstant(Attribute value);

  /// The gather (tensor.generate) behind `expr`, a Read below a gather
  /// that reads its source at indices along a dynamic dimension whose size
  /// it takes to be the source's (e.g. attention_mask[t] for t below the
  /// cache token count): null when there is none.
  Operation *getAssumedExtent(Expr *expr) const {
    return assumedExtents.lookup(expr);
  }

  /// A dynamic dimension of a tensor read at a single dynamic atom: by the
  /// IR's semantics, its size is the atom's.
  struct DynamicDim {
    AtomId atom;
    Value tensor;
    unsigned dim;
  };
  ArrayRef<DynamicDim> getDynamicDims() const { return dynamicDims; }

private:
  struct BodyContext;
  struct GatherContext;

  FailureOr<Expr *> readImpl(Value tensor, const Layout &layout,
                             unsigned depth);
  FailureOr<Expr *> inlineLinalg(Operation *op, OpResult result,
                                 const Layout &layout, unsigned depth);
  FailureOr<Expr *> scalarExpr(Value value, BodyContext &context);
  /// The element of a tensor.generate of dynamic shape whose body reads
  /// other tensors at indices that are indices of the result (a gather by
  /// position, as ONNX Gather by an arange imports); failure when it is
  /// not one (AttentionIndex.cpp).
  FailureOr<Expr *> readGather(Operation *generate, const Layout &layout,
                               unsigned depth);
  FailureOr<Expr *> gatherExpr(Value value, GatherContext &context);
  Expr *create(Expr::Kind kind, Type type);
  FailureOr<Expr *> fail(Operation *op, const Twine &message);

  AtomTable &table;
  Value scores;
  unsigned maxDepth;
  /// Bounds on the nodes built and on the nesting of reads (the recursion).
  static constexpr unsigned kMaxNesting = 512;
  unsigned budget = 20000;
  unsigned nesting = 0;
  std::deque<Expr> nodes;
  std::map<std::pair<void *, std::vector<AtomId>>, Expr *> memo;
  std::string error;
  Operation *errorOp = nullptr;
  llvm::DenseMap<Expr *, Operation *> assumedExtents;
  SmallVector<DynamicDim> dynamicDims;
  /// The gather being read through when it reads a prefix of its source:
  /// sizes below it are not the atoms'.
  Operation *prefixGather = nullptr;
};

/// Strips float conversions (arith.extf/truncf) from the top of `expr`.
Expr *stripCasts(Expr *expr);

/// Whether `expr` depends on a Score leaf.
bool dependsOnScores(Expr *expr);

/// Whether `a` and `b` compute the same value when the atoms of `a` that
/// `bindable` lists stand for atoms of `b`; binds them in `binding`.
bool matchModulo(const AtomTable &table, Expr *a, Expr *b,
                 ArrayRef<AtomId> bindable,
                 llvm::DenseMap<AtomId, AtomList> &binding);

/// Calls `fn` on every node of `expr` once.
void walkExpr(Expr *expr, function_ref<void(Expr *)> fn);

//===----------------------------------------------------------------------===//
// Index arithmetic (AttentionIndex.cpp)
//===----------------------------------------------------------------------===//

/// c + sum(coefficient * leaf) + sum(coefficient * symbol): an index or a
/// position, affine in the indices of atoms (leaves) and in scalar values
/// defined outside the expression (symbols).
struct LinearForm {
  double constant = 0.0;
  llvm::MapVector<AtomId, double> atoms;
  llvm::MapVector<Value, double> symbols;

  bool isConstant() const;
  bool isNonNegative() const;
  void add(const LinearForm &other, double factor);
};

/// The number `expr` is when it is a constant (through float casts).
std::optional<double> constantValue(Expr *expr);

/// The value an integer cast chain starts from (positions often arrive as
/// i64 and are cast to index, or to float for the comparison).
Value stripIntegerCasts(Value value);

/// The symbol a scalar position stands for: casts, `+ 0` and `* 1` are
/// stripped, and a scalar extracted from a 0-d tensor and the 0-d tensor
/// itself (read by a broadcast) are the same symbol.
Value positionSymbol(Value value);

/// `expr` as a linear form; fails on anything else.
FailureOr<LinearForm> linearize(const AtomTable &table, Expr *expr);
/// The scalar `value` as a linear form of the symbols it is computed from
/// by integer additions and multiplications by constants (and the shape
/// arithmetic that leaves a size unchanged: max with 0, division by 1).
LinearForm linearizeScalar(Value value);

/// The index value that the size of dimension `dim` of `tensor` was
/// created from (tensor.empty, tensor.generate, or the init of a linalg
/// op); null when there is none.
Value getSizeValue(Value tensor, unsigned dim);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_DIALECT_KVC_TRANSFORMS_ATTENTIONEXPR_H
