//===- AttendKernels.cpp - decode attention kernels for kvc.attend --------===//
//
// Split-K decode attention (flash-decoding). A block of the split kernel
// owns a split of consecutive tokens of one (sequence, KV head) (at most
// `splitTokens`; the host sizes splits per call) and the GQA query heads of
// that KV head:
//
//   1. the query heads' vectors go to shared memory;
//   2. each thread takes tokens tid, tid + threads, ...: it dequantizes the
//      token's key once and accumulates its dot product with every query
//      head, storing the scores in shared memory (or, with
//      KeyProduct::MMA, each warp takes tiles of 16 tokens and the dot
//      products run on tensor cores: emitTensorCoreScores);
//   3. per query head, a block reduction gives the maximum, the scores
//      become exp(score - max) and a second reduction their sum;
//   4. each thread owns a span of up to 8 channels and a token lane: it
//      reads its span of the lane's tokens in one load where the layout
//      allows and accumulates the weighted sum of every query head; the
//      lanes of a span are adjacent threads of a warp, summed by shuffles;
//   5. the unnormalized output, the maximum and the sum go to the
//      workspace. The combine kernel merges splits with a log-sum-exp.
//
// f32 throughout, like the CPU loops; keys and values are read with
// PageReader, the one definition of the element decoding.
//
//===----------------------------------------------------------------------===//

#include "AttendKernels.h"

#include "../KVCToLoops/Lowering.h"
#include "../KVCToLoops/PageReader.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

namespace {

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
    Value offset = arith::IndexCastOp::create(b, loc, b.getI64Type(),
                                              byteOffset);
    Value address = LLVM::GEPOp::create(b, loc, base.getType(), b.getI8Type(),
                                        base, ValueRange{offset});
    LLVM::StoreOp::create(b, loc, value, address, 4);
  }

  /// Block-wide reduction of `value` (every thread holds one) with `op`;
  /// `scratch` holds one f32 per warp. Every thread gets the result.
  Value blockReduce(Value value, Value scratch, unsigned threads,
                    function_ref<Value(Value, Value)> op) {
    for (int offset = 16; offset >= 1; offset /= 2) {
      auto shuffle = gpu::ShuffleOp::create(b, loc, value, i32(offset),
                                            i32(32), gpu::ShuffleMode::XOR);
      value = op(value, shuffle.getShuffleResult());
    }
    Value tid = threadId();
    Value warp = div(tid, 32);
    ifThen(cmp(arith::CmpIPredicate::eq, rem(tid, 32), index(0)), [&] {
      memref::StoreOp::create(b, loc, value, scratch, warp);
    });
    barrier();
    Value result = memref::LoadOp::create(b, loc, scratch, index(0));
    for (unsigned w = 1; w < threads / 32; ++w)
      result = op(result, memref::LoadOp::create(b, loc, scratch, index(w)));
    // The scratch is reused by the next reduction.
    barrier();
    return result;
  }
};

} // namespace

static gpu::AddressSpaceAttr workgroupSpace(MLIRContext *ctx) {
  return gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
}

Value mlir::kvc::workspaceBytes(OpBuilder &b, Location loc, int64_t batch,
                                int64_t queryHeads, int64_t headDim,
                                Value splits) {
  KernelBuilder k{b, loc};
  return k.mul(splits, batch * queryHeads * (headDim + 2) * 4);
}

namespace {
/// How the value pass divides a block: each thread takes a span of
/// `spanChannels` channels (spansPerThread of them, one after the other)
/// and the tokens lane, lane + tokenLanes, ...; the tokenLanes threads of a
/// span are adjacent in a warp.
struct ValuePassShape {
  int64_t spanChannels, tokenLanes, spansPerThread;
};
} // namespace

/// The widest span valueSpanChannels allows whose lanes fit in a warp.
static ValuePassShape valuePassShape(int64_t headDim, int64_t threads,
                                     int64_t group) {
  for (int64_t span = valueSpanChannels(headDim, group); span >= 1; span /= 2) {
    int64_t spans = headDim / span;
    if (spans <= threads && threads % spans == 0 && threads / spans <= 32)
      return {span, threads / spans, 1};
    if (spans > threads && spans % threads == 0)
      return {span, 1, spans / threads};
  }
  // block-threads is a power of two and head_dim divides it or is a
  // multiple of it, so one channel a span always fits (checked by the pass).
  return {1, 1, headDim / threads};
}

std::string mlir::kvc::tensorCoreKeysUnsupported(int64_t headDim,
                                                 int64_t queryHeadsPerKVHead) {
  if (headDim != 64 && headDim != 128)
    return "head_dim " + std::to_string(headDim) +
           " (the tensor-core key pass takes 64 or 128)";
  if (queryHeadsPerKVHead > 8)
    return std::to_string(queryHeadsPerKVHead) +
           " query heads per KV head (the tensor-core key pass takes up to "
           "8, the N of one m16n8k16 tile)";
  return "";
}

/// The B fragments of the tensor-core key pass (emitTensorCoreScores) into
/// `fragments` (workgroup memref<D/16 x 32 x 2 x vector<2xf16>>, the two
/// registers of each lane): for k-step s and lane (g, t), query head g of
/// the group (zeros past it) at channels t*D/4 + 4s .. + 3, rounded to
/// fp16.
static void emitQueryFragments(KernelBuilder &k, const SplitKernelSpec &spec,
                               Value query, Value batch, Value firstQueryHead,
                               Value fragments) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  const int64_t group = spec.queryHeads / spec.kvHeads, d = spec.headDim;
  const int64_t steps = d / 16;
  Type f32 = b.getF32Type();
  k.loop(k.threadId(), k.index(steps * 32), k.index(spec.blockThreads), {},
         [&](Value i, ValueRange) -> SmallVector<Value> {
           Value step = k.div(i, 32), lane = k.rem(i, 32);
           Value row = k.div(lane, 4);
           Value first = k.add(k.mul(k.rem(lane, 4), d / 4), k.mul(step, 4));
           Value inGroup =
               k.cmp(arith::CmpIPredicate::ult, row, k.index(group));
           Value head = k.add(firstQueryHead, k.minU(row, k.index(group - 1)));
           SmallVector<Value> values;
           for (int64_t j = 0; j < 4; ++j) {
             Value q =
                 loadAsF32(b, loc, query,
                           {batch, head, k.index(0), k.add(first, k.index(j))});
             values.push_back(
                 arith::SelectOp::create(b, loc, inGroup, q, k.f32(0.0)));
           }
           for (int64_t h = 0; h < 2; ++h) {
             Value pair = arith::TruncFOp::create(
                 b, loc, VectorType::get({2}, b.getF16Type()),
                 vector::FromElementsOp::create(
                     b, loc, VectorType::get({2}, f32),
                     ValueRange{values[2 * h], values[2 * h + 1]}));
             memref::StoreOp::create(b, loc, pair, fragments,
                                     ValueRange{step, lane, k.index(h)});
           }
           return {};
         });
}

/// Step 2 on tensor cores: scores[j][t] = q_j . k_t for a warp's tiles of
/// 16 tokens with mma.sync.m16n8k16 (f16 inputs, f32 accumulation). The
/// tile's tokens are the rows of A, the query heads (zero-padded to 8) the
/// columns of B, channels the reduction. Lane (g, t) = (lane / 4, lane % 4)
/// holds A's rows g and g + 8 and B's column g, and in each k-step the
/// reduction indices {2t, 2t+1, 2t+8, 2t+9} (PTX ISA fragment layouts);
/// since a dot product may sum its channels in any order, those indices
/// stand for channels 4s .. 4s+3 of the lane's slab [t*D/4, (t+1)*D/4) in
/// k-step s, for A and B alike. So a lane reads one contiguous slab of each
/// of its two tokens with PageReader's loads, 16 channels (4 k-steps) at a
/// time (2-bit token-axis codes: a 4-byte word and a (scale, zero) pair),
/// dequantizes it exactly as the CPU loops do, and rounds it to fp16 pairs:
/// the A fragments of those k-steps. The queries' B fragments come from
/// shared memory (emitQueryFragments), two 4-byte loads a k-step: held in
/// registers for the whole pass they made ptxas spill. Tokens past `count`
/// are zero rows whose scores are not stored.
static void emitTensorCoreScores(KernelBuilder &k, const SplitKernelSpec &spec,
                                 const SequenceSideView &keys, Value kvHead,
                                 Value start, Value count, Value queryFragments,
                                 Value scores,
                                 function_ref<Value(Value)> finishScore) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  const int64_t group = spec.queryHeads / spec.kvHeads, d = spec.headDim;
  const int64_t slab = d / 4, steps = d / 16;
  const int64_t warps = spec.blockThreads / 32;
  Type f16 = b.getF16Type(), f32 = b.getF32Type();
  auto pairType = VectorType::get({2}, f16);
  // Two f32 values as an fp16 pair (cvt.rn.f16x2.f32).
  auto pack = [&](Value x, Value y) -> Value {
    Value pair = vector::FromElementsOp::create(
        b, loc, VectorType::get({2}, f32), ValueRange{x, y});
    return arith::TruncFOp::create(b, loc, pairType, pair);
  };
  // Rows of fp16 pairs as a fragment (vector<rows x 2 x f16>).
  auto fragment = [&](ArrayRef<Value> pairs) -> Value {
    auto type = VectorType::get({int64_t(pairs.size()), 2}, f16);
    Value result = arith::ConstantOp::create(
        b, loc, type, DenseElementsAttr::get(type, b.getF16FloatAttr(0.0)));
    for (auto [i, pair] : llvm::enumerate(pairs))
      result = vector::InsertOp::create(b, loc, pair, result, int64_t(i));
    return result;
  };

  Value tid = k.threadId();
  Value warp = k.div(tid, 32), lane = k.rem(tid, 32);
  Value row = k.div(lane, 4), quad = k.rem(lane, 4);
  Value slabFirst = k.mul(quad, slab);

  // Part `part` of the lane's slab of local token `local` as fp16 pairs
  // (zeros past `count`).
  Value zeroPair = arith::ConstantOp::create(
      b, loc, pairType,
      DenseElementsAttr::get(pairType, b.getF16FloatAttr(0.0)));
  // A slab is read a part (16 channels, 4 k-steps) at a time: whole
  // slabs of both tokens (32 registers at head_dim 128) made ptxas spill.
  const int64_t partChannels = std::min<int64_t>(slab, 16);
  auto readSlab = [&](Value local, int64_t part) -> SmallVector<Value> {
    ChannelSpan span{k.add(slabFirst, k.index(part * partChannels)),
                     partChannels};
    SmallVector<Value> zeros(partChannels / 2, zeroPair);
    auto ifOp =
        scf::IfOp::create(b, loc, TypeRange(ValueRange(zeros)),
                          k.cmp(arith::CmpIPredicate::ult, local, count), true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    scf::YieldOp::create(
        b, loc,
        keys.foldChannels(b, loc, kvHead, k.add(start, local), span, zeros,
                          [&](Value, std::optional<int64_t> offset,
                              ArrayRef<Value> values,
                              ValueRange pairs) -> SmallVector<Value> {
                            // A part is unrolled (setMaxUnrolledSpan):
                            // offsets are static, and chunks hold an even
                            // number of channels.
                            SmallVector<Value> next(pairs);
                            for (size_t i = 0; i + 1 < values.size(); i += 2)
                              next[(*offset + int64_t(i)) / 2] =
                                  pack(values[i], values[i + 1]);
                            return next;
                          }));
    b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(b, loc, zeros);
    return SmallVector<Value>(ifOp.getResults());
  };

  // Warp-uniform loop over the split's tiles: mma.sync needs the whole
  // warp.
  Value tiles = arith::CeilDivUIOp::create(b, loc, count, k.index(16));
  k.loop(
      warp, tiles, k.index(warps), {},
      [&](Value tile, ValueRange) -> SmallVector<Value> {
        Value top = k.add(k.mul(tile, 16), row);
        Value bottom = k.add(top, k.index(8));
        auto accType = VectorType::get({2, 2}, f32);
        Value acc = arith::ConstantOp::create(
            b, loc, accType,
            DenseElementsAttr::get(accType, b.getF32FloatAttr(0.0)));
        SmallVector<Value> upper, lower;
        for (int64_t s = 0; s < steps; ++s) {
          int64_t inPart = s % (partChannels / 4);
          if (inPart == 0) {
            upper = readSlab(top, s / (partChannels / 4));
            lower = readSlab(bottom, s / (partChannels / 4));
          }
          Value a = fragment({upper[2 * inPart], lower[2 * inPart],
                              upper[2 * inPart + 1], lower[2 * inPart + 1]});
          Value q = fragment(
              {memref::LoadOp::create(b, loc, queryFragments,
                                      ValueRange{k.index(s), lane, k.index(0)}),
               memref::LoadOp::create(
                   b, loc, queryFragments,
                   ValueRange{k.index(s), lane, k.index(1)})});
          acc = nvgpu::MmaSyncOp::create(b, loc, a, q, acc,
                                         ArrayRef<int64_t>{16, 8, 16});
        }
        // C: rows g and g + 8, columns (query heads) 2t and 2t + 1.
        Value tokens[] = {top, bottom};
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t h = 0; h < 2; ++h) {
            Value local = tokens[i];
            Value head = k.add(k.mul(quad, 2), k.index(h));
            Value store = arith::AndIOp::create(
                b, loc, k.cmp(arith::CmpIPredicate::ult, head, k.index(group)),
                k.cmp(arith::CmpIPredicate::ult, local, count));
            Value dot =
                vector::ExtractOp::create(b, loc, acc, ArrayRef<int64_t>{i, h});
            k.ifThen(store, [&] {
              memref::StoreOp::create(b, loc, finishScore(dot), scores,
                                      ValueRange{head, local});
            });
          }
        return {};
      });
}

gpu::GPUFuncOp mlir::kvc::buildSplitKernel(OpBuilder &b, Location loc,
                                           gpu::GPUModuleOp module,
                                           const SplitKernelSpec &spec) {
  MLIRContext *ctx = b.getContext();
  const int64_t group = spec.queryHeads / spec.kvHeads, d = spec.headDim;
  const unsigned threads = spec.blockThreads, split = spec.splitTokens;
  Type f32 = b.getF32Type(), index = b.getIndexType();
  Type ptr = LLVM::LLVMPointerType::get(ctx);
  auto queryType = MemRefType::get({spec.batch, spec.queryHeads, 1, d},
                                   spec.queryElementType);
  auto shared = [&](ArrayRef<int64_t> shape) {
    return MemRefType::get(shape, f32, MemRefLayoutAttrInterface(),
                           workgroupSpace(ctx));
  };
  const ValuePassShape valueShape = valuePassShape(d, threads, group);

  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToEnd(module.getBody());
  auto type = b.getFunctionType(
      {queryType, ptr, ptr, ptr, ptr, index, b.getI32Type(), index, index}, {});
  SmallVector<Type> workgroup = {shared({group, d}), shared({group, split}),
                                 shared({threads / 32})};
  if (spec.keyProduct == KeyProduct::MMA)
    workgroup.push_back(
        MemRefType::get({d / 16, 32, 2}, VectorType::get({2}, b.getF16Type()),
                        MemRefLayoutAttrInterface(), workgroupSpace(ctx)));
  auto func =
      gpu::GPUFuncOp::create(b, loc, spec.name, type, workgroup, TypeRange{});
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(
      b.getDenseI32ArrayAttr({int32_t(threads), 1, 1}));
  // Without a minimum, ptxas caps registers at the occupancy shared memory
  // allows (up to 16 blocks of 128 threads: 32 registers) and spills the
  // unrolled dequantization; with one it uses the registers that minimum
  // leaves (docs/gpu-kernels.md).
  if (spec.minBlocksPerSM)
    func->setAttr("nvvm.minctasm", b.getI32IntegerAttr(spec.minBlocksPerSM));
  b.setInsertionPointToStart(&func.getBody().front());
  KernelBuilder k{b, loc};

  Value query = func.getArgument(0);
  Value kPool = k.global(func.getArgument(1));
  Value vPool = k.global(func.getArgument(2));
  Value records = k.global(func.getArgument(3));
  Value workspace = k.global(func.getArgument(4));
  // splitSize: the tokens of a split, at most spec.splitTokens (which sizes
  // the scores in shared memory); the host picks it per call.
  Value splits = func.getArgument(5), ok = func.getArgument(6),
        runFirst = func.getArgument(7), splitSize = func.getArgument(8);
  Value sharedQuery = func.getWorkgroupAttributions()[0];
  Value scores = func.getWorkgroupAttributions()[1];
  Value scratch = func.getWorkgroupAttributions()[2];

  Value tid = k.threadId();
  Value splitIndex = k.blockId(gpu::Dimension::x);
  Value kvHead = k.add(k.blockId(gpu::Dimension::y), runFirst);
  Value batch = k.blockId(gpu::Dimension::z);

  k.ifThen(k.cmp(arith::CmpIPredicate::ne, ok, k.i32(0)), [&] {
    // The sequence's record (kvc_rt_gpu_sequence, 32 bytes).
    ByteViews record{records};
    Value recordBase = k.mul(batch, 32);
    auto field = [&](Type t, int64_t offset) {
      return record.load(b, loc, t, k.add(recordBase, k.index(offset)));
    };
    auto pointerField = [&](int64_t offset) -> Value {
      return LLVM::IntToPtrOp::create(
          b, loc, LLVM::LLVMPointerType::get(ctx, 1),
          field(b.getI64Type(), offset));
    };
    Value pageTable = pointerField(0);
    Value kResidual = pointerField(8), vResidual = pointerField(16);
    Value numTokens = k.toIndex(field(b.getI32Type(), 24));
    Value compressed = k.toIndex(field(b.getI32Type(), 28));

    // This split's tokens, within the sliding window if any.
    Value splitStart = k.mul(splitIndex, splitSize);
    Value start = splitStart;
    if (spec.window) {
      // Keys at positions >= n - window are visible to the query at n - 1.
      Value windowStart = arith::SubIOp::create(
          b, loc, numTokens, k.minU(numTokens, k.index(*spec.window)));
      start = k.maxU(start, windowStart);
    }
    Value end = k.minU(k.add(splitStart, splitSize), numTokens);
    Value count = arith::SelectOp::create(
        b, loc, k.cmp(arith::CmpIPredicate::ult, start, end),
        k.sub(end, start), k.index(0));

    PageReader keyReader(spec.encoding.key, d, spec.pageTokens,
                         ByteViews{kPool},
                         getOrCreateFP8Table(b, loc, module, spec.encoding.key),
                         spec.codeToFloat);
    // The tensor-core pass reads 16 channels of a lane's slab at once.
    if (spec.keyProduct == KeyProduct::MMA)
      keyReader.setMaxUnrolledSpan(16);
    PageReader valueReader(
        spec.encoding.value, d, spec.pageTokens, ByteViews{vPool},
        getOrCreateFP8Table(b, loc, module, spec.encoding.value),
        spec.codeToFloat);
    SequenceSideView keys{&keyReader,         {pageTable},
                          {kResidual},        compressed,
                          spec.kPageBytes,    spec.kRunOffset,
                          runFirst,           spec.residualHeadBytes,
                          spec.pageTokens};
    SequenceSideView values{&valueReader,      {pageTable},
                            {vResidual},       compressed,
                            spec.vPageBytes,   spec.vRunOffset,
                            runFirst,          spec.residualHeadBytes,
                            spec.pageTokens};

    // 1. The group's query vectors (the tensor-core pass: its B fragments
    // instead).
    Value firstQueryHead = k.mul(kvHead, group);
    if (spec.keyProduct == KeyProduct::MMA) {
      emitQueryFragments(k, spec, query, batch, firstQueryHead,
                         func.getWorkgroupAttributions()[3]);
    } else {
      k.loop(
          tid, k.index(group * d), k.index(threads), {},
          [&](Value i, ValueRange) -> SmallVector<Value> {
            Value j = k.div(i, d), c = k.rem(i, d);
            Value q =
                loadAsF32(b, loc, query,
                          {batch, k.add(firstQueryHead, j), k.index(0), c});
            memref::StoreOp::create(b, loc, q, sharedQuery, ValueRange{j, c});
            return {};
          });
    }
    k.barrier();

    // 2. Scores, scaled and capped as the CPU loops do.
    auto finishScore = [&](Value dot) {
      Value score = k.fmul(dot, k.f32(spec.scale));
      if (spec.softcap) {
        Value cap = k.f32(*spec.softcap);
        score =
            k.fmul(cap, math::TanhOp::create(
                            b, loc, arith::DivFOp::create(b, loc, score, cap)));
      }
      return score;
    };
    if (spec.keyProduct == KeyProduct::MMA) {
      emitTensorCoreScores(k, spec, keys, kvHead, start, count,
                           func.getWorkgroupAttributions()[3], scores,
                           finishScore);
    } else {
      // One token per thread, every query head of the group.
      k.loop(tid, count, k.index(threads), {},
             [&](Value local, ValueRange) -> SmallVector<Value> {
               Value token = k.add(start, local);
               // The token is located once; its key row comes in wide loads.
               SmallVector<Value> zeros(group, k.f32(0.0));
               SmallVector<Value> dots = keys.foldChannels(
                   b, loc, kvHead, token, keyReader.wholeRow(b, loc), zeros,
                   [&](Value firstChannel, std::optional<int64_t>,
                       ArrayRef<Value> keyValues,
                       ValueRange acc) -> SmallVector<Value> {
                     SmallVector<Value> sums(acc);
                     for (auto [i, key] : llvm::enumerate(keyValues))
                       sums = k.accumulateRows(
                           sums, sharedQuery,
                           k.add(firstChannel, k.index(int64_t(i))), key);
                     return sums;
                   });
               for (int64_t j = 0; j < group; ++j)
                 memref::StoreOp::create(b, loc, finishScore(dots[j]), scores,
                                         ValueRange{k.index(j), local});
               return {};
             });
    }
    k.barrier();

    // 3. Softmax statistics per query head.
    double negInf = -std::numeric_limits<double>::infinity();
    SmallVector<Value> maxima, sums;
    for (int64_t j = 0; j < group; ++j) {
      Value row = k.index(j);
      Value partialMax =
          k.loop(tid, count, k.index(threads), {k.f32(negInf)},
                 [&](Value local, ValueRange acc) -> SmallVector<Value> {
                   return {k.fmax(acc[0], memref::LoadOp::create(
                                              b, loc, scores,
                                              ValueRange{row, local}))};
                 })
              .getResult(0);
      Value maximum = k.blockReduce(partialMax, scratch, threads,
                                    [&](Value x, Value y) { return k.fmax(x, y); });
      Value partialSum =
          k.loop(tid, count, k.index(threads), {k.f32(0.0)},
                 [&](Value local, ValueRange acc) -> SmallVector<Value> {
                   Value score = memref::LoadOp::create(
                       b, loc, scores, ValueRange{row, local});
                   Value weight = math::ExpOp::create(
                       b, loc, arith::SubFOp::create(b, loc, score, maximum));
                   memref::StoreOp::create(b, loc, weight, scores,
                                           ValueRange{row, local});
                   return {k.fadd(acc[0], weight)};
                 })
              .getResult(0);
      maxima.push_back(maximum);
      sums.push_back(k.blockReduce(partialSum, scratch, threads,
                                   [&](Value x, Value y) { return k.fadd(x, y); }));
    }
    // The weights written above are read by other threads below.
    k.barrier();

    // 4./5. Weighted values: a span of channels and a token lane per
    // thread, every query head; the lanes' sums are combined with shuffles
    // (lanes are the low bits of the thread index) and lane 0 writes the
    // partial output (b, hq, split, c) at ((b*Hq + hq) * splits + split) * D.
    const int64_t width = valueShape.spanChannels,
                  lanes = valueShape.tokenLanes;
    Value lane = k.rem(tid, lanes);
    Value rowIndex = k.add(k.mul(batch, spec.queryHeads), firstQueryHead);
    for (int64_t part = 0; part < valueShape.spansPerThread; ++part) {
      Value spanIndex =
          k.add(k.div(tid, lanes), k.index(part * threads / lanes));
      ChannelSpan span{k.mul(spanIndex, width), width};
      SmallVector<Value> zeros(group * width, k.f32(0.0));
      scf::ForOp sumsOverTokens = k.loop(
          lane, count, k.index(lanes), zeros,
          [&](Value local, ValueRange acc) -> SmallVector<Value> {
            SmallVector<Value> weights;
            for (int64_t j = 0; j < group; ++j)
              weights.push_back(memref::LoadOp::create(
                  b, loc, scores, ValueRange{k.index(j), local}));
            return values.foldChannels(
                b, loc, kvHead, k.add(start, local), span, acc,
                [&](Value, std::optional<int64_t> offset, ArrayRef<Value> chunk,
                    ValueRange sums) -> SmallVector<Value> {
                  // Spans are unrolled: the chunk's offset is known.
                  SmallVector<Value> next(sums);
                  for (auto [i, v] : llvm::enumerate(chunk))
                    for (int64_t j = 0; j < group; ++j) {
                      int64_t at = j * width + *offset + int64_t(i);
                      next[at] = k.fma(weights[j], v, sums[at]);
                    }
                  return next;
                });
          });
      SmallVector<Value> totals(sumsOverTokens.getResults());
      for (int64_t offset = lanes / 2; offset >= 1; offset /= 2)
        for (Value &total : totals)
          total = k.fadd(total, gpu::ShuffleOp::create(b, loc, total,
                                                       k.i32(offset), k.i32(32),
                                                       gpu::ShuffleMode::XOR)
                                    .getShuffleResult());
      k.ifThen(k.cmp(arith::CmpIPredicate::eq, lane, k.index(0)), [&] {
        for (int64_t j = 0; j < group; ++j) {
          Value slot =
              k.add(k.mul(k.add(rowIndex, k.index(j)), splits), splitIndex);
          Value rowBase = k.mul(k.add(k.mul(slot, d), span.first), 4);
          for (int64_t i = 0; i < width; ++i)
            k.storeF32(workspace, k.add(rowBase, k.index(4 * i)),
                       totals[j * width + i]);
        }
      });
    }
    k.ifThen(k.cmp(arith::CmpIPredicate::eq, tid, k.index(0)), [&] {
      Value statsBase = k.mul(k.mul(splits, spec.batch * spec.queryHeads),
                              d * 4);
      for (int64_t j = 0; j < group; ++j) {
        Value slot = k.add(k.mul(k.add(rowIndex, k.index(j)), splits),
                           splitIndex);
        Value at = k.add(statsBase, k.mul(slot, 8));
        k.storeF32(workspace, at, maxima[j]);
        k.storeF32(workspace, k.add(at, k.index(4)), sums[j]);
      }
    });
  });
  gpu::ReturnOp::create(b, loc);
  return func;
}

gpu::GPUFuncOp mlir::kvc::buildCombineKernel(OpBuilder &b, Location loc,
                                             gpu::GPUModuleOp module,
                                             StringRef name, int64_t batch,
                                             int64_t queryHeads,
                                             int64_t headDim,
                                             Type outElementType) {
  MLIRContext *ctx = b.getContext();
  Type ptr = LLVM::LLVMPointerType::get(ctx);
  auto outType = MemRefType::get({batch, queryHeads, 1, headDim},
                                 outElementType);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToEnd(module.getBody());
  auto type = b.getFunctionType(
      {ptr, outType, b.getIndexType(), b.getI32Type()}, {});
  auto func = gpu::GPUFuncOp::create(b, loc, name, type);
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  func.setKnownBlockSizeAttr(
      b.getDenseI32ArrayAttr({int32_t(headDim), 1, 1}));
  b.setInsertionPointToStart(&func.getBody().front());
  KernelBuilder k{b, loc};
  Value workspace = k.global(func.getArgument(0));
  Value out = func.getArgument(1), splits = func.getArgument(2),
        ok = func.getArgument(3);
  Value channel = k.threadId();
  Value head = k.blockId(gpu::Dimension::x);
  Value batchIndex = k.blockId(gpu::Dimension::y);
  Value row = k.add(k.mul(batchIndex, queryHeads), head);
  ByteViews ws{workspace};
  Value statsBase = k.mul(k.mul(splits, batch * queryHeads), headDim * 4);
  auto stat = [&](Value split, int64_t which) {
    Value slot = k.add(k.mul(row, splits), split);
    return ws.load(b, loc, b.getF32Type(),
                   k.add(statsBase, k.add(k.mul(slot, 8), k.index(which * 4))));
  };
  // A layout mismatch poisons the output rather than leave it plausible;
  // the split kernels wrote nothing then.
  auto floatType = cast<FloatType>(b.getF32Type());
  auto merge = scf::IfOp::create(
      b, loc, k.cmp(arith::CmpIPredicate::ne, ok, k.i32(0)),
      [&](OpBuilder &tb, Location) {
        OpBuilder::InsertionGuard inner(b);
        b.setInsertionPoint(tb.getInsertionBlock(), tb.getInsertionPoint());
        double negInf = -std::numeric_limits<double>::infinity();
        Value maximum =
            k.loop(k.index(0), splits, k.index(1), {k.f32(negInf)},
                   [&](Value s, ValueRange acc) -> SmallVector<Value> {
                     return {k.fmax(acc[0], stat(s, 0))};
                   })
                .getResult(0);
        scf::ForOp merged = k.loop(
            k.index(0), splits, k.index(1), {k.f32(0.0), k.f32(0.0)},
            [&](Value s, ValueRange acc) -> SmallVector<Value> {
              // Empty splits have maximum -inf and sum 0: weight 0.
              Value weight = math::ExpOp::create(
                  b, loc, arith::SubFOp::create(b, loc, stat(s, 0), maximum));
              Value slot = k.add(k.mul(row, splits), s);
              Value partial = ws.load(
                  b, loc, b.getF32Type(),
                  k.mul(k.add(k.mul(slot, headDim), channel), 4));
              return {k.fadd(acc[0], k.fmul(weight, stat(s, 1))),
                      k.fadd(acc[1], k.fmul(weight, partial))};
            });
        scf::YieldOp::create(
            b, loc,
            ValueRange{arith::DivFOp::create(b, loc, merged.getResult(1),
                                             merged.getResult(0))});
      },
      [&](OpBuilder &eb, Location) {
        OpBuilder::InsertionGuard inner(b);
        b.setInsertionPoint(eb.getInsertionBlock(), eb.getInsertionPoint());
        Value nan = arith::ConstantFloatOp::create(
            b, loc, floatType, APFloat::getNaN(floatType.getFloatSemantics()));
        scf::YieldOp::create(b, loc, ValueRange{nan});
      });
  Value result = merge.getResult(0);
  if (outElementType != result.getType())
    result = arith::TruncFOp::create(b, loc, outElementType, result);
  memref::StoreOp::create(b, loc, result, out,
                          ValueRange{batchIndex, head, k.index(0), channel});
  gpu::ReturnOp::create(b, loc);
  return func;
}
