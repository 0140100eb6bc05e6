//===- AttentionLayout.h - index atoms of attention tensors -----*- C++ -*-===//
//
// kvc-raise-attention must know, for every tensor between the KV cache and
// the attention output, which dimension holds the batch, the KV heads, the
// query groups, the query positions, the cache tokens and the head channels,
// however the IR reshaped and transposed them (BHSD or BSHD, heads fused
// with the batch for linalg.batch_matmul, repeat_kv broadcasts, grouped
// queries...).
//
// It does so with *atoms*: an atom is one row-major factor of an index, e.g.
// the batch_matmul loop over B*Hq splits into the atoms b, kv_head and group
// once a collapse_shape and a broadcast on the key side reveal them. A
// tensor's layout lists, per dimension, its atoms from outermost to
// innermost (none for a unit dimension). Atoms split when a reshape needs a
// boundary inside one and are unified when two views of the same index
// meet; layouts are read through `leaves`, which sees both.
//
// An atom may be dynamic (size ShapedType::kDynamic): the cache token count
// of a decode step for any context length. A dynamic atom is never split,
// unifies only with another dynamic atom, and a reshape group of dynamic
// size holds exactly one. Row-major strides are static as long as a dynamic
// leaf is the outermost of its list (`hasStaticStrides`).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_DIALECT_KVC_TRANSFORMS_ATTENTIONLAYOUT_H
#define KVC_LIB_DIALECT_KVC_TRANSFORMS_ATTENTIONLAYOUT_H

#include "mlir/IR/AffineMap.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/SmallVector.h"

#include <string>

namespace mlir {
namespace kvc {

using AtomId = unsigned;
/// The atoms of one dimension, outermost first.
using AtomList = SmallVector<AtomId, 4>;
/// The atoms of every dimension of a tensor (or of every loop of an op).
using Layout = SmallVector<AtomList, 4>;

/// Atoms with their sizes, splits and unifications. Atoms of size 1 are
/// never created: a unit dimension has an empty atom list.
class AtomTable {
public:
  /// A new atom of `size` (> 1 or dynamic).
  AtomId create(int64_t size);
  /// An atom list for a fresh dimension of `size` (empty when 1).
  AtomList createDim(int64_t size);
  int64_t getSize(AtomId atom) const;
  /// The product of the sizes; dynamic when one of them is.
  int64_t getSize(ArrayRef<AtomId> atoms) const;
  bool isDynamic(AtomId atom) const;
  /// Whether every leaf of `atoms` but the outermost is static, so that
  /// the row-major strides of the leaves are constants.
  bool hasStaticStrides(ArrayRef<AtomId> atoms) const;

  /// The current leaves of `atoms`, in row-major order.
  AtomList leaves(ArrayRef<AtomId> atoms) const;
  Layout leaves(const Layout &layout) const;
  /// All leaves of a layout, dimension after dimension.
  AtomList flatLeaves(const Layout &layout) const;

  /// Splits `atoms` into consecutive groups of the given sizes, splitting a
  /// leaf where a group boundary falls inside it. Fails when sizes do not
  /// factor (e.g. 6 into 4 x ...). A dynamic size takes exactly one dynamic
  /// leaf; fails when the grouping is ambiguous (static leaves between two
  /// dynamic groups).
  FailureOr<SmallVector<AtomList>> regroup(ArrayRef<AtomId> atoms,
                                           ArrayRef<int64_t> sizes);
  /// Makes `a` and `b` denote the same index (same total size; dynamic
  /// leaves pair with dynamic leaves).
  LogicalResult unify(ArrayRef<AtomId> a, ArrayRef<AtomId> b);
  LogicalResult unify(const Layout &a, const Layout &b);

private:
  struct Atom {
    int64_t size;
    AtomId parent;
    AtomList children;
  };
  AtomId find(AtomId atom) const;
  void appendLeaves(AtomId atom, AtomList &out) const;
  /// Splits leaf `atom` into an outer atom of `outer` and an inner rest.
  void split(AtomId atom, int64_t outer);

  SmallVector<Atom> atoms;
};

/// The layout of an operand indexed by `map` when loop `i` has the atoms
/// `loops[i]`. Fails on results that are neither a loop nor a constant 0 on
/// a unit dimension, or when sizes disagree with `shape`.
FailureOr<Layout> layoutFromMap(const AtomTable &table, AffineMap map,
                                ArrayRef<AtomList> loops,
                                ArrayRef<int64_t> shape);

/// The atoms of every loop of an op whose result at `map` has `layout`
/// (`map` a projected permutation); loops it does not index get fresh atoms
/// of `loopSizes`. `isFresh[i]` tells which.
FailureOr<Layout> loopsFromResult(AtomTable &table, AffineMap map,
                                  const Layout &layout,
                                  ArrayRef<int64_t> loopSizes,
                                  SmallVectorImpl<bool> *isFresh = nullptr);

/// Merges the dims of `layout` that `reassociation` groups: the layout of
/// the source of a tensor.expand_shape whose result has `layout`.
Layout mergeDims(const Layout &layout,
                 ArrayRef<SmallVector<int64_t, 2>> reassociation);
/// Splits each dim of `layout` into the dims of `shape` its
/// `reassociation` group lists: the layout of the source of a
/// tensor.collapse_shape whose result has `layout`.
FailureOr<Layout> splitDims(AtomTable &table, const Layout &layout,
                            ArrayRef<SmallVector<int64_t, 2>> reassociation,
                            ArrayRef<int64_t> shape);

/// Where a chain of views (transpose, broadcast, reshape, copy, and casts
/// when allowed) backward from a value ends.
struct ViewSource {
  Value value;
  Layout layout;
  /// Atoms a broadcast added on the way: the source does not depend on them.
  AtomList broadcastAtoms;
  bool sawCast = false;
};

/// Follows views backward from `value`, whose layout is `layout`, to the
/// first value not produced by one.
FailureOr<ViewSource> traceViewsBackward(AtomTable &table, Value value,
                                         Layout layout, bool allowCasts,
                                         std::string &error);

/// The first value not produced by a view, without layouts (cheap check).
Value skipViewsBackward(Value value, bool allowCasts);

/// Rewrites `value` from layout `from` to layout `to` (same leaves, in any
/// grouping and order) with expand_shape, linalg.transpose and
/// collapse_shape, skipping the steps that are identities.
Value convertLayout(OpBuilder &builder, Location loc, const AtomTable &table,
                    Value value, const Layout &from, const Layout &to);

/// The row-major affine expression of `atoms` over loops where leaf `l` is
/// dimension `loopOf(l)`; null when a leaf is not a loop.
AffineExpr linearizeAtoms(const AtomTable &table, ArrayRef<AtomId> atoms,
                          function_ref<std::optional<unsigned>(AtomId)> loopOf,
                          MLIRContext *context);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_DIALECT_KVC_TRANSFORMS_ATTENTIONLAYOUT_H
