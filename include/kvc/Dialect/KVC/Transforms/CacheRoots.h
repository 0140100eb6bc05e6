//===- CacheRoots.h - where a function's caches start -----------*- C++ -*-===//

#ifndef KVC_DIALECT_KVC_TRANSFORMS_CACHEROOTS_H
#define KVC_DIALECT_KVC_TRANSFORMS_CACHEROOTS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Value.h"

namespace mlir {
namespace kvc {

/// The attribute naming the layer of a cache argument or kvc.cache.empty.
inline constexpr StringLiteral kLayerAttrName = "kvc.layer";

/// A value where a cache starts: a function argument or a kvc.cache.empty.
struct CacheRoot {
  Value value;
  unsigned layer;
};

/// The caches `func` starts from, arguments first, then kvc.cache.empty ops
/// in order. A root's layer is its `kvc.layer` attribute, or else its
/// position in that order.
SmallVector<CacheRoot> collectCacheRoots(func::FuncOp func);

class CacheType;
/// Sets `root`'s type and carries it through the kvc ops that pass the cache
/// on (append, fork, evict) up to the function's return. Any other user
/// would silently see a type it was not built for: that is an error naming
/// `passName`.
LogicalResult propagateCacheType(Value root, CacheType type,
                                 StringRef passName);

} // namespace kvc
} // namespace mlir

#endif // KVC_DIALECT_KVC_TRANSFORMS_CACHEROOTS_H
