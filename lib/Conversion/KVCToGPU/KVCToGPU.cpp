//===- KVCToGPU.cpp - kvc.attend as generated GPU kernels -----------------===//
//
// Decode attention becomes a split-K kernel per run of KV heads with one
// encoding (AttendKernels.cpp) plus a combine kernel, or the combine fused
// into the split kernels (CombineKernel.cpp), in a gpu.module, and host
// code that checks the runtime's layout and launches them with
// gpu.launch_func. Caches become runtime bindings, as on the CPU path.
// What has no kernel is rejected at the op first (CheckLowerable.cpp).
//
//===----------------------------------------------------------------------===//

#include "AppendKernel.h"
#include "AttendKernels.h"
#include "GPULowering.h"
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

  // A mask operand goes to the split kernels as it is (they check its
  // token count against each sequence's).
  Value mask;
  if (Value maskTensor = op.getMask()) {
    auto maskTensorType = cast<RankedTensorType>(maskTensor.getType());
    mask = bufferization::ToBufferOp::create(
        rewriter, loc,
        MemRefType::get(maskTensorType.getShape(),
                        maskTensorType.getElementType()),
        maskTensor, /*read_only=*/true);
  }
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
    spec.foldedCodes = lowering.foldedCodes;
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
    if (mask)
      spec.mask = cast<MemRefType>(mask.getType());
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
    if (mask)
      arguments.push_back(mask);
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
  std::optional<FoldedCodes> foldedCodes = parseChoice<FoldedCodes>(
      module, "mma-codes", mmaCodes,
      {{"subnormal", FoldedCodes::Subnormal}, {"normal", FoldedCodes::Normal}});
  std::optional<L2Prefetch> prefetch =
      parseChoice<L2Prefetch>(module, "l2-prefetch", l2Prefetch,
                              {{"none", L2Prefetch::None},
                               {"lines", L2Prefetch::Lines},
                               {"bulk", L2Prefetch::Bulk}});
  std::optional<CombineMode> combineMode = parseChoice<CombineMode>(
      module, "combine", combine,
      {{"kernel", CombineMode::Kernel}, {"fused", CombineMode::Fused}});
  if (!codes || !products || !valueProducts || !foldedCodes || !prefetch ||
      !combineMode)
    return signalPassFailure();
  // mma-codes only changes the tensor-core passes' reads: set without them
  // it would do nothing, which a user asking for it would not expect.
  if (*foldedCodes != FoldedCodes::Subnormal && *products != KeyProduct::MMA &&
      *valueProducts != ValueProduct::MMA) {
    emitError(module.getLoc())
        << "kvc-lower-to-gpu: mma-codes=" << mmaCodes
        << " changes only the tensor-core passes' reads: it needs "
           "key-product=mma or value-product=mma";
    return signalPassFailure();
  }
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
      *foldedCodes,
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
