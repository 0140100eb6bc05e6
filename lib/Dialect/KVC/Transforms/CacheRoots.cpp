//===- CacheRoots.cpp - where a function's caches start -------------------===//

#include "kvc/Dialect/KVC/Transforms/CacheRoots.h"
#include "kvc/Dialect/KVC/IR/KVCOps.h"

using namespace mlir;
using namespace mlir::kvc;

SmallVector<CacheRoot> mlir::kvc::collectCacheRoots(func::FuncOp func) {
  SmallVector<CacheRoot> roots;
  unsigned position = 0;
  auto layerOf = [&](IntegerAttr attr) {
    unsigned layer = attr ? unsigned(attr.getInt()) : position;
    ++position;
    return layer;
  };
  for (BlockArgument arg : func.getArguments())
    if (isa<CacheType>(arg.getType()))
      roots.push_back({arg, layerOf(func.getArgAttrOfType<IntegerAttr>(
                                arg.getArgNumber(), kLayerAttrName))});
  func.walk([&](CacheEmptyOp op) {
    roots.push_back({op.getResult(), layerOf(op->getAttrOfType<IntegerAttr>(
                                         kLayerAttrName))});
  });
  return roots;
}

LogicalResult mlir::kvc::propagateCacheType(Value root, CacheType type,
                                            StringRef passName) {
  SmallVector<Value> worklist{root};
  while (!worklist.empty()) {
    Value value = worklist.pop_back_val();
    value.setType(type);
    for (OpOperand &use : value.getUses()) {
      Operation *user = use.getOwner();
      if (isa<AttendOp, func::ReturnOp>(user))
        continue;
      if (isa<AppendOp, ForkOp, EvictOp>(user)) {
        for (Value result : user->getResults())
          if (result.getType() != type)
            worklist.push_back(result);
        continue;
      }
      return user->emitOpError("uses a cache whose encoding ")
             << passName
             << " would change; only kvc ops and func.return can carry it";
    }
  }
  return success();
}
