//===- AppendKernel.cpp - the kvc.append kernel ---------------------------===//

#include "AppendKernel.h"

#include "../KVCToLoops/AppendWriter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::kvc;

gpu::GPUFuncOp mlir::kvc::buildAppendKernel(OpBuilder &b, Location loc,
                                            gpu::GPUModuleOp module,
                                            const AppendKernelSpec &spec) {
  MLIRContext *ctx = b.getContext();
  Type ptr = LLVM::LLVMPointerType::get(ctx);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToEnd(module.getBody());
  auto func = gpu::GPUFuncOp::create(
      b, loc, spec.name,
      b.getFunctionType({ptr, ptr, ptr, spec.keys, spec.values}, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(
      b.getDenseI32ArrayAttr({int32_t(spec.blockThreads), 1, 1}));
  // The same reason as the quantize kernel: the unrolled packing units of
  // GroupQuantizer need more registers than full occupancy leaves.
  if (spec.minBlocksPerSM)
    func->setAttr("nvvm.minctasm", b.getI32IntegerAttr(spec.minBlocksPerSM));
  b.setInsertionPointToStart(&func.getBody().front());

  auto index = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  // Runtime memory as global pointers: ld.global / st.global.
  auto global = [&](Value pointer) -> Value {
    return LLVM::AddrSpaceCastOp::create(
        b, loc, LLVM::LLVMPointerType::get(ctx, 1), pointer);
  };
  Value records = global(func.getArgument(0));
  Value pools[2] = {global(func.getArgument(1)), global(func.getArgument(2))};
  Value inputs[2] = {func.getArgument(3), func.getArgument(4)};
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value head = arith::AddIOp::create(
      b, loc, gpu::BlockIdOp::create(b, loc, gpu::Dimension::x),
      index(spec.runFirst));
  Value entry = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value side = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);

  // Items tid, tid + threads, ... of [0, count).
  auto forEachItem = [&](Value count, function_ref<void(Value)> body) {
    scf::ForOp::create(
        b, loc, tid, count, index(spec.blockThreads), ValueRange{},
        [&](OpBuilder &nb, Location, Value item, ValueRange) {
          OpBuilder::InsertionGuard inner(b);
          b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          body(item);
          scf::YieldOp::create(b, loc);
        });
  };
  for (bool value : {false, true}) {
    Value isSide = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, side,
                                         index(value ? 1 : 0));
    // The side is the same for the whole block, so the barrier inside is
    // reached by every thread or by none.
    scf::IfOp::create(b, loc, isSide, [&](OpBuilder &nb, Location) {
      OpBuilder::InsertionGuard inner(b);
      b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
      AppendTarget target =
          loadAppendTarget(b, loc, ByteViews{records}, entry, value,
                           ByteViews{pools[value]}, /*addressSpace=*/1);
      AppendWriter writer(b, loc, value, *spec.pages, spec.runFirst,
                          spec.headDim, spec.pageTokens,
                          spec.residualHeadBytes);
      auto input = [&](Value h, Value token, Value channel) {
        return loadAsF32(b, loc, inputs[value], {entry, h, token, channel});
      };
      forEachItem(writer.flushItems(b, loc, target), [&](Value item) {
        writer.emitFlushItem(b, loc, target, head, item, input);
      });
      // The flush reads staged rows that the staging overwrites.
      gpu::BarrierOp::create(b, loc);
      forEachItem(writer.stageItems(b, loc, target), [&](Value item) {
        writer.emitStageItem(b, loc, target, head, item, input);
      });
      scf::YieldOp::create(b, loc);
    });
  }
  gpu::ReturnOp::create(b, loc);
  return func;
}
