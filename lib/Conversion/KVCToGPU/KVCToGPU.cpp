//===- KVCToGPU.cpp - kvc.attend as generated GPU kernels -----------------===//
//
// Decode attention becomes a split-K kernel per run of KV heads with one
// encoding plus a combine kernel (AttendKernels.cpp), in a gpu.module, and
// host code that checks the runtime's layout and launches them with
// gpu.launch_func. Caches become runtime bindings, as on the CPU path.
//
//===----------------------------------------------------------------------===//

#include "AppendKernel.h"
#include "AttendKernels.h"
#include "QuantizeKernel.h"
#include "Staging.h"

#include "../KVCToLoops/Lowering.h"
#include "../KVCToLoops/RuntimeABI.h"

#include "kvc/Conversion/Passes.h"
#include "kvc/Numerics/Layout.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Transforms/DialectConversion.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/MathExtras.h"

namespace mlir {
namespace kvc {
#define GEN_PASS_DEF_KVCLOWERTOGPU
#include "kvc/Conversion/Passes.h.inc"
} // namespace kvc
} // namespace mlir

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

/// Runtime entry points of the GPU path (runtime/include/kvc_runtime_binding.h).
/// kCheckLayout's twin that accepts device backends (the CPU one refuses
/// them: CPU loops cannot read device pages).
static constexpr StringLiteral kGPUCheckLayout = "kvc_rt_mlir_gpu_check_layout";
static constexpr StringLiteral kGPUSequences = "kvc_rt_mlir_gpu_sequences";
static constexpr StringLiteral kGPUWorkspace = "kvc_rt_mlir_gpu_workspace";
static constexpr StringLiteral kGPUCounters = "kvc_rt_mlir_gpu_counters";
static constexpr StringLiteral kGPUStream = "kvc_rt_mlir_gpu_stream";
static constexpr StringLiteral kGPUSynchronize = "kvc_rt_mlir_gpu_synchronize";
static constexpr StringLiteral kKernelModule = "kvc_kernels";

/// True when the kvc op (or a call emitted in its place) sits in the single
/// block of a function: its stream call then dominates every later kvc op
/// and the return, so the function's ops form one chain of streams
/// (orderOpStreams). Ops nested in regions synchronize their own stream.
static bool joinsStreamChain(Operation *op) {
  auto func = dyn_cast_or_null<func::FuncOp>(op->getParentOp());
  return func && func.getBody().hasOneBlock();
}

namespace {

/// Where an op's kernels run: the binding's cache stream, so that they
/// follow the runtime's copies (pages, records) without a host wait. The
/// stream enters the launches as the async token they depend on: gpu-to-llvm
/// lowers a token to the stream it stands for and launches on it without
/// creating, synchronizing or destroying a stream (which it does for a
/// launch without a token). `after` (the previous op's stream) is filled in
/// by orderOpStreams once every op is lowered.
struct OpStream {
  Value binding;
  Value token;

  OpStream(OpBuilder &b, Location loc, const LoweringContext &ctx,
           Value binding)
      : binding(binding) {
    Type ptr = LLVM::LLVMPointerType::get(b.getContext());
    Value stream = ctx.call(b, loc, kGPUStream, ptr,
                            {binding, LLVM::ZeroOp::create(b, loc, ptr)});
    token = UnrealizedConversionCastOp::create(
                b, loc, gpu::AsyncTokenType::get(b.getContext()), stream)
                .getResult(0);
  }

  /// A launch behind the previous ones, with `dynamicSharedBytes` of
  /// dynamic shared memory.
  void launch(OpBuilder &b, Location loc, gpu::GPUFuncOp kernel,
              gpu::KernelDim3 grid, gpu::KernelDim3 block, ValueRange arguments,
              int64_t dynamicSharedBytes = 0) {
    Value dynamicShared;
    if (dynamicSharedBytes)
      dynamicShared = arith::ConstantIntOp::create(b, loc, b.getI32Type(),
                                                   dynamicSharedBytes);
    token = gpu::LaunchFuncOp::create(
                b, loc, kernel, grid, block, dynamicShared, arguments,
                gpu::AsyncTokenType::get(b.getContext()), ValueRange{token})
                .getAsyncToken();
  }

  /// After the op's launches: an op outside the function's chain waits for
  /// its kernels itself.
  void finish(OpBuilder &b, Location loc, const LoweringContext &ctx,
              Operation *op) const {
    if (!joinsStreamChain(op))
      ctx.call(b, loc, kGPUSynchronize, TypeRange{}, {binding});
  }
};

struct GPULowering {
  LoweringContext context;
  unsigned splitTokens, splitBlocks, blockThreads, minBlocksPerSM;
  CodeToFloat codeToFloat;
  KeyProduct keyProduct;
  ValueProduct valueProduct;
  L2Prefetch l2Prefetch;
  uint64_t l2PrefetchBytes;
  unsigned keyStages, valueStages;
  CombineMode combine;
  /// Bytes of shared memory a split block may take (static and dynamic).
  unsigned maxSharedMemory;
  gpu::GPUModuleOp kernels;
  mutable unsigned nextKernel = 0;
  /// kvc.quantize ops to lower (checkLowerable counts them).
  unsigned quantizeOps = 0;
};

/// kvc.quantize -> a launch of its quantize kernel, a thread per group.
struct QuantizeToLaunch : public OpConversionPattern<QuantizeOp> {
  QuantizeToLaunch(const TypeConverter &converter, MLIRContext *context,
                   const GPULowering &lowering)
      : OpConversionPattern(converter, context), lowering(lowering) {}

  LogicalResult
  matchAndRewrite(QuantizeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    num::SideEncoding side = op.getEncoding().toNumerics();
    QuantizeBuffers buffers(rewriter, op);
    auto typeOf = [](Value buffer) {
      return cast<MemRefType>(buffer.getType());
    };
    MemRefType paramsType = typeOf(buffers.scales);
    gpu::GPUFuncOp kernel = buildQuantizeKernel(
        rewriter, loc, lowering.kernels,
        "quantize" + std::to_string(lowering.nextKernel++), side,
        typeOf(buffers.input), typeOf(buffers.codes), paramsType,
        lowering.blockThreads, lowering.minBlocksPerSM);
    auto index = [&](int64_t v) -> Value {
      return arith::ConstantIndexOp::create(rewriter, loc, v);
    };
    int64_t groups = paramsType.getNumElements();
    SmallVector<Value> arguments = {buffers.input, buffers.codes,
                                    buffers.scales};
    if (buffers.zeros)
      arguments.push_back(buffers.zeros);
    gpu::LaunchFuncOp::create(
        rewriter, loc, kernel,
        gpu::KernelDim3{index(llvm::divideCeil(groups, lowering.blockThreads)),
                        index(1), index(1)},
        gpu::KernelDim3{index(lowering.blockThreads), index(1), index(1)},
        /*dynamicSharedMemorySize=*/Value(), arguments);
    buffers.replace(rewriter, op);
    return success();
  }

private:
  const GPULowering &lowering;
};

/// kvc.append -> layout checks and the reservation (emitReservedAppend),
/// then an append kernel launch per run of KV heads with one encoding.
struct AppendToLaunch : public OpConversionPattern<AppendOp> {
  AppendToLaunch(const TypeConverter &converter, MLIRContext *context,
                 const GPULowering &lowering)
      : OpConversionPattern(converter, context), lowering(lowering) {}

  LogicalResult
  matchAndRewrite(AppendOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    const LoweringContext &ctx = lowering.context;
    auto index = [&](int64_t v) -> Value {
      return arith::ConstantIndexOp::create(rewriter, loc, v);
    };
    std::string prefix = "append" + std::to_string(lowering.nextKernel++);
    Value binding = adaptor.getCache();
    OpStream stream(rewriter, loc, ctx, binding);
    emitReservedAppend(
        rewriter, op, ctx, kGPUCheckLayout, binding,
        [&](const ReservedAppend &r) {
          auto keysType = cast<MemRefType>(r.keys.getType());
          unsigned run = 0;
          for (HeadRunRange heads : getHeadRuns(r.pages)) {
            AppendKernelSpec spec;
            spec.name = prefix + "_run" + std::to_string(run++);
            spec.pages = &r.pages;
            spec.runFirst = heads.first;
            spec.headDim = r.headDim;
            spec.pageTokens = ctx.pageTokens;
            spec.residualHeadBytes = r.residualHeadBytes;
            spec.keys = keysType;
            spec.values = cast<MemRefType>(r.values.getType());
            spec.blockThreads = lowering.blockThreads;
            spec.minBlocksPerSM = lowering.minBlocksPerSM;
            gpu::GPUFuncOp kernel =
                buildAppendKernel(rewriter, loc, lowering.kernels, spec);
            SmallVector<Value> arguments = {r.records, r.kPool, r.vPool, r.keys,
                                            r.values};
            stream.launch(rewriter, loc, kernel,
                          gpu::KernelDim3{index(heads.last - heads.first),
                                          index(keysType.getDimSize(0)),
                                          index(2)},
                          gpu::KernelDim3{index(lowering.blockThreads),
                                          index(1), index(1)},
                          arguments);
          }
        });
    stream.finish(rewriter, loc, ctx, op);
    rewriter.replaceOp(op, binding);
    return success();
  }

private:
  const GPULowering &lowering;
};

/// kvc.attend -> layout checks, then the split and combine launches.
struct AttendToLaunch : public OpConversionPattern<AttendOp> {
  AttendToLaunch(const TypeConverter &converter, MLIRContext *context,
                 const GPULowering &lowering)
      : OpConversionPattern(converter, context), lowering(lowering) {}

  LogicalResult
  matchAndRewrite(AttendOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override;

private:
  const GPULowering &lowering;
};

struct KVCLowerToGPUPass
    : public mlir::kvc::impl::KVCLowerToGPUBase<KVCLowerToGPUPass> {
  using Base::Base;
  void runOnOperation() override;
};

} // namespace

LogicalResult
AttendToLaunch::matchAndRewrite(AttendOp op, OpAdaptor adaptor,
                                ConversionPatternRewriter &rewriter) const {
  Location loc = op.getLoc();
  const LoweringContext &ctx = lowering.context;
  CacheType cacheType = op.getCache().getType();
  RankedTensorType queryType = op.getQuery().getType();
  RankedTensorType resultType = op.getResult().getType();
  const int64_t batch = queryType.getDimSize(0),
                queryHeads = queryType.getDimSize(1),
                kvHeads = cacheType.getNumKVHeads(),
                headDim = cacheType.getHeadDim();
  const SmallVector<num::CacheEncoding> &headEncodings =
      ctx.headEncodings.at(op);
  CachePageLayout pages(headEncodings, headDim, ctx.pageTokens);
  const unsigned residual = headEncodings.front().residual;

  Type i32 = rewriter.getI32Type(), i64 = rewriter.getI64Type();
  Type ptr = LLVM::LLVMPointerType::get(rewriter.getContext());
  Value binding = adaptor.getCache();
  auto index = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(rewriter, loc, v);
  };
  auto nonNull = [&](Value p) -> Value {
    return LLVM::ICmpOp::create(rewriter, loc, LLVM::ICmpPredicate::ne, p,
                                LLVM::ZeroOp::create(rewriter, loc, ptr));
  };

  OpStream stream(rewriter, loc, ctx, binding);
  // The runtime must hold exactly the compiled layout.
  Value ok = emitLayoutCheck(rewriter, loc, ctx, kGPUCheckLayout, binding,
                             pages, residual, kvHeads, headDim);

  Value kPool = ctx.call(rewriter, loc, abi::kPool, ptr,
                         {binding, arith::ConstantIntOp::create(
                                       rewriter, loc, 0, 32)});
  Value vPool = ctx.call(rewriter, loc, abi::kPool, ptr,
                         {binding, arith::ConstantIntOp::create(
                                       rewriter, loc, 1, 32)});
  Value records = ctx.call(rewriter, loc, kGPUSequences, ptr, {binding});

  // Splits cover the longest sequence of the batch.
  Value longest =
      scf::ForOp::create(
          rewriter, loc, index(0), index(batch), index(1), ValueRange{index(0)},
          [&](OpBuilder &b, Location l, Value entry, ValueRange acc) {
            Value tokens = ctx.call(
                b, l, abi::kNumTokens, i64,
                {binding, arith::IndexCastOp::create(b, l, i64, entry)});
            Value n = arith::IndexCastOp::create(b, l, b.getIndexType(),
                                                 tokens);
            scf::YieldOp::create(
                b, l, ValueRange{arith::MaxUIOp::create(b, l, acc[0], n)});
          })
          .getResult(0);
  // Tokens per split: split-tokens, or fewer when that would leave the grid
  // short of split-blocks blocks (small batches, short sequences), since a
  // block's tokens are a serial chain of loads and reductions. Multiples of
  // 32 (a warp's tokens), at least 64.
  Value splitSize;
  if (!lowering.splitBlocks) {
    splitSize = index(lowering.splitTokens);
  } else {
    const int64_t quantum = 32;
    const int64_t smallest = std::min<int64_t>(64, lowering.splitTokens);
    Value work =
        arith::MulIOp::create(rewriter, loc, longest, index(batch * kvHeads));
    Value wanted = arith::CeilDivUIOp::create(rewriter, loc, work,
                                              index(lowering.splitBlocks));
    wanted = arith::MulIOp::create(
        rewriter, loc,
        arith::CeilDivUIOp::create(rewriter, loc, wanted, index(quantum)),
        index(quantum));
    splitSize = arith::MinUIOp::create(
        rewriter, loc, index(lowering.splitTokens),
        arith::MaxUIOp::create(rewriter, loc, wanted, index(smallest)));
  }
  Value splits = arith::MaxUIOp::create(
      rewriter, loc, index(1),
      arith::CeilDivUIOp::create(rewriter, loc, longest, splitSize));
  Value bytes = arith::IndexCastOp::create(
      rewriter, loc, i64,
      workspaceBytes(rewriter, loc, batch, queryHeads, headDim, splits));
  Value workspace = ctx.call(rewriter, loc, kGPUWorkspace, ptr,
                             {binding, bytes});
  ok = arith::AndIOp::create(rewriter, loc, ok, nonNull(records));
  ok = arith::AndIOp::create(rewriter, loc, ok, nonNull(workspace));
  // combine=fused: the split blocks of a (sequence, KV head) count their
  // arrivals, the last one merges.
  const bool fusedCombine = lowering.combine == CombineMode::Fused;
  Value counters;
  if (fusedCombine) {
    counters = ctx.call(rewriter, loc, kGPUCounters, ptr,
                        {binding, arith::ConstantIntOp::create(
                                      rewriter, loc, batch * kvHeads, 64)});
    ok = arith::AndIOp::create(rewriter, loc, ok, nonNull(counters));
  }
  Value ok32 = arith::ExtUIOp::create(rewriter, loc, i32, ok);

  Value query = bufferization::ToBufferOp::create(
      rewriter, loc,
      MemRefType::get(queryType.getShape(), queryType.getElementType()),
      op.getQuery(), /*read_only=*/true);
  auto outType =
      MemRefType::get(resultType.getShape(), resultType.getElementType());
  Value out = memref::AllocOp::create(rewriter, loc, outType);

  // One split kernel per run of KV heads with the same encoding.
  std::string prefix = "attend" + std::to_string(lowering.nextKernel++);
  gpu::KernelDim3 threads{index(lowering.blockThreads), index(1), index(1)};
  unsigned run = 0;
  for (size_t first = 0; first < pages.heads.size();) {
    size_t last = first + 1;
    while (last < pages.heads.size() &&
           pages.heads[last].encoding == pages.heads[first].encoding)
      ++last;
    const HeadPageLayout &layout = pages.heads[first];
    SplitKernelSpec spec;
    spec.name = prefix + "_split" + std::to_string(run++);
    spec.encoding = layout.encoding;
    spec.batch = batch;
    spec.queryHeads = queryHeads;
    spec.kvHeads = kvHeads;
    spec.headDim = headDim;
    spec.pageTokens = ctx.pageTokens;
    spec.kPageBytes = pages.kPageBytes;
    spec.vPageBytes = pages.vPageBytes;
    spec.kRunOffset = layout.kOffset;
    spec.vRunOffset = layout.vOffset;
    spec.residualHeadBytes = num::residualStagingBytes(residual, headDim);
    spec.splitTokens = lowering.splitTokens;
    spec.blockThreads = lowering.blockThreads;
    spec.minBlocksPerSM = lowering.minBlocksPerSM;
    spec.codeToFloat = lowering.codeToFloat;
    spec.keyProduct = lowering.keyProduct;
    spec.valueProduct = lowering.valueProduct;
    spec.l2Prefetch = lowering.l2Prefetch;
    spec.l2PrefetchBytes = lowering.l2PrefetchBytes;
    spec.keyStages = lowering.keyStages;
    spec.valueStages = lowering.valueStages;
    spec.scale = op.getEffectiveScale();
    if (auto softcap = op.getSoftcap())
      spec.softcap = softcap->convertToDouble();
    if (auto window = op.getWindow())
      spec.window = *window;
    spec.queryElementType = queryType.getElementType();
    spec.combine = lowering.combine;
    spec.outElementType = resultType.getElementType();
    gpu::GPUFuncOp kernel =
        buildSplitKernel(rewriter, loc, lowering.kernels, spec);
    SmallVector<Value> arguments = {
        query,     kPool,  vPool, records,
        workspace, splits, ok32,  index(int64_t(first)),
        splitSize};
    if (fusedCombine)
      arguments.append({out, counters});
    stream.launch(
        rewriter, loc, kernel,
        gpu::KernelDim3{splits, index(int64_t(last - first)), index(batch)},
        threads, arguments, stageBufferBytes(spec).total());
    first = last;
  }
  if (!fusedCombine) {
    gpu::GPUFuncOp combine = buildCombineKernel(
        rewriter, loc, lowering.kernels, prefix + "_combine", batch, queryHeads,
        headDim, resultType.getElementType());
    SmallVector<Value> arguments = {workspace, out, splits, ok32};
    stream.launch(rewriter, loc, combine,
                  gpu::KernelDim3{index(queryHeads), index(batch), index(1)},
                  gpu::KernelDim3{index(kCombineThreads), index(1), index(1)},
                  arguments);
  }
  stream.finish(rewriter, loc, ctx, op);
  rewriter.replaceOp(op, bufferization::ToTensorOp::create(
                             rewriter, loc, resultType, out,
                             /*restrict=*/true, /*writable=*/true));
  return success();
}

/// The kernels write an op's tensor results into memref.alloc buffers that
/// buffer-results-to-out-params (kvc-gpu-pipeline) replaces by the caller's
/// out-params, device memory like every tensor of the host code, when the
/// function returns them. Any other result would stay a host allocation
/// that the kernels write and the host code copies: wrong on a GPU (an
/// illegal address), unnoticed in the emulator. So each must be returned,
/// once, by the single-block function the op is in; other ops may read it
/// too (they read the caller's buffer).
static LogicalResult checkResultsReachCaller(Operation *op) {
  auto func = dyn_cast_or_null<func::FuncOp>(op->getParentOp());
  // The function's body, where its return sees the op's results.
  const bool inBody = joinsStreamChain(op);
  for (OpResult result : op->getResults()) {
    if (!isa<TensorType>(result.getType()))
      continue;
    unsigned returned = 0;
    for (OpOperand &use : result.getUses())
      returned += isa<func::ReturnOp>(use.getOwner()) &&
                  use.getOwner()->getParentOp() == func;
    if (inBody && returned == 1)
      continue;
    InFlightDiagnostic diag = op->emitOpError("kvc-lower-to-gpu: result #")
                              << result.getResultNumber();
    if (!inBody)
      diag << " cannot be returned by the function: the op is nested in a "
              "region or in a function of several blocks";
    else if (returned == 0)
      diag << " is not returned by the function";
    else
      diag << " is returned " << returned << " times";
    diag << "; the GPU kernels write their results only into the "
            "function's results (the caller's device buffers), each "
            "returned once from the function's body";
    return failure();
  }
  return success();
}

/// What the kernels do not cover yet is an error at the op, never a
/// fallback; records the encodings of each attention's KV heads.
static LogicalResult checkLowerable(ModuleOp module, GPULowering &lowering) {
  WalkResult result = module.walk([&](Operation *op) -> WalkResult {
    if (auto append = dyn_cast<AppendOp>(op)) {
      if (!append.getKeys().getType().hasStaticShape() ||
          !append.getValues().getType().hasStaticShape()) {
        append.emitOpError(
            "kvc-lower-to-gpu: the appended keys and values must have "
            "static shapes");
        return WalkResult::interrupt();
      }
      FailureOr<SmallVector<num::CacheEncoding>> heads =
          getLowerableHeadEncodings(append, append.getCache(),
                                    lowering.context.pageTokens,
                                    "kvc-lower-to-gpu",
                                    /*allowEviction=*/true);
      if (failed(heads))
        return WalkResult::interrupt();
      if (failed(checkNotReadAfterUpdate(append, "the GPU lowering")))
        return WalkResult::interrupt();
      lowering.context.headEncodings[op] = std::move(*heads);
      return WalkResult::advance();
    }
    if (isa<EvictOp, ForkOp, CacheEmptyOp, DequantizeOp>(op)) {
      op->emitOpError("is not lowered by kvc-lower-to-gpu yet");
      return WalkResult::interrupt();
    }
    if (auto quantize = dyn_cast<QuantizeOp>(op)) {
      if (!quantize.getInput().getType().hasStaticShape()) {
        quantize.emitOpError(
            "kvc-lower-to-gpu: the input must have a static shape");
        return WalkResult::interrupt();
      }
      if (failed(checkResultsReachCaller(quantize)))
        return WalkResult::interrupt();
      ++lowering.quantizeOps;
      return WalkResult::advance();
    }
    auto attend = dyn_cast<AttendOp>(op);
    if (!attend)
      return WalkResult::advance();
    RankedTensorType query = attend.getQuery().getType();
    CacheType cache = attend.getCache().getType();
    auto reject = [&]() {
      InFlightDiagnostic diag = attend.emitOpError("kvc-lower-to-gpu: ");
      return diag;
    };
    if (!query.hasStaticShape() ||
        ShapedType::isDynamic(cache.getNumKVHeads())) {
      reject() << "the query (" << query
               << ") and the cache's KV heads must be static";
      return WalkResult::interrupt();
    }
    if (query.getDimSize(2) != 1) {
      reject() << "only decode attention (one query token) has a kernel; got "
               << query.getDimSize(2) << " query tokens";
      return WalkResult::interrupt();
    }
    if (attend.getMask()) {
      reject() << "attention with a mask operand has no kernel yet";
      return WalkResult::interrupt();
    }
    if (attend.getMass()) {
      reject() << "the attention-mass result (H2O/SnapKV scores) has no "
                  "kernel yet; kvc-lower-to-loops computes it on the CPU";
      return WalkResult::interrupt();
    }
    if (failed(checkResultsReachCaller(attend)))
      return WalkResult::interrupt();
    int64_t headDim = cache.getHeadDim();
    if (headDim % 32 != 0 || headDim > 1024 ||
        (headDim > lowering.blockThreads && headDim % lowering.blockThreads)) {
      reject() << "head_dim " << headDim
               << " must be a multiple of 32, at most 1024, that divides "
               << lowering.blockThreads << " or is a multiple of it";
      return WalkResult::interrupt();
    }
    int64_t group = query.getDimSize(1) / cache.getNumKVHeads();
    // The tensor-core passes' sites: a located error naming the option.
    std::pair<StringRef, std::string> tensorCorePasses[] = {
        {"key-product", lowering.keyProduct == KeyProduct::MMA
                            ? tensorCoreKeysUnsupported(headDim, group)
                            : ""},
        {"value-product", lowering.valueProduct == ValueProduct::MMA
                              ? tensorCoreValuesUnsupported(headDim, group)
                              : ""}};
    for (auto &[option, why] : tensorCorePasses) {
      if (why.empty())
        continue;
      reject() << option << "=mma has no kernel for " << why << "; use "
               << option << "=fma";
      return WalkResult::interrupt();
    }
    // combine=fused adds the merge to the split kernel: with both passes on
    // tensor cores at GQA 7 and 8, head_dim 128, ptxas spilled (sm_90a,
    // 4 to 36 bytes; kvc-gpu-pipeline-fused-combine.test).
    if (lowering.combine == CombineMode::Fused &&
        lowering.keyProduct == KeyProduct::MMA &&
        lowering.valueProduct == ValueProduct::MMA && group > 4 &&
        headDim == 128) {
      reject() << "combine=fused with key-product=mma and value-product=mma "
                  "has no spill-free kernel for "
               << group
               << " query heads per KV head at head_dim 128 (at "
                  "most 4); use combine=kernel";
      return WalkResult::interrupt();
    }
    FailureOr<SmallVector<num::CacheEncoding>> heads =
        getLowerableHeadEncodings(attend, attend.getCache(),
                                  lowering.context.pageTokens,
                                  "kvc-lower-to-gpu");
    if (failed(heads))
      return WalkResult::interrupt();
    // The kernel's static shared memory (at most 48 KB on any GPU), as the
    // kernel lays it out: the tensor-core value pass's sums are in it unless
    // there are stages.
    const bool valueSums = lowering.valueProduct == ValueProduct::MMA;
    const bool stages = lowering.keyStages || lowering.valueStages;
    // (The scratch holds the sums of weight * zero too where a head's
    // value pass folds its scales.)
    const bool valueZeroSums =
        llvm::any_of(*heads, [&](const num::CacheEncoding &head) {
          return softmaxSumsValueZeros(lowering.valueProduct, head.value,
                                       headDim);
        });
    const int64_t staticBytes =
        splitWorkgroup(op->getContext(), group, headDim, lowering.splitTokens,
                       lowering.blockThreads, lowering.keyProduct,
                       /*staticValueSums=*/valueSums && !stages, valueZeroSums,
                       lowering.combine == CombineMode::Fused)
            .bytes();
    const int64_t staticLimit =
        std::min<int64_t>(48 * 1024, lowering.maxSharedMemory);
    if (staticBytes > staticLimit) {
      reject() << group << " query heads per KV head need " << staticBytes
               << " bytes of shared memory with split-tokens="
               << lowering.splitTokens << " (at most " << staticLimit
               << "); lower split-tokens";
      return WalkResult::interrupt();
    }
    // key-stages copies channel-axis token-pair units, value-stages
    // token-axis rows (Staging.h): every KV head's encoding must be read
    // so, and the stage buffer fit beside the rest.
    StageBufferBytes stageBytes;
    for (const num::CacheEncoding &head : *heads) {
      auto readsAs = [](const num::SideEncoding &side, num::QuantAxis axis) {
        return side.isQuant() && side.quant.axis == axis &&
               (side.quant.bits == 2 || side.quant.bits == 4 ||
                side.quant.bits == 8);
      };
      struct Staged {
        StringRef option, pass, product, axis;
        unsigned stages;
        bool mma;
        const num::SideEncoding &side;
        num::QuantAxis quantAxis;
      } staged[] = {{"key-stages", "key", "key-product", "channel",
                     lowering.keyStages, lowering.keyProduct == KeyProduct::MMA,
                     head.key, num::QuantAxis::Channel},
                    {"value-stages", "value", "value-product", "token",
                     lowering.valueStages,
                     lowering.valueProduct == ValueProduct::MMA, head.value,
                     num::QuantAxis::Token}};
      for (const Staged &s : staged) {
        if (!s.stages || (s.mma && readsAs(s.side, s.quantAxis)))
          continue;
        reject() << s.option << "=" << s.stages << " stages the tensor-core "
                 << s.pass << " pass's " << s.axis << "-axis 2-, 4- and 8-bit "
                 << s.pass << "s (" << s.product << "=mma); this site has "
                 << (!s.mma ? s.product.str() + "=fma"
                            : s.pass.str() + "s '" + s.side.toString() + "'")
                 << "; use " << s.option << "=0";
        return WalkResult::interrupt();
      }
      // Each run of KV heads has its own kernel; the largest must fit.
      const StageBufferBytes headBytes = stageBufferBytes(
          op->getContext(), lowering.blockThreads, group, headDim,
          lowering.keyStages, lowering.valueStages, valueSums, head);
      stageBytes.keys = std::max(stageBytes.keys, headBytes.keys);
      stageBytes.values = std::max(stageBytes.values, headBytes.values);
      stageBytes.valueSums = headBytes.valueSums;
    }
    if (staticBytes + stageBytes.total() > lowering.maxSharedMemory) {
      reject() << "key-stages=" << lowering.keyStages
               << " and value-stages=" << lowering.valueStages << " need "
               << stageBytes.keys << " and " << stageBytes.values
               << " bytes of shared memory beside the kernel's " << staticBytes
               << " and the value sums' " << stageBytes.valueSums
               << " (at most " << lowering.maxSharedMemory
               << " in all: max-shared-memory); lower the stages or "
                  "split-tokens, or raise max-shared-memory to what the "
                  "chip allows";
      return WalkResult::interrupt();
    }
    lowering.context.headEncodings[op] = std::move(*heads);
    return WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

/// Orders the lowered kvc ops of each function. Every op's stream waits
/// for the previous chained op's stream on the device (the `after` operand
/// of kvc_rt_mlir_gpu_stream), so results flow from op to op without host
/// waits even when their caches, and so their streams, differ; with
/// `waitOnReturn` the last chained stream is synchronized before the
/// function returns, so its results are complete then. Quantize launches
/// (synchronous ones, on a stream of their own) wait for the chain first.
static void orderOpStreams(ModuleOp module, const LoweringContext &ctx,
                           bool waitOnReturn) {
  module.walk([&](func::FuncOp func) {
    func::CallOp last;
    bool pending = false;
    auto synchronizeLast = [&](Operation *before) {
      OpBuilder b(before);
      ctx.call(b, before->getLoc(), kGPUSynchronize, TypeRange{},
               {last.getOperand(0)});
    };
    func.walk<WalkOrder::PreOrder>([&](Operation *op) {
      if (auto call = dyn_cast<func::CallOp>(op)) {
        if (call.getCallee() != kGPUStream)
          return;
        // `last` is in the function's block before `call`: it dominates.
        if (last)
          call->setOperand(1, last.getResult(0));
        if (joinsStreamChain(call)) {
          last = call;
          pending = true;
        }
        return;
      }
      auto launch = dyn_cast<gpu::LaunchFuncOp>(op);
      if (launch && !launch.getAsyncToken() && pending) {
        synchronizeLast(launch);
        pending = !joinsStreamChain(launch);
        return;
      }
      if (isa<func::ReturnOp>(op) && pending && waitOnReturn)
        synchronizeLast(op);
    });
  });
}

/// The choice `value` names among `choices` (a string option's words), or
/// an error at `module` that lists them.
template <typename T>
static std::optional<T> parseChoice(ModuleOp module, StringRef option,
                                    StringRef value,
                                    ArrayRef<std::pair<StringRef, T>> choices) {
  for (const auto &[word, choice] : choices)
    if (word == value)
      return choice;
  InFlightDiagnostic diag = emitError(module.getLoc())
                            << "kvc-lower-to-gpu: " << option << " must be ";
  for (auto [i, choice] : llvm::enumerate(choices))
    diag << (i == 0                    ? ""
             : i + 1 == choices.size() ? " or "
                                       : ", ")
         << "'" << choice.first << "'";
  diag << ", not '" << value << "'";
  return std::nullopt;
}

void KVCLowerToGPUPass::runOnOperation() {
  ModuleOp module = getOperation();
  MLIRContext *context = &getContext();
  // The value pass sums token lanes within a warp by shuffles: a power of
  // two of threads keeps the lanes of a channel span inside one warp.
  if (splitTokens == 0 || splitTokens % 32 != 0 || blockThreads < 32 ||
      blockThreads > 1024 || !llvm::isPowerOf2_32(blockThreads)) {
    emitError(module.getLoc())
        << "kvc-lower-to-gpu: split-tokens (" << uint64_t(splitTokens)
        << ") must be a positive multiple of 32 and "
           "block-threads ("
        << uint64_t(blockThreads) << ") a power of two from 32 to 1024";
    return signalPassFailure();
  }
  // An SM holds at most 2048 threads (sm_80 and sm_90).
  if (uint64_t(minBlocksPerSM) * blockThreads > 2048) {
    emitError(module.getLoc())
        << "kvc-lower-to-gpu: min-blocks-per-sm (" << uint64_t(minBlocksPerSM)
        << ") blocks of " << uint64_t(blockThreads)
        << " threads exceed the 2048 threads an SM holds";
    return signalPassFailure();
  }
  std::optional<CodeToFloat> codes = parseChoice<CodeToFloat>(
      module, "code-to-float", codeToFloat,
      {{"bits", CodeToFloat::Bits}, {"convert", CodeToFloat::Convert}});
  std::optional<KeyProduct> products = parseChoice<KeyProduct>(
      module, "key-product", keyProduct,
      {{"fma", KeyProduct::FMA}, {"mma", KeyProduct::MMA}});
  std::optional<ValueProduct> valueProducts = parseChoice<ValueProduct>(
      module, "value-product", valueProduct,
      {{"fma", ValueProduct::FMA}, {"mma", ValueProduct::MMA}});
  std::optional<L2Prefetch> prefetch =
      parseChoice<L2Prefetch>(module, "l2-prefetch", l2Prefetch,
                              {{"none", L2Prefetch::None},
                               {"lines", L2Prefetch::Lines},
                               {"bulk", L2Prefetch::Bulk}});
  std::optional<CombineMode> combineMode = parseChoice<CombineMode>(
      module, "combine", combine,
      {{"kernel", CombineMode::Kernel}, {"fused", CombineMode::Fused}});
  if (!codes || !products || !valueProducts || !prefetch || !combineMode)
    return signalPassFailure();
  if (l2PrefetchBytes == 0) {
    emitError(module.getLoc()) << "kvc-lower-to-gpu: l2-prefetch-bytes must be "
                                  "positive";
    return signalPassFailure();
  }
  for (auto [option, stages] :
       {std::pair<StringRef, unsigned>{"key-stages", keyStages},
        std::pair<StringRef, unsigned>{"value-stages", valueStages}}) {
    if (stages != 1)
      continue;
    emitError(module.getLoc())
        << "kvc-lower-to-gpu: " << option
        << " must be 0 (no staging) or at least 2 (a unit "
           "read while the next is copied), not 1";
    return signalPassFailure();
  }
  // DenseMap's default constructor is explicit: name it.
  GPULowering lowering{
      {pageTokens, decltype(LoweringContext::headEncodings)(), module},
      splitTokens,
      splitBlocks,
      blockThreads,
      minBlocksPerSM,
      *codes,
      *products,
      *valueProducts,
      *prefetch,
      l2PrefetchBytes,
      keyStages,
      valueStages,
      *combineMode,
      maxSharedMemory,
      /*kernels=*/nullptr};
  if (failed(checkLowerable(module, lowering)))
    return signalPassFailure();
  if (lowering.context.headEncodings.empty() && !lowering.quantizeOps)
    return;

  OpBuilder b(context);
  b.setInsertionPointToEnd(module.getBody());
  lowering.kernels = module.lookupSymbol<gpu::GPUModuleOp>(kKernelModule);
  if (!lowering.kernels)
    lowering.kernels =
        gpu::GPUModuleOp::create(b, module.getLoc(), kKernelModule);
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                  b.getUnitAttr());

  TypeConverter converter;
  addCacheToBindingConversion(converter);
  RewritePatternSet patterns(context);
  patterns.add<AppendToLaunch, AttendToLaunch, QuantizeToLaunch>(
      converter, context, lowering);
  if (failed(applyBindingConversion(module, converter, std::move(patterns))))
    return signalPassFailure();
  orderOpStreams(module, lowering.context, waitOnReturn);
  removeHeadEncodings(module);
}
