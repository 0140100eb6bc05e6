//===- CheckLowerable.cpp - What kvc-lower-to-gpu has kernels for ---------===//
//
// Runs before kvc-lower-to-gpu's patterns: every kvc op it cannot lower,
// and every option combination a site has no kernel for (a tensor-core
// pass, shared memory, stages), is a located error that names the option
// to change — never a fallback to another kernel.
//
//===----------------------------------------------------------------------===//

#include "AttendKernels.h"
#include "GPULowering.h"
#include "Staging.h"

#include "kvc/Numerics/Layout.h"

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

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

LogicalResult mlir::kvc::checkLowerable(ModuleOp module,
                                        GPULowering &lowering) {
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
    if (attend.getMass()) {
      reject() << "the attention-mass result (H2O/SnapKV scores) has no "
                  "kernel yet; kvc-lower-to-loops computes it on the CPU";
      return WalkResult::interrupt();
    }
    if (failed(checkResultsReachCaller(attend)))
      return WalkResult::interrupt();
    int64_t headDim = cache.getHeadDim();
    int64_t group = query.getDimSize(1) / cache.getNumKVHeads();
    if (headDim > 1024 ||
        !valuePassShape(headDim, lowering.blockThreads, group)) {
      reject() << "head_dim " << headDim
               << " must be a multiple of 32, at most 1024, whose channels "
                  "whole warps of "
               << lowering.blockThreads
               << " threads divide (64, 96, 128, 192, 256, 512, ...)";
      return WalkResult::interrupt();
    }
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
