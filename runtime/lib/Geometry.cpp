//===- Geometry.cpp - Sizes and arena layout of a cache -------------------===//

#include "Geometry.h"

#include "Backend.h"

#include <algorithm>
#include <limits>

namespace kvc {
namespace rt {

namespace {
using numerics::CacheEncoding;
using numerics::QuantAxis;
using numerics::SideEncoding;

size_t alignRegion(size_t n) { return numerics::alignTo(n, kRegionAlignment); }

/// a * b, or false on overflow of size_t.
bool mulChecked(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > std::numeric_limits<size_t>::max() / a)
    return false;
  *out = a * b;
  return true;
}

Status convertSide(const kvc_rt_side_encoding &in, const char *which,
                   SideEncoding *out) {
  const std::string prefix = std::string(which) + ": ";
  auto unused = [&](const char *field, uint32_t value) -> Status {
    if (value != 0)
      return invalidArgument(prefix + field + " must be 0 for this kind (got " +
                             std::to_string(value) + ")");
    return Status::ok();
  };
  switch (in.kind) {
  case KVC_RT_SIDE_FP16:
    KVC_RT_RETURN_IF_ERROR(unused("bits", in.bits));
    KVC_RT_RETURN_IF_ERROR(unused("axis", in.axis));
    KVC_RT_RETURN_IF_ERROR(unused("group", in.group));
    KVC_RT_RETURN_IF_ERROR(unused("fp8_format", in.fp8_format));
    *out = SideEncoding::plain();
    return Status::ok();
  case KVC_RT_SIDE_QUANT:
    KVC_RT_RETURN_IF_ERROR(unused("fp8_format", in.fp8_format));
    if (in.axis != KVC_RT_AXIS_CHANNEL && in.axis != KVC_RT_AXIS_TOKEN)
      return invalidArgument(prefix + "unknown quantization axis " +
                             std::to_string(in.axis));
    *out = SideEncoding::quantized(in.bits,
                                   in.axis == KVC_RT_AXIS_CHANNEL
                                       ? QuantAxis::Channel
                                       : QuantAxis::Token,
                                   in.group);
    return Status::ok();
  case KVC_RT_SIDE_FP8:
    KVC_RT_RETURN_IF_ERROR(unused("bits", in.bits));
    KVC_RT_RETURN_IF_ERROR(unused("axis", in.axis));
    KVC_RT_RETURN_IF_ERROR(unused("group", in.group));
    if (in.fp8_format != KVC_RT_FP8_E4M3 && in.fp8_format != KVC_RT_FP8_E5M2)
      return invalidArgument(prefix + "unknown fp8 format " +
                             std::to_string(in.fp8_format));
    *out = SideEncoding::fp8Format(in.fp8_format == KVC_RT_FP8_E4M3
                                       ? numerics::FP8Format::E4M3
                                       : numerics::FP8Format::E5M2);
    return Status::ok();
  default:
    return invalidArgument(prefix + "unknown side encoding kind " +
                           std::to_string(in.kind));
  }
}
} // namespace

Status convertEncoding(const kvc_rt_encoding &in, CacheEncoding *out) {
  CacheEncoding enc;
  KVC_RT_RETURN_IF_ERROR(convertSide(in.key, "key", &enc.key));
  KVC_RT_RETURN_IF_ERROR(convertSide(in.value, "value", &enc.value));
  enc.residual = in.residual;
  *out = enc;
  return Status::ok();
}

kvc_rt_side_encoding toCSideEncoding(const SideEncoding &side) {
  kvc_rt_side_encoding result{};
  if (side.isQuant()) {
    result.kind = KVC_RT_SIDE_QUANT;
    result.bits = side.quant.bits;
    result.axis = side.quant.axis == QuantAxis::Channel ? KVC_RT_AXIS_CHANNEL
                                                        : KVC_RT_AXIS_TOKEN;
    result.group = side.quant.group;
  } else if (side.isFP8()) {
    result.kind = KVC_RT_SIDE_FP8;
    result.fp8_format = side.fp8 == numerics::FP8Format::E4M3
                            ? KVC_RT_FP8_E4M3
                            : KVC_RT_FP8_E5M2;
  } else {
    result.kind = KVC_RT_SIDE_FP16;
  }
  return result;
}

kvc_rt_encoding toCEncoding(const CacheEncoding &encoding) {
  return {toCSideEncoding(encoding.key), toCSideEncoding(encoding.value),
          encoding.residual};
}

Status validateEncoding(const kvc_rt_encoding &in, unsigned headDim,
                        unsigned pageTokens, CacheEncoding *out) {
  CacheEncoding enc;
  KVC_RT_RETURN_IF_ERROR(convertEncoding(in, &enc));
  // The numerics library's rules are the definition; never restate them.
  std::string err = numerics::validateCacheEncoding(enc, headDim);
  if (err.empty()) {
    err = numerics::validatePageConfig(enc.key, headDim, pageTokens);
    if (!err.empty())
      err = "key: " + err;
  }
  if (err.empty()) {
    err = numerics::validatePageConfig(enc.value, headDim, pageTokens);
    if (!err.empty())
      err = "value: " + err;
  }
  if (!err.empty())
    return invalidArgument(err);
  *out = enc;
  return Status::ok();
}

namespace {
/// The heads of layer `l`: their validated encodings (one shared R) and
/// block offsets within a page; the page sizes are the sums.
Status buildLayerHeads(const kvc_rt_cache_config &c, uint32_t l,
                       uint32_t perLayer, LayerGeometry *out) {
  LayerGeometry lg;
  lg.heads.resize(perLayer);
  for (uint32_t h = 0; h < perLayer; ++h) {
    HeadGeometry &hg = lg.heads[h];
    const std::string where =
        "layer " + std::to_string(l) +
        (perLayer == 1 ? std::string() : " head " + std::to_string(h));
    hg.cEncoding = c.encodings[size_t{l} * perLayer + h];
    Status s = validateEncoding(hg.cEncoding, c.head_dim, c.page_tokens,
                                &hg.encoding);
    if (!s.isOk())
      return invalidArgument(where + ": " + s.message());
    if (h > 0 && hg.encoding.residual != lg.heads[0].encoding.residual)
      return invalidArgument(
          where + ": residual " + std::to_string(hg.encoding.residual) +
          " differs from head 0's residual " +
          std::to_string(lg.heads[0].encoding.residual) +
          " (all heads of a layer share one residual window)");
    hg.k = numerics::computeBlockLayout(hg.encoding.key, c.head_dim,
                                        c.page_tokens);
    hg.v = numerics::computeBlockLayout(hg.encoding.value, c.head_dim,
                                        c.page_tokens);
    lg.uniformHeads &= hg.encoding == lg.heads[0].encoding;
    hg.kBlockOffset = lg.kPageBytes;
    hg.vBlockOffset = lg.vPageBytes;
    lg.kPageBytes += hg.k.blockBytes;
    lg.vPageBytes += hg.v.blockBytes;
    lg.maxBlockBytes =
        std::max({lg.maxBlockBytes, hg.k.blockBytes, hg.v.blockBytes});
  }
  // The one encoding stands for every head.
  if (perLayer == 1 &&
      (!mulChecked(c.kv_heads, lg.kPageBytes, &lg.kPageBytes) ||
       !mulChecked(c.kv_heads, lg.vPageBytes, &lg.vPageBytes)))
    return invalidArgument("the configuration's sizes overflow 64 bits");
  *out = std::move(lg);
  return Status::ok();
}
} // namespace

kvc_rt_footprint CacheGeometry::footprint() const {
  kvc_rt_footprint f;
  f.backend_bytes = arenaBytes;
  f.pool_bytes = poolBytes;
  f.staging_bytes = stagingBytes;
  f.host_metadata_bytes = host.totalBytes;
  return f;
}

Status buildGeometry(const kvc_rt_cache_config &config, CacheGeometry *out) {
  const kvc_rt_cache_config &c = config;
  if (c.backend != KVC_RT_BACKEND_CPU && c.backend != KVC_RT_BACKEND_CUDA &&
      c.backend != KVC_RT_BACKEND_CPU_STAGED)
    return invalidArgument("unknown backend " + std::to_string(c.backend));
  // Only "not compiled in" is a property of the configuration; a missing
  // device is reported when the cache is created.
  if (c.backend == KVC_RT_BACKEND_CUDA && !cudaSupportCompiled())
    return cudaBackendAvailable(c.device);
  struct Positive {
    const char *name;
    uint32_t value;
  };
  for (const Positive &p :
       {Positive{"num_layers", c.num_layers}, Positive{"kv_heads", c.kv_heads},
        Positive{"head_dim", c.head_dim},
        Positive{"page_tokens", c.page_tokens},
        Positive{"max_sequences", c.max_sequences},
        Positive{"max_tokens", c.max_tokens},
        Positive{"pages_per_layer", c.pages_per_layer}})
    if (p.value == 0)
      return invalidArgument(std::string(p.name) + " must be positive");
  if (!c.encodings)
    return nullPointer("config.encodings");
  const uint32_t layerEncodings = encodingsPerLayer(c);
  if (layerEncodings != 1 && layerEncodings != c.kv_heads)
    return invalidArgument("encodings_per_layer must be 1 (one encoding per "
                           "layer) or kv_heads (" +
                           std::to_string(c.kv_heads) +
                           ", one per KV head), got " +
                           std::to_string(c.encodings_per_layer));
  // Page indices are int32 (-1 marks an empty page-table entry) and slots
  // share a 64-bit sequence id with a 32-bit generation.
  if (c.pages_per_layer > uint32_t(std::numeric_limits<int32_t>::max()))
    return invalidArgument("pages_per_layer must be < 2^31");
  if (c.max_sequences > uint32_t(std::numeric_limits<int32_t>::max()))
    return invalidArgument("max_sequences must be < 2^31");

  CacheGeometry g;
  g.config = c;
  g.config.encodings = nullptr;
  g.config.encodings_per_layer = layerEncodings;
  g.maxPagesPerSequence =
      static_cast<uint32_t>(ceilDiv(c.max_tokens, c.page_tokens));
  g.deviceMirror = c.backend != KVC_RT_BACKEND_CPU;

  const Status tooLarge =
      invalidArgument("the configuration's sizes overflow 64 bits");
  size_t tableEntries;
  if (!mulChecked(c.max_sequences, g.maxPagesPerSequence, &tableEntries))
    return tooLarge;
  size_t offset = 0;
  size_t maxBlock = 0, maxResidualHead = 0;
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    LayerGeometry lg;
    KVC_RT_RETURN_IF_ERROR(buildLayerHeads(c, l, layerEncodings, &lg));
    if (lg.residual() > 0)
      lg.residualHeadBytes =
          numerics::residualStagingBytes(lg.residual(), c.head_dim);
    lg.residualSlotBytes = size_t{c.kv_heads} * lg.residualHeadBytes;
    maxBlock = std::max(maxBlock, lg.maxBlockBytes);
    maxResidualHead = std::max(maxResidualHead, lg.residualHeadBytes);

    size_t kPool, vPool, kStaging, vStaging;
    if (!mulChecked(c.pages_per_layer, lg.kPageBytes, &kPool) ||
        !mulChecked(c.pages_per_layer, lg.vPageBytes, &vPool) ||
        !mulChecked(c.max_sequences, lg.residualSlotBytes, &kStaging) ||
        kPool > (size_t(1) << 62) || vPool > (size_t(1) << 62) ||
        kStaging > (size_t(1) << 62) || tableEntries > (size_t(1) << 60))
      return tooLarge;
    vStaging = kStaging;
    lg.kPoolOffset = offset;
    offset += alignRegion(kPool);
    lg.vPoolOffset = offset;
    offset += alignRegion(vPool);
    lg.kResidualOffset = offset;
    offset += alignRegion(kStaging);
    lg.vResidualOffset = offset;
    offset += alignRegion(vStaging);
    g.poolBytes += kPool + vPool;
    g.stagingBytes += kStaging + vStaging;
    if (g.deviceMirror) {
      lg.deviceTableOffset = offset;
      offset += alignRegion(tableEntries * sizeof(int32_t));
    }
    if (offset > (size_t(1) << 62))
      return tooLarge;
    g.layers.push_back(lg);
  }
  g.arenaBytes = offset;

  // Host metadata (Cache.h allocates exactly these arrays).
  HostMetadataSizes &h = g.host;
  h.perLayerPages = c.pages_per_layer;
  h.perLayerTableEntries = tableEntries;
  h.perLayerTokenCounts = c.max_sequences;
  h.scratchBytes = size_t{c.page_tokens} * c.head_dim * sizeof(float) +
                   maxResidualHead + maxBlock;
  const size_t perLayer = h.perLayerPages * 2 * sizeof(uint32_t) +
                          h.perLayerTableEntries * sizeof(int32_t) +
                          h.perLayerTokenCounts * sizeof(uint32_t);
  // Per sequence slot: generation, live flag (as uint32) and free-list entry;
  // plus one empty page-table row (the -1s copied to the mirror on free).
  const size_t perSlot = 3 * sizeof(uint32_t);
  h.totalBytes = perLayer * c.num_layers + perSlot * c.max_sequences +
                 g.maxPagesPerSequence * sizeof(int32_t) + h.scratchBytes;
  if (c.backend == KVC_RT_BACKEND_CUDA)
    h.totalBytes += kCudaUploadBufferBytes; // pinned

  *out = std::move(g);
  return Status::ok();
}

Status planCapacity(const kvc_rt_cache_config &config, uint64_t budgetBytes,
                    uint32_t tokensPerSequence, kvc_rt_capacity_plan *plan) {
  if (tokensPerSequence == 0)
    return invalidArgument("tokens_per_sequence must be positive");
  kvc_rt_cache_config c = config;
  c.max_tokens = tokensPerSequence;
  c.max_sequences = 1;
  c.pages_per_layer = 1;
  CacheGeometry probe;
  KVC_RT_RETURN_IF_ERROR(buildGeometry(c, &probe));

  // Pages a sequence holds at its longest, per layer: only compressed
  // tokens occupy pages (the residual tail lives in staging).
  uint64_t pagesPerSequence = 0;
  uint64_t perSequenceBytes = 0;
  for (const LayerGeometry &lg : probe.layers) {
    const uint64_t compressed =
        numerics::compressedTokenCount(tokensPerSequence, lg.residual());
    pagesPerSequence =
        std::max(pagesPerSequence, ceilDiv(compressed, c.page_tokens));
  }
  for (const LayerGeometry &lg : probe.layers) {
    perSequenceBytes += pagesPerSequence * (lg.kPageBytes + lg.vPageBytes) +
                        2 * lg.residualSlotBytes;
    if (probe.deviceMirror)
      perSequenceBytes += probe.maxPagesPerSequence * sizeof(int32_t);
  }

  auto geometryFor = [&](uint64_t sequences, CacheGeometry *g) -> bool {
    kvc_rt_cache_config t = c;
    t.max_sequences = static_cast<uint32_t>(sequences);
    t.pages_per_layer =
        static_cast<uint32_t>(std::max<uint64_t>(1, sequences * pagesPerSequence));
    return buildGeometry(t, g).isOk() && g->arenaBytes <= budgetBytes;
  };

  // The footprint grows with the sequence count: binary search the largest
  // count that fits, bounded by the page-index and slot limits.
  const uint64_t indexLimit = uint64_t(std::numeric_limits<int32_t>::max());
  uint64_t hi = perSequenceBytes ? budgetBytes / perSequenceBytes + 1
                                 : indexLimit;
  hi = std::min(hi, indexLimit);
  if (pagesPerSequence)
    hi = std::min(hi, indexLimit / pagesPerSequence);
  uint64_t lo = 0; // largest count known to fit (0 always "fits")
  CacheGeometry best;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo + 1) / 2;
    CacheGeometry g;
    if (geometryFor(mid, &g)) {
      lo = mid;
      best = std::move(g);
    } else {
      hi = mid - 1;
    }
  }
  kvc_rt_capacity_plan p{};
  p.pages_per_sequence = static_cast<uint32_t>(pagesPerSequence);
  p.bytes_per_sequence = perSequenceBytes;
  if (lo > 0) {
    p.max_sequences = static_cast<uint32_t>(lo);
    p.pages_per_layer = best.config.pages_per_layer;
    p.footprint = best.footprint();
  }
  *plan = p;
  return Status::ok();
}

} // namespace rt
} // namespace kvc
