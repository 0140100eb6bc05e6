//===- KernelBuilder.h - index and float builders of the kvc kernels -*- C++
//-*-===//
//
// Small builders for the arithmetic, loops, shuffles and global stores of
// the attention kernels (AttendKernels.cpp, TensorCoreKeys.cpp, TensorCoreValues.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOGPU_KERNELBUILDER_H
#define KVC_LIB_CONVERSION_KVCTOGPU_KERNELBUILDER_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

namespace mlir {
namespace kvc {

/// Small builders for the kernels' index and float arithmetic.
struct KernelBuilder {
  OpBuilder &b;
  Location loc;

  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value i32(int32_t v) { return arith::ConstantIntOp::create(b, loc, v, 32); }
  Value f32(double v) {
    return arith::ConstantFloatOp::create(b, loc, b.getF32Type(),
                                          APFloat(float(v)));
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value mul(Value x, int64_t y) { return mul(x, index(y)); }
  Value div(Value x, int64_t y) {
    return arith::DivUIOp::create(b, loc, x, index(y));
  }
  Value rem(Value x, int64_t y) {
    return arith::RemUIOp::create(b, loc, x, index(y));
  }
  Value minU(Value x, Value y) { return arith::MinUIOp::create(b, loc, x, y); }
  Value maxU(Value x, Value y) { return arith::MaxUIOp::create(b, loc, x, y); }
  Value fadd(Value x, Value y) { return arith::AddFOp::create(b, loc, x, y); }
  Value fmul(Value x, Value y) { return arith::MulFOp::create(b, loc, x, y); }
  /// acc + x * y in one rounding: the dot products' and weighted sums' one
  /// operation per element and query head (the dequantization itself stays
  /// a separate multiply and add, as the numerics library rounds it).
  Value fma(Value x, Value y, Value acc) {
    return math::FmaOp::create(b, loc, x, y, acc);
  }
  Value fmax(Value x, Value y) {
    return arith::MaximumFOp::create(b, loc, x, y);
  }
  Value cmp(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, loc, p, x, y);
  }
  Value toIndex(Value v) {
    return arith::IndexCastUIOp::create(b, loc, b.getIndexType(), v);
  }
  Value threadId() {
    return gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  }
  /// The thread id read again (inline PTX with side effects): LLVM reuses
  /// neither the kernel's earlier read nor what it derived from it (warp,
  /// lane, channel offsets), which would stay in registers from their first
  /// use to this one, across every pass in between.
  Value freshThreadId() {
    return toIndex(LLVM::InlineAsmOp::create(
                       b, loc, b.getI32Type(), ValueRange{},
                       "mov.u32 $0, %tid.x;", "=r",
                       /*has_side_effects=*/true, /*is_align_stack=*/false,
                       LLVM::TailCallKind::None, LLVM::AsmDialectAttr(),
                       /*operand_attrs=*/ArrayAttr())
                       .getResult(0));
  }
  Value blockId(gpu::Dimension d) { return gpu::BlockIdOp::create(b, loc, d); }
  void barrier() { gpu::BarrierOp::create(b, loc); }

  /// for iv in [lb, ub) step `step`, carrying `inits`.
  scf::ForOp loop(Value lb, Value ub, Value step, ValueRange inits,
                  function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    return scf::ForOp::create(
        b, loc, lb, ub, step, inits,
        [&](OpBuilder &nb, Location, Value iv, ValueRange args) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
          scf::YieldOp::create(b, loc, body(iv, args));
        });
  }
  void ifThen(Value cond, function_ref<void()> then) {
    scf::IfOp::create(b, loc, cond, [&](OpBuilder &nb, Location) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
      then();
      scf::YieldOp::create(b, loc);
    });
  }
  void ifThenElse(Value cond, function_ref<void()> then,
                  function_ref<void()> otherwise) {
    auto branch = [&](function_ref<void()> body) {
      return [&, body](OpBuilder &nb, Location) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        body();
        scf::YieldOp::create(b, loc);
      };
    };
    scf::IfOp::create(b, loc, cond, branch(then), branch(otherwise));
  }

  /// acc[j] + shared[j][column] * x for every row j of a [rows][*] shared
  /// matrix: one element, multiplied into every query head's accumulator.
  /// A multiply and an add, not an fma: with fmas ptxas spills (up to 24
  /// bytes of stack in 25 of the 85 sm_80 variants of kvc-gpu-pipeline.test, 8
  /// in one sm_90a variant) at min-blocks-per-sm=5's register cap.
  SmallVector<Value> accumulateRows(ValueRange acc, Value shared, Value column,
                                    Value x) {
    SmallVector<Value> next;
    for (auto [j, sum] : llvm::enumerate(acc)) {
      Value factor = memref::LoadOp::create(
          b, loc, shared, ValueRange{index(int64_t(j)), column});
      next.push_back(fadd(sum, fmul(factor, x)));
    }
    return next;
  }

  /// A generic pointer argument as a pointer to global memory, so that
  /// loads and stores are `ld.global`/`st.global`.
  Value global(Value pointer) {
    return LLVM::AddrSpaceCastOp::create(
        b, loc, LLVM::LLVMPointerType::get(b.getContext(), 1), pointer);
  }
  void storeF32(Value base, Value byteOffset, Value value) {
    Value offset =
        arith::IndexCastOp::create(b, loc, b.getI64Type(), byteOffset);
    Value address = LLVM::GEPOp::create(b, loc, base.getType(), b.getI8Type(),
                                        base, ValueRange{offset});
    LLVM::StoreOp::create(b, loc, value, address, 4);
  }

  /// Block-wide reductions of `values` (every thread holds one of each)
  /// with `op`, through one f32 per value and warp of `scratch` from index
  /// `first`, which the block must not write again (each reduction takes
  /// its own part: no barrier after the reads). Every thread gets the
  /// results. The values' shuffles interleave and one barrier serves them
  /// all: a block's chain of reductions is what sets its latency when a
  /// split has few tokens (batch 1).
  SmallVector<Value> blockReduce(ArrayRef<Value> values, Value scratch,
                                 unsigned threads,
                                 function_ref<Value(Value, Value)> op,
                                 int64_t first = 0) {
    const int64_t warps = threads / 32;
    SmallVector<Value> partial(values);
    for (int offset = 16; offset >= 1; offset /= 2)
      for (Value &value : partial) {
        auto shuffle = gpu::ShuffleOp::create(b, loc, value, i32(offset),
                                              i32(32), gpu::ShuffleMode::XOR);
        value = op(value, shuffle.getShuffleResult());
      }
    Value tid = threadId();
    Value warp = div(tid, 32);
    ifThen(cmp(arith::CmpIPredicate::eq, rem(tid, 32), index(0)), [&] {
      for (auto [i, value] : llvm::enumerate(partial))
        memref::StoreOp::create(b, loc, value, scratch,
                                add(warp, index(first + int64_t(i) * warps)));
    });
    barrier();
    SmallVector<Value> results;
    for (int64_t i = 0; i < int64_t(partial.size()); ++i)
      results.push_back(blockReduced(scratch, threads, op, first, index(i)));
    return results;
  }
  /// Result `i` (an index, known at run time or not) of a blockReduce from
  /// `first`, from its warps' partials (value i of warp w at first + i *
  /// warps + w) combined in warp order: read again after the reduction, the
  /// same value.
  Value blockReduced(Value scratch, unsigned threads,
                     function_ref<Value(Value, Value)> op, int64_t first,
                     Value i) {
    const int64_t warps = threads / 32;
    Value at = b.createOrFold<arith::AddIOp>(
        loc, index(first), b.createOrFold<arith::MulIOp>(loc, i, index(warps)));
    Value result = memref::LoadOp::create(b, loc, scratch, at);
    for (int64_t w = 1; w < warps; ++w)
      result = op(result, memref::LoadOp::create(b, loc, scratch,
                                                 b.createOrFold<arith::AddIOp>(
                                                     loc, at, index(w))));
    return result;
  }
  Value blockReduce(Value value, Value scratch, unsigned threads,
                    function_ref<Value(Value, Value)> op) {
    return blockReduce(ArrayRef<Value>{value}, scratch, threads, op).front();
  }
};

inline gpu::AddressSpaceAttr workgroupSpace(MLIRContext *ctx) {
  return gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
}

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOGPU_KERNELBUILDER_H
