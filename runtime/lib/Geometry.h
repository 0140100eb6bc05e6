//===- Geometry.h - Sizes and arena layout of a cache -----------*- C++ -*-===//
//
// Everything about a cache that follows from its configuration alone: the
// validated encodings of each layer, the page/block byte sizes (from the
// numerics library's computeBlockLayout, the one definition of the page
// layout), where each pool and staging area sits in the arena, and how much
// host metadata the cache allocates. kvc_rt_cache_create, the footprint and
// the capacity planner all use this, so what is planned is what is
// allocated.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_RUNTIME_LIB_GEOMETRY_H
#define KVC_RUNTIME_LIB_GEOMETRY_H

#include "Status.h"

#include "kvc/Numerics/Encoding.h"
#include "kvc/Numerics/Layout.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvc {
namespace rt {

/// Offsets of the arena regions are aligned like this (cudaMalloc's
/// guarantee), so every region start is 16-byte aligned as layout.md needs.
constexpr size_t kRegionAlignment = 256;

/// C encoding -> numerics encoding; INVALID_ARGUMENT naming the field when
/// the kind/axis/format is unknown or an unused field is not 0.
Status convertEncoding(const kvc_rt_encoding &in,
                       numerics::CacheEncoding *out);
/// The inverse: the C form of a numerics encoding (for callers that hold
/// numerics encodings, e.g. kvc-run and the Python bindings).
kvc_rt_side_encoding toCSideEncoding(const numerics::SideEncoding &side);
kvc_rt_encoding toCEncoding(const numerics::CacheEncoding &encoding);
/// convertEncoding + the numerics rules for (head_dim, page_tokens).
Status validateEncoding(const kvc_rt_encoding &in, unsigned headDim,
                        unsigned pageTokens, numerics::CacheEncoding *out);

struct LayerGeometry {
  kvc_rt_encoding cEncoding;
  numerics::CacheEncoding encoding;
  numerics::BlockLayout k; ///< one head's block
  numerics::BlockLayout v;
  size_t kPageBytes = 0; ///< kv_heads * k.blockBytes
  size_t vPageBytes = 0;
  size_t residualHeadBytes = 0; ///< residualStagingBytes(R, D); 0 if R == 0
  size_t residualSlotBytes = 0; ///< kv_heads * residualHeadBytes (one side)

  // Arena offsets of this layer's regions.
  size_t kPoolOffset = 0;
  size_t vPoolOffset = 0;
  size_t kResidualOffset = 0;
  size_t vResidualOffset = 0;
  size_t deviceTableOffset = 0; ///< only with a device mirror

  unsigned residual() const { return encoding.residual; }
};

/// The host arrays a cache allocates, by element count (see Cache.h).
struct HostMetadataSizes {
  size_t perLayerPages = 0;      ///< refcounts + free stack entries
  size_t perLayerTableEntries = 0; ///< max_sequences * max_pages_per_sequence
  size_t perLayerTokenCounts = 0;  ///< max_sequences
  size_t scratchBytes = 0;         ///< host staging buffers of append/gather
  size_t totalBytes = 0;
};

struct CacheGeometry {
  kvc_rt_cache_config config; ///< .encodings not owned: use `layers`
  std::vector<LayerGeometry> layers;
  uint32_t maxPagesPerSequence = 0;
  bool deviceMirror = false; ///< page tables mirrored in backend memory
  size_t arenaBytes = 0;
  size_t poolBytes = 0;
  size_t stagingBytes = 0;
  HostMetadataSizes host;

  kvc_rt_footprint footprint() const;
};

/// Validates `config` (everything but the device's existence) and computes
/// the geometry. The backend's kind decides whether page tables are
/// mirrored (every backend but CPU).
Status buildGeometry(const kvc_rt_cache_config &config, CacheGeometry *out);

/// kvc_rt_plan_capacity.
Status planCapacity(const kvc_rt_cache_config &config, uint64_t budgetBytes,
                    uint32_t tokensPerSequence, kvc_rt_capacity_plan *plan);

/// ceil(a / b)
inline uint64_t ceilDiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

} // namespace rt
} // namespace kvc

#endif // KVC_RUNTIME_LIB_GEOMETRY_H
