//===- QuantizeKernel.cpp - the kvc.quantize kernel -----------------------===//

#include "QuantizeKernel.h"

#include "../KVCToLoops/GroupQuantizer.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::kvc;

gpu::GPUFuncOp mlir::kvc::buildQuantizeKernel(
    OpBuilder &b, Location loc, gpu::GPUModuleOp module, StringRef name,
    const ::kvc::numerics::SideEncoding &side, MemRefType input,
    MemRefType codes, MemRefType params, unsigned blockThreads,
    unsigned minBlocksPerSM) {
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToEnd(module.getBody());
  SmallVector<Type> arguments = {input, codes, params};
  if (side.isQuant())
    arguments.push_back(params); // zeros
  auto func =
      gpu::GPUFuncOp::create(b, loc, name, b.getFunctionType(arguments, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(
      b.getDenseI32ArrayAttr({int32_t(blockThreads), 1, 1}));
  // Without it ptxas caps registers for full occupancy (64 here) and the
  // unrolled 3-bit units with 128-value groups spill 4 bytes.
  if (minBlocksPerSM)
    func->setAttr("nvvm.minctasm", b.getI32IntegerAttr(minBlocksPerSM));
  b.setInsertionPointToStart(&func.getBody().front());

  auto index = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  Value group = arith::AddIOp::create(
      b, loc,
      arith::MulIOp::create(b, loc,
                            gpu::BlockIdOp::create(b, loc, gpu::Dimension::x),
                            index(blockThreads)),
      gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x));
  Value inRange = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                        group, index(params.getNumElements()));
  scf::IfOp::create(b, loc, inRange, [&](OpBuilder &tb, Location) {
    OpBuilder::InsertionGuard inner(b);
    b.setInsertionPoint(tb.getInsertionBlock(), tb.getInsertionPoint());
    // The group's indices into the scales, last dimension fastest.
    SmallVector<Value> at(params.getRank());
    Value rest = group;
    for (int64_t d = params.getRank() - 1; d >= 0; --d) {
      at[d] = arith::RemUIOp::create(b, loc, rest, index(params.getDimSize(d)));
      rest = arith::DivUIOp::create(b, loc, rest, index(params.getDimSize(d)));
    }
    Value zeros = side.isQuant() ? func.getArgument(3) : Value();
    emitQuantizeItem(b, loc, side, func.getArgument(0), func.getArgument(1),
                     func.getArgument(2), zeros, at);
    scf::YieldOp::create(b, loc);
  });
  gpu::ReturnOp::create(b, loc);
  return func;
}
