//===- CacheReport.cpp - per-layer K/V encodings and KV memory ------------===//
//
// The report users read after compressing a model: which encoding each
// layer's keys and values got and what the cache costs, computed with the
// numerics library's page layout (the bytes the runtime will allocate).
//
//===----------------------------------------------------------------------===//

#include "kvc/Dialect/KVC/Transforms/CacheRoots.h"
#include "kvc/Dialect/KVC/Transforms/EncodingSpec.h"
#include "kvc/Dialect/KVC/Transforms/Passes.h"

#include "kvc/Numerics/Layout.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/ToolOutputFile.h"

namespace mlir {
namespace kvc {
#define GEN_PASS_DEF_KVCCACHEREPORT
#include "kvc/Dialect/KVC/Transforms/Passes.h.inc"
} // namespace kvc
} // namespace mlir

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

namespace {

/// One side (keys or values) of one layer's cache.
struct SideReport {
  std::string encoding;
  /// Amortized bytes per token over all KV heads, metadata included.
  double bytesPerToken;
  /// Bytes for `context` tokens of one sequence, residual staging included.
  uint64_t sequenceBytes;
};

struct LayerReport {
  std::string function;
  unsigned layer;
  int64_t kvHeads, headDim, residual;
  SideReport key, value;
};

struct CacheReportPass
    : public mlir::kvc::impl::KVCCacheReportBase<CacheReportPass> {
  using Base::Base;
  void runOnOperation() override;
};

} // namespace

/// Bytes one side of one layer takes for `tokens` tokens of one sequence:
/// whole pages for the compressed prefix plus the fp16 staging buffer of
/// the residual window, for every KV head.
static SideReport measureSide(SideEncodingAttrInterface side, int64_t kvHeads,
                              unsigned headDim, unsigned residual,
                              unsigned pageTokens, int64_t tokens) {
  num::SideEncoding encoding = side.toNumerics();
  num::BlockLayout layout =
      num::computeBlockLayout(encoding, headDim, pageTokens);
  uint64_t compressed = num::compressedTokenCount(tokens, residual);
  uint64_t pages = (compressed + pageTokens - 1) / pageTokens;
  uint64_t perHead = pages * layout.blockBytes +
                     num::residualStagingBytes(residual, headDim);
  return {formatSideSpec(side),
          kvHeads * num::bytesPerToken(encoding, headDim, pageTokens),
          kvHeads * perHead};
}

static std::string formatBytes(double bytes) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  unsigned unit = 0;
  while (bytes >= 1024.0 && unit + 1 < std::size(units)) {
    bytes /= 1024.0;
    ++unit;
  }
  return llvm::formatv("{0:F2} {1}", bytes, units[unit]);
}

void CacheReportPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (format != "text" && format != "json") {
    emitError(module.getLoc()) << "kvc-cache-report: bad format '" << format
                               << "' (expected text or json)";
    return signalPassFailure();
  }
  if (context < 1 || batch < 0) {
    emitError(module.getLoc())
        << "kvc-cache-report: context must be >= 1 and batch "
           ">= 0";
    return signalPassFailure();
  }

  SmallVector<LayerReport> layers;
  int64_t reportBatch = batch;
  for (auto func : module.getOps<func::FuncOp>()) {
    for (CacheRoot root : collectCacheRoots(func)) {
      auto type = cast<CacheType>(root.value.getType());
      EncodingAttr encoding = type.getEncoding();
      MLIRContext *ctx = &getContext();
      auto plain = cast<SideEncodingAttrInterface>(PlainAttr::get(ctx));
      SideEncodingAttrInterface key = encoding ? encoding.getKey() : plain;
      SideEncodingAttrInterface value = encoding ? encoding.getValue() : plain;
      unsigned residual = encoding ? encoding.getResidual() : 0;
      unsigned headDim = type.getHeadDim();
      for (auto [name, side] : {std::pair{"key", key}, {"value", value}}) {
        std::string problem =
            num::validatePageConfig(side.toNumerics(), headDim, pageTokens);
        if (!problem.empty()) {
          mlir::emitError(root.value.getLoc())
              << "kvc-cache-report: layer " << root.layer << " " << name
              << ": " << problem;
          return signalPassFailure();
        }
      }
      if (batch == 0)
        reportBatch = std::max<int64_t>(
            reportBatch, type.hasDynamicBatch() ? 1 : type.getBatch());
      layers.push_back(
          {func.getSymName().str(), root.layer, type.getNumKVHeads(), headDim,
           residual,
           measureSide(key, type.getNumKVHeads(), headDim, residual,
                       pageTokens, context),
           measureSide(value, type.getNumKVHeads(), headDim, residual,
                       pageTokens, context)});
    }
  }

  uint64_t compressedBytes = 0, fp16Bytes = 0;
  for (const LayerReport &layer : layers) {
    compressedBytes += layer.key.sequenceBytes + layer.value.sequenceBytes;
    fp16Bytes += 2 * uint64_t(context) * layer.kvHeads * layer.headDim * 2;
  }
  compressedBytes *= reportBatch;
  fp16Bytes *= reportBatch;
  double saving =
      fp16Bytes ? 1.0 - double(compressedBytes) / double(fp16Bytes) : 0.0;

  std::string errorMessage;
  auto file = openOutputFile(output.getValue(), &errorMessage);
  if (!file) {
    emitError(module.getLoc()) << "kvc-cache-report: " << errorMessage;
    return signalPassFailure();
  }
  // "-" is stdout for openOutputFile; the IR goes there, so keep the report
  // on stderr.
  llvm::raw_ostream &os = output == "-" ? llvm::errs() : file->os();

  if (format == "json") {
    llvm::json::OStream json(os, /*IndentSize=*/2);
    json.object([&] {
      json.attribute("batch", reportBatch);
      json.attribute("context", int64_t(context));
      json.attribute("page_tokens", int64_t(pageTokens));
      json.attributeArray("layers", [&] {
        for (const LayerReport &layer : layers)
          json.object([&] {
            json.attribute("function", layer.function);
            json.attribute("layer", layer.layer);
            json.attribute("kv_heads", layer.kvHeads);
            json.attribute("head_dim", layer.headDim);
            json.attribute("residual", layer.residual);
            for (auto [name, side] :
                 {std::pair{"key", &layer.key}, {"value", &layer.value}})
              json.attributeObject(name, [&] {
                json.attribute("encoding", side->encoding);
                json.attribute("bytes_per_token", side->bytesPerToken);
                json.attribute("bytes", side->sequenceBytes * reportBatch);
              });
          });
      });
      json.attribute("kv_bytes", compressedBytes);
      json.attribute("fp16_kv_bytes", fp16Bytes);
      json.attribute("saving", saving);
    });
    os << "\n";
  } else {
    os << llvm::formatv("kvc cache report: {0} layers, batch {1} x context "
                        "{2} tokens, {3}-token pages\n",
                        layers.size(), reportBatch, context, pageTokens);
    os << llvm::formatv("{0,5}  {1,-16} {2,10}  {3,-16} {4,10}  {5,8}\n",
                        "layer", "key", "B/token", "value", "B/token",
                        "residual");
    for (const LayerReport &layer : layers)
      os << llvm::formatv("{0,5}  {1,-16} {2,10:F1}  {3,-16} {4,10:F1}  "
                          "{5,8}\n",
                          layer.layer, layer.key.encoding,
                          layer.key.bytesPerToken, layer.value.encoding,
                          layer.value.bytesPerToken, layer.residual);
    os << llvm::formatv("KV cache: {0} ({1} bytes) vs fp16 {2} ({3} bytes): "
                        "{4:F1}% saved, {5:F2}x smaller\n",
                        formatBytes(compressedBytes), compressedBytes,
                        formatBytes(fp16Bytes), fp16Bytes, 100.0 * saving,
                        compressedBytes ? double(fp16Bytes) / compressedBytes
                                        : 0.0);
  }
  if (output != "-")
    file->keep();
  markAllAnalysesPreserved();
}
