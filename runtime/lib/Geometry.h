//===- Geometry.h - Sizes and arena layout of a cache -----------*- C++ -*-===//
//
// Everything about a cache that follows from its configuration alone: the
// validated encodings of each layer and KV head, the block byte sizes and
// offsets of every head in a page and the page sizes (from the
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

/// One KV head of a layer: its encoding and its blocks within a page
/// (layout.md 4.1: the heads' blocks back to back, in head order).
struct HeadGeometry {
  kvc_rt_encoding cEncoding;
  numerics::CacheEncoding encoding;
  numerics::BlockLayout k; ///< this head's K block
  numerics::BlockLayout v;
  size_t kBlockOffset = 0; ///< sum of the K blocks of the heads before it
  size_t vBlockOffset = 0;
};

struct LayerGeometry {
  /// One entry per KV head, or a single one (offsets 0) standing for every
  /// head when the config gives one encoding per layer; use head().
  std::vector<HeadGeometry> heads;
  /// Every head has the same encoding (then head h's block is at
  /// h * blockBytes, as before per-head encodings existed).
  bool uniformHeads = true;
  size_t kPageBytes = 0; ///< sum of the heads' K block sizes
  size_t vPageBytes = 0;
  size_t maxBlockBytes = 0; ///< largest K or V block of any head
  size_t residualHeadBytes = 0; ///< residualStagingBytes(R, D); 0 if R == 0
  size_t residualSlotBytes = 0; ///< kv_heads * residualHeadBytes (one side)

  // Arena offsets of this layer's regions.
  size_t kPoolOffset = 0;
  size_t vPoolOffset = 0;
  size_t kResidualOffset = 0;
  size_t vResidualOffset = 0;
  size_t deviceTableOffset = 0; ///< only with a device mirror

  /// R, the same for every head (buildGeometry checks it).
  unsigned residual() const { return heads.front().encoding.residual; }
  /// KV head `h` with its block offsets.
  HeadGeometry head(uint32_t h) const {
    if (heads.size() > 1)
      return heads[h];
    HeadGeometry g = heads.front();
    g.kBlockOffset = size_t{h} * g.k.blockBytes;
    g.vBlockOffset = size_t{h} * g.v.blockBytes;
    return g;
  }
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
  /// .encodings not owned (use `layers`); .encodings_per_layer normalized
  /// to 1 or kv_heads.
  kvc_rt_cache_config config;
  std::vector<LayerGeometry> layers;
  uint32_t maxPagesPerSequence = 0;
  bool deviceMirror = false; ///< page tables mirrored in backend memory
  size_t arenaBytes = 0;
  size_t poolBytes = 0;
  size_t stagingBytes = 0;
  HostMetadataSizes host;

  kvc_rt_footprint footprint() const;
};

/// The config's encodings_per_layer with 0 read as 1 (not validated).
inline uint32_t encodingsPerLayer(const kvc_rt_cache_config &config) {
  return config.encodings_per_layer ? config.encodings_per_layer : 1;
}

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
