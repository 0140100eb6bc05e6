//===- AttendKernels.cpp - decode attention kernels for kvc.attend --------===//
//
// Split-K decode attention (flash-decoding). A block of the split kernel
// owns a split of consecutive tokens of one (sequence, KV head) (at most
// `splitTokens`; the host sizes splits per call) and the GQA query heads of
// that KV head:
//
//   0. with l2-prefetch, the split's page blocks are requested into L2
//      (the values the byte budget leaves out after step 2: L2Prefetch.h);
//   1. the query heads' vectors go to shared memory;
//   2. each thread takes tokens tid, tid + threads, ...: it dequantizes the
//      token's key once and accumulates its dot product with every query
//      head, storing the scores in shared memory (or, with
//      KeyProduct::MMA, each warp takes tiles of 16 tokens and the dot
//      products run on tensor cores: emitTensorCoreScores);
//   3. one block reduction gives every query head's maximum, the scores
//      become exp(score - max) and a second reduction their sums;
//   4. each thread owns a span of up to 8 channels and a token lane: it
//      reads its span of the lane's tokens in one load where the layout
//      allows and accumulates the weighted sum of every query head; the
//      lanes of a span are adjacent threads of a warp, summed by shuffles
//      (or, with ValueProduct::MMA, each warp takes tiles of 8 tokens and
//      the weighted sums run on tensor cores: emitTensorCoreValues);
//   5. the unnormalized output, the maximum and the sum go to the
//      workspace. The combine kernel merges splits with a log-sum-exp.
//
// f32 throughout, like the CPU loops; keys and values are read with
// PageReader, the one definition of the element decoding.
//
//===----------------------------------------------------------------------===//

#include "AttendKernels.h"
#include "KernelBuilder.h"
#include "Staging.h"
#include "TensorCorePasses.h"

#include "../KVCToLoops/Lowering.h"
#include "../KVCToLoops/PageReader.h"

#include "kvc/Numerics/FoldedScales.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/ADT/bit.h"

#include <limits>

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

Value mlir::kvc::workspaceBytes(OpBuilder &b, Location loc, int64_t batch,
                                int64_t queryHeads, int64_t headDim,
                                Value splits) {
  KernelBuilder k{b, loc};
  return k.mul(splits, batch * queryHeads * (headDim + 2) * 4);
}

std::optional<ValuePassShape>
mlir::kvc::valuePassShape(int64_t headDim, int64_t threads, int64_t group) {
  if (headDim <= 0 || headDim % 32 != 0 || threads % 32 != 0)
    return std::nullopt;
  const int64_t widest = valueSpanChannels(headDim, group);
  // Spans and lanes that fill the block.
  for (int64_t span = widest; span >= 1; span /= 2) {
    int64_t spans = headDim / span;
    if (spans <= threads && threads % spans == 0 && threads / spans <= 32)
      return ValuePassShape{span, threads / spans, 1, threads};
    if (spans > threads && spans % threads == 0)
      return ValuePassShape{span, 1, spans / threads, threads};
  }
  // Otherwise (head_dim 96 at 128 threads: 12 spans of 8) as many lanes a
  // span as fit, a power of two, when the threads they take are whole
  // warps: the shuffles that add the lanes' sums need every lane of a warp.
  for (int64_t span = widest; span >= 1; span /= 2) {
    int64_t spans = headDim / span;
    if (spans > threads)
      break;
    int64_t lanes = std::min<int64_t>(
        32, int64_t(llvm::bit_floor(uint64_t(threads / spans))));
    if ((spans * lanes) % 32 == 0)
      return ValuePassShape{span, lanes, 1, spans * lanes};
  }
  return std::nullopt;
}

/// The module's dynamic shared memory: an external zero-sized array, which
/// NVPTX prints as `.extern .shared .align 16 .b8 name[]` and the lowering
/// of gpu.dynamic_shared_memory takes as its symbol. (Left to that
/// lowering, the symbol is an internal definition, which the NVPTX backend
/// demotes to a static one-byte variable that overlaps the others.)
static void declareDynamicSharedMemory(OpBuilder &b, Location loc,
                                       gpu::GPUModuleOp module) {
  constexpr StringLiteral name = "kvc_dynamic_shared";
  if (module.lookupSymbol(name))
    return;
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(module.getBody());
  LLVM::GlobalOp::create(b, loc, LLVM::LLVMArrayType::get(b.getI8Type(), 0),
                         /*isConstant=*/false, LLVM::Linkage::External, name,
                         /*value=*/Attribute(),
                         /*alignment=*/NVVM::kSharedMemoryAlignmentBit / 8,
                         /*addrSpace=*/unsigned(NVVM::NVVMMemorySpace::Shared));
}

MemRefType mlir::kvc::valueSumsType(MLIRContext *ctx, unsigned blockThreads,
                                    int64_t queryHeadsPerKVHead,
                                    int64_t headDim) {
  return MemRefType::get({blockThreads / 32, queryHeadsPerKVHead, headDim},
                         Float32Type::get(ctx), MemRefLayoutAttrInterface(),
                         workgroupSpace(ctx));
}

int64_t mlir::kvc::sharedBufferBytes(MemRefType type) {
  Type element = type.getElementType();
  int64_t elementBits;
  if (auto vector = dyn_cast<VectorType>(element))
    elementBits = vector.getNumElements() *
                  vector.getElementType().getIntOrFloatBitWidth();
  else
    elementBits = element.getIntOrFloatBitWidth();
  return type.getNumElements() * elementBits / 8;
}

int64_t SplitWorkgroup::bytes() const {
  int64_t total = 0;
  for (Type buffer : buffers)
    total += sharedBufferBytes(cast<MemRefType>(buffer));
  return total;
}

bool mlir::kvc::softmaxSumsValueZeros(
    ValueProduct product, const ::kvc::numerics::SideEncoding &values,
    int64_t headDim) {
  return product == ValueProduct::MMA &&
         num::foldsValueScales(values, size_t(headDim));
}

SplitWorkgroup mlir::kvc::splitWorkgroup(
    MLIRContext *ctx, int64_t queryHeadsPerKVHead, int64_t headDim,
    unsigned splitTokens, unsigned blockThreads, KeyProduct keyProduct,
    bool staticValueSums, bool valueZeroSums, bool fusedCombine) {
  auto shared = [&](ArrayRef<int64_t> shape, Type element) {
    return MemRefType::get(shape, element, MemRefLayoutAttrInterface(),
                           workgroupSpace(ctx));
  };
  Type f32 = Float32Type::get(ctx);
  SplitWorkgroup workgroup;
  workgroup.buffers = {shared({queryHeadsPerKVHead, headDim}, f32),
                       shared({queryHeadsPerKVHead, splitTokens}, f32),
                       shared({(valueZeroSums ? 3 : 2) * queryHeadsPerKVHead *
                               (blockThreads / 32)},
                              f32)};
  // Optional attributions follow: the key pass's query fragments (a lane's
  // two fp16 pairs of each 16-channel slice) and the value pass's sums.
  if (keyProduct == KeyProduct::MMA) {
    workgroup.queryFragmentsAt = workgroup.buffers.size();
    workgroup.buffers.push_back(shared(
        {headDim / 16, 32, 2}, VectorType::get({2}, Float16Type::get(ctx))));
  }
  if (staticValueSums) {
    workgroup.valueSumsAt = workgroup.buffers.size();
    workgroup.buffers.push_back(
        valueSumsType(ctx, blockThreads, queryHeadsPerKVHead, headDim));
  }
  if (fusedCombine) {
    workgroup.combineAt = workgroup.buffers.size();
    llvm::append_range(workgroup.buffers,
                       combineBufferTypes(ctx, blockThreads, headDim));
    workgroup.buffers.push_back(shared({3}, IntegerType::get(ctx, 32)));
  }
  return workgroup;
}

gpu::GPUFuncOp mlir::kvc::buildSplitKernel(OpBuilder &b, Location loc,
                                           gpu::GPUModuleOp module,
                                           const SplitKernelSpec &spec) {
  MLIRContext *ctx = b.getContext();
  const int64_t group = spec.queryHeads / spec.kvHeads, d = spec.headDim;
  const unsigned threads = spec.blockThreads, split = spec.splitTokens;
  Type index = b.getIndexType();
  Type ptr = LLVM::LLVMPointerType::get(ctx);
  auto queryType = MemRefType::get({spec.batch, spec.queryHeads, 1, d},
                                   spec.queryElementType);
  // CheckLowerable rejected the head_dims without one.
  const ValuePassShape valueShape = *valuePassShape(d, threads, group);

  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToEnd(module.getBody());
  const bool fusedCombine = spec.combine == CombineMode::Fused;
  SmallVector<Type> arguments = {queryType,      ptr,   ptr,  ptr, ptr, index,
                                 b.getI32Type(), index, index};
  if (fusedCombine)
    arguments.append({MemRefType::get({spec.batch, spec.queryHeads, 1, d},
                                      spec.outElementType),
                      ptr});
  const unsigned maskArgument = arguments.size();
  if (spec.mask)
    arguments.push_back(spec.mask);
  auto type = b.getFunctionType(arguments, {});
  // With stages, the tensor-core value pass's sums live in the stage buffer.
  const StageBufferBytes stageBytes = stageBufferBytes(spec);
  const SplitWorkgroup workgroup = splitWorkgroup(
      ctx, group, d, split, threads, spec.keyProduct,
      spec.valueProduct == ValueProduct::MMA && !stageBytes.total(),
      softmaxSumsValueZeros(spec.valueProduct, spec.encoding.value, d),
      fusedCombine);
  const std::optional<unsigned> queryFragmentsAt = workgroup.queryFragmentsAt,
                                valuePartialsAt = workgroup.valueSumsAt;
  const MemRefType partialsType = valueSumsType(ctx, threads, group, d);
  if (stageBytes.total())
    declareDynamicSharedMemory(b, loc, module);
  auto func = gpu::GPUFuncOp::create(b, loc, spec.name, type, workgroup.buffers,
                                     TypeRange{});
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
  // With stages, one buffer of dynamic shared memory (16-byte aligned, as
  // cp.async's and ld.shared.v4's accesses need; the launch gives its
  // size, which may pass the 48 KB of static shared memory) holds the key
  // stages from its start, and the value stages and then the value pass's
  // sums over them: the key pass is done with its stages at the barrier
  // before the softmax (every copy waited for).
  Value stageBuffer;
  if (stageBytes.total())
    stageBuffer = gpu::DynamicSharedMemoryOp::create(
        b, loc,
        MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                        MemRefLayoutAttrInterface(), workgroupSpace(ctx)));

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
  // The output row (and workspace row) of the KV head's first query head.
  // Emitted where it is used: kept in a register across the passes, the
  // block coordinates made ptxas spill the largest kernels.
  auto firstOutputRow = [&] {
    return k.add(k.mul(batch, spec.queryHeads), k.mul(kvHead, group));
  };

  // combine=fused: the merge's operands (emitFusedCombine).
  std::optional<CombineSite> mergeSite;
  Value counters;
  if (fusedCombine) {
    ArrayRef<BlockArgument> buffers = func.getWorkgroupAttributions();
    const unsigned at = *workgroup.combineAt;
    mergeSite = CombineSite{spec.batch,
                            spec.queryHeads,
                            d,
                            threads,
                            spec.outElementType,
                            workspace,
                            func.getArgument(9),
                            buffers[at],
                            buffers[at + 1],
                            buffers[at + 2]};
    // A generic pointer: the merge makes it global where it counts (a
    // cast here would be one more register across the passes).
    counters = func.getArgument(10);
  }
  auto validLayout = [&] {
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
    Value compressed = k.toIndex(field(b.getI32Type(), 28));

    // This split's tokens [start, start + count), within the sliding window
    // if any.
    auto splitRange = [&]() -> std::pair<Value, Value> {
      Value numTokens = k.toIndex(field(b.getI32Type(), 24));
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
      return {start, count};
    };
    auto [start, count] = splitRange();

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
    // The tensor-core value pass reads a lane's slab of D / 8 channels.
    if (spec.valueProduct == ValueProduct::MMA)
      valueReader.setMaxUnrolledSpan(d / 8);
    keyReader.setInlinePTX(true);
    valueReader.setInlinePTX(true);
    keyReader.setFoldedCodes(spec.foldedCodes);
    valueReader.setFoldedCodes(spec.foldedCodes);
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

    // 0. The split's pages on their way to L2 while the queries load.
    emitL2Prefetch(k, L2PrefetchPhase::AtStart, keys, values, kvHead, start,
                   count, spec.l2Prefetch, spec.l2PrefetchBytes, threads);

    // 1. The group's query vectors (the tensor-core pass: its B fragments
    // instead).
    Value firstQueryHead = k.mul(kvHead, group);
    // The factor the key pass's dot products carry (tensor-core passes
    // that fold the keys' scales into the queries: 1/16).
    const double queryScale = spec.keyProduct == KeyProduct::MMA
                                  ? tensorCoreQueryScale(keyReader)
                                  : 1.0;
    if (spec.keyProduct == KeyProduct::MMA) {
      emitQueryFragments(k, spec, query, batch, firstQueryHead,
                         func.getWorkgroupAttributions()[*queryFragmentsAt],
                         queryScale);
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
    auto capScore = [&](Value score) {
      if (!spec.softcap)
        return score;
      Value cap = k.f32(*spec.softcap);
      return k.fmul(cap, math::TanhOp::create(
                             b, loc, arith::DivFOp::create(b, loc, score, cap)));
    };
    auto finishScore = [&](Value dot) {
      return capScore(k.fmul(dot, k.f32(spec.scale / queryScale)));
    };
    if (spec.keyProduct == KeyProduct::MMA) {
      emitTensorCoreScores(k, spec, keys, kvHead, start, count,
                           func.getWorkgroupAttributions()[*queryFragmentsAt],
                           spec.keyStages ? stageBuffer : Value(), scores,
                           spec.scale / queryScale, capScore);
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
    // The value pages the budget left out at the start on their way to L2
    // during the softmax (the keys' are read by now). The range comes from
    // the record again, as for the tensor-core value pass.
    if (spec.l2Prefetch != L2Prefetch::None) {
      auto [prefetchStart, prefetchCount] = splitRange();
      emitL2Prefetch(k, L2PrefetchPhase::AfterKeyPass, keys, values, kvHead,
                     prefetchStart, prefetchCount, spec.l2Prefetch,
                     spec.l2PrefetchBytes, threads);
    }
    k.barrier();

    // 3. Softmax statistics of every query head: one pass over the scores
    // and one block reduction (of all heads at once) for the maxima, the
    // same for the weights and their sums, each in its own part of the
    // scratch. The sums' barrier, which every thread meets after writing
    // its weights, also makes the weights visible to the value pass.
    double negInf = -std::numeric_limits<double>::infinity();
    auto headLoop = [&](ArrayRef<Value> inits,
                        function_ref<Value(int64_t, Value, Value)> step) {
      scf::ForOp loop =
          k.loop(tid, count, k.index(threads), inits,
                 [&](Value local, ValueRange acc) -> SmallVector<Value> {
                   SmallVector<Value> next;
                   for (int64_t j = 0; j < group; ++j)
                     next.push_back(step(j, local, acc[j]));
                   return next;
                 });
      return SmallVector<Value>(loop.getResults());
    };
    auto loadScore = [&](int64_t j, Value local) -> Value {
      return memref::LoadOp::create(b, loc, scores,
                                    ValueRange{k.index(j), local});
    };
    // A mask operand is added to the scores here, and the sums stored
    // back: each thread weighs later the very scores it reads now. A
    // sequence whose token count is not the mask's (its size may come from
    // another tensor, such as attention_mask) gets NaN scores, so NaN
    // outputs, as on the CPU, rather than reads past the mask.
    Value mask, maskFits;
    if (spec.mask) {
      mask = func.getArgument(maskArgument);
      maskFits =
          k.cmp(arith::CmpIPredicate::eq, k.toIndex(field(b.getI32Type(), 24)),
                memref::DimOp::create(b, loc, mask, 3));
    }
    auto maskedScore = [&](int64_t j, Value local) -> Value {
      Value score = loadScore(j, local);
      if (!spec.mask)
        return score;
      Value maskHead = spec.mask.getDimSize(1) == 1
                           ? k.index(0)
                           : k.add(firstQueryHead, k.index(j));
      Value token = k.add(start, local);
      auto bias = scf::IfOp::create(
          b, loc, maskFits,
          [&](OpBuilder &nb, Location nl) {
            scf::YieldOp::create(
                nb, nl,
                loadAsF32(nb, nl, mask, {batch, maskHead, k.index(0), token}));
          },
          [&](OpBuilder &nb, Location nl) {
            scf::YieldOp::create(nb, nl,
                                 Value(arith::ConstantFloatOp::create(
                                     nb, nl, nb.getF32Type(),
                                     APFloat::getNaN(APFloat::IEEEsingle()))));
          });
      score = k.fadd(score, bias.getResult(0));
      memref::StoreOp::create(b, loc, score, scores,
                              ValueRange{k.index(j), local});
      return score;
    };
    SmallVector<Value> maxima = k.blockReduce(
        headLoop(SmallVector<Value>(group, k.f32(negInf)),
                 [&](int64_t j, Value local, Value acc) {
                   return k.fmax(acc, maskedScore(j, local));
                 }),
        scratch, threads, [&](Value x, Value y) { return k.fmax(x, y); });
    // The tensor-core value pass takes the weights split into fp16 hi and
    // lo parts (packWeightHalves), split here once a weight and times
    // tensorCoreWeightScale; where it folds the values' scales, the
    // weights times their token's scale, and every head's sum of weight *
    // zero joins the sums' reduction.
    const bool splitsWeights = spec.valueProduct == ValueProduct::MMA;
    const bool foldsScales =
        softmaxSumsValueZeros(spec.valueProduct, spec.encoding.value, d);
    const double weightScale =
        splitsWeights ? tensorCoreWeightScale(spec) : 1.0;
    const int64_t warps = threads / 32, sumsFirst = group * warps;
    // A split whose every score is -inf (a mask's -inf over all its tokens,
    // e.g. left padding) must weigh them 0, not exp(-inf - -inf) = NaN:
    // their exponents subtract 0 there (as FlashAttention does). Its
    // maximum stays -inf in the workspace, so the merge gives it weight 0.
    SmallVector<Value> exponentShifts;
    for (Value maximum : maxima)
      exponentShifts.push_back(
          spec.mask
              ? Value(arith::SelectOp::create(
                    b, loc,
                    arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ,
                                          maximum, k.f32(negInf)),
                    k.f32(0.0), maximum))
              : maximum);
    scf::ForOp weightLoop = k.loop(
        tid, count, k.index(threads),
        SmallVector<Value>((foldsScales ? 2 : 1) * group, k.f32(0.0)),
        [&](Value local, ValueRange acc) -> SmallVector<Value> {
          Value scale, zero;
          if (foldsScales)
            std::tie(scale, zero) =
                foldedValueTerms(k, values, kvHead, k.add(start, local), d / 8);
          // What each weight is multiplied by before its split: once a
          // token.
          Value weightFactor;
          if (splitsWeights)
            weightFactor = foldsScales ? k.fmul(scale, k.f32(weightScale))
                                       : k.f32(weightScale);
          SmallVector<Value> next(acc);
          for (int64_t j = 0; j < group; ++j) {
            Value weight = math::ExpOp::create(
                b, loc,
                arith::SubFOp::create(b, loc, loadScore(j, local),
                                      exponentShifts[j]));
            Value stored = weight;
            if (splitsWeights)
              stored = packWeightHalves(k, k.fmul(weight, weightFactor));
            memref::StoreOp::create(b, loc, stored, scores,
                                    ValueRange{k.index(j), local});
            next[j] = k.fadd(acc[j], weight);
            if (foldsScales)
              next[group + j] =
                  LLVM::FMAOp::create(b, loc, weight, zero, acc[group + j]);
          }
          return next;
        });
    SmallVector<Value> sums = k.blockReduce(
        SmallVector<Value>(weightLoop.getResults()), scratch, threads,
        [&](Value x, Value y) { return k.fadd(x, y); }, sumsFirst);
    // The zero sums are read again where the value pass needs them.
    sums.resize(group);
    auto zeroSum = [&](Value head) -> Value {
      return k.blockReduced(
          scratch, threads, [&](Value x, Value y) { return k.fadd(x, y); },
          sumsFirst, k.add(head, k.index(group)));
    };

    // 5. The maximum and the sum of every query head go to the workspace
    // now, so that the value pass need not keep them in registers.
    Value rowIndex = firstOutputRow();
    // 6. combine=fused: the last block of the (sequence, KV head) merges.
    Value mergeState =
        fusedCombine
            ? Value(func.getWorkgroupAttributions()[*workgroup.combineAt + 3])
            : Value();
    auto mergeIfLast = [&] {
      if (fusedCombine)
        emitFusedCombine(k, *mergeSite, counters, group, mergeState);
    };
    k.ifThen(k.cmp(arith::CmpIPredicate::eq, tid, k.index(0)), [&] {
      if (fusedCombine)
        recordFusedCombineState(k, mergeState, rowIndex, splits);
      Value statsBase =
          k.mul(k.mul(splits, spec.batch * spec.queryHeads), d * 4);
      for (int64_t j = 0; j < group; ++j) {
        Value slot =
            k.add(k.mul(k.add(rowIndex, k.index(j)), splits), splitIndex);
        Value at = k.add(statsBase, k.mul(slot, 8));
        k.storeF32(workspace, at, maxima[j]);
        k.storeF32(workspace, k.add(at, k.index(4)), sums[j]);
      }
    });

    // 4./5. Weighted values, written as the partial output (b, hq, split,
    // c) at ((b*Hq + hq) * splits + split) * D.
    auto partialAt = [&](Value head, Value channel) -> Value {
      Value slot = k.add(k.mul(k.add(rowIndex, head), splits), splitIndex);
      return k.mul(k.add(k.mul(slot, d), channel), 4);
    };
    if (spec.valueProduct == ValueProduct::MMA) {
      // The range again, from the record: kept in registers across the key
      // pass, ptxas spilled it (4 bytes, one sm_90a variant with both
      // passes on tensor cores).
      auto [valueStart, valueCount] = splitRange();
      emitTensorCoreValues(
          k, spec, values, kvHead, valueStart, valueCount, scores, zeroSum,
          spec.valueStages ? stageBuffer : Value(),
          stageBuffer
              ? Value(memref::ViewOp::create(b, loc, partialsType, stageBuffer,
                                             k.index(stageBytes.values),
                                             ValueRange{}))
              : Value(func.getWorkgroupAttributions()[*valuePartialsAt]),
          [&](Value head, Value channel, Value total) {
            k.storeF32(workspace, partialAt(head, channel), total);
          });
      mergeIfLast();
      return;
    }
    // On CUDA cores: a span of channels and a token lane per thread, every
    // query head; the lanes' sums are combined with shuffles (lanes are the
    // low bits of the thread index) and lane 0 writes them.
    const int64_t width = valueShape.spanChannels,
                  lanes = valueShape.tokenLanes;
    Value lane = k.rem(tid, lanes);
    auto valuePass = [&] {
      for (int64_t part = 0; part < valueShape.spansPerThread; ++part) {
        Value spanIndex =
            k.add(k.div(tid, lanes), k.index(part * threads / lanes));
        ChannelSpan span{k.mul(spanIndex, width), width};
        SmallVector<Value> zeros(group * width, k.f32(0.0));
        scf::ForOp sumsOverTokens =
            k.loop(lane, count, k.index(lanes), zeros,
                   [&](Value local, ValueRange acc) -> SmallVector<Value> {
                     SmallVector<Value> weights;
                     for (int64_t j = 0; j < group; ++j)
                       weights.push_back(memref::LoadOp::create(
                           b, loc, scores, ValueRange{k.index(j), local}));
                     return values.foldChannels(
                         b, loc, kvHead, k.add(start, local), span, acc,
                         [&](Value, std::optional<int64_t> offset,
                             ArrayRef<Value> chunk,
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
            total = k.fadd(
                total, gpu::ShuffleOp::create(b, loc, total, k.i32(offset),
                                              k.i32(32), gpu::ShuffleMode::XOR)
                           .getShuffleResult());
        k.ifThen(k.cmp(arith::CmpIPredicate::eq, lane, k.index(0)), [&] {
          for (int64_t j = 0; j < group; ++j) {
            Value rowBase = partialAt(k.index(j), span.first);
            for (int64_t i = 0; i < width; ++i)
              k.storeF32(workspace, k.add(rowBase, k.index(4 * i)),
                         totals[j * width + i]);
          }
        });
      }
    };
    // Whole warps sit the pass out where the spans do not fill the block.
    if (valueShape.activeThreads == int64_t(threads))
      valuePass();
    else
      k.ifThen(k.cmp(arith::CmpIPredicate::ult, tid,
                     k.index(valueShape.activeThreads)),
               valuePass);
    mergeIfLast();
  };
  Value valid = k.cmp(arith::CmpIPredicate::ne, ok, k.i32(0));
  if (fusedCombine)
    k.ifThenElse(valid, validLayout, [&] {
      emitFusedCombineFailure(k, *mergeSite, group, firstOutputRow(),
                              splitIndex);
    });
  else
    k.ifThen(valid, validLayout);
  gpu::ReturnOp::create(b, loc);
  return func;
}
