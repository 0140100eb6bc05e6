//===- PrefetchCheck.cpp - emulated L2 prefetches against a cache ---------===//

#include "kvc/GPUEmulator/PrefetchCheck.h"
#include "kvc/GPUEmulator/Emulator.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/FormatVariadic.h"

#include <vector>

std::string kvc::gpuemu::checkPrefetches(const kvc_rt_cache *cache,
                                         const kvc_rt_seq *seqs, size_t numSeqs,
                                         PrefetchCounts &counts) {
  std::vector<Prefetch> prefetches = takePrefetches();
  if (prefetches.empty())
    return "";
  kvc_rt_layer_view layer{};
  if (kvc_rt_layer_view_get(cache, 0, &layer) != KVC_RT_OK)
    return std::string("kvc_rt_layer_view_get: ") + kvc_rt_last_error();
  std::vector<kvc_rt_head_view> heads(layer.kv_heads);
  for (uint32_t h = 0; h < layer.kv_heads; ++h)
    if (kvc_rt_head_view_get(cache, 0, h, &heads[h]) != KVC_RT_OK)
      return std::string("kvc_rt_head_view_get: ") + kvc_rt_last_error();
  // Pool pages that hold compressed tokens of a sequence.
  llvm::DenseSet<uint64_t> held;
  for (const kvc_rt_seq &seq : llvm::ArrayRef(seqs, numSeqs)) {
    kvc_rt_sequence_view view{};
    if (kvc_rt_sequence_view_get(cache, seq, 0, &view) != KVC_RT_OK)
      return std::string("kvc_rt_sequence_view_get: ") + kvc_rt_last_error();
    for (uint32_t p = 0; p < view.num_pages; ++p)
      if (view.page_table[p] >= 0)
        held.insert(uint64_t(view.page_table[p]));
  }

  // Prefetches of each (side, head).
  std::vector<uint64_t> perHead(2 * layer.kv_heads, 0);
  auto place = [&](const Prefetch &p) -> std::string {
    const auto at = reinterpret_cast<uintptr_t>(p.address);
    for (int side = 0; side < 2; ++side) {
      const auto pool =
          reinterpret_cast<uintptr_t>(side ? layer.v_pool : layer.k_pool);
      const uint64_t pageBytes = side ? layer.v.page_bytes : layer.k.page_bytes;
      if (at < pool || at >= pool + layer.num_pages * pageBytes)
        continue;
      const uint64_t page = (at - pool) / pageBytes;
      const uint64_t inPage = (at - pool) % pageBytes;
      if (!held.contains(page))
        return llvm::formatv("an L2 prefetch at byte {0} of {1} page {2}, "
                             "which holds no compressed token",
                             inPage, side ? "V" : "K", page)
            .str();
      for (uint32_t h = 0; h < layer.kv_heads; ++h) {
        const uint64_t offset =
            side ? heads[h].v_block_offset : heads[h].k_block_offset;
        const uint64_t bytes =
            side ? heads[h].v.block_bytes : heads[h].k.block_bytes;
        if (p.bulk ? inPage == offset && p.bytes == bytes
                   : inPage >= offset && inPage < offset + bytes) {
          ++perHead[side * layer.kv_heads + h];
          (p.bulk ? counts.blocks : counts.lines) += 1;
          counts.blockBytes += p.bulk ? p.bytes : 0;
          return "";
        }
      }
      return llvm::formatv("an L2 prefetch of {0} bytes at byte {1} of a {2} "
                           "page is not {3} one head's block",
                           p.bytes, inPage, side ? "V" : "K",
                           p.bulk ? "exactly" : "in")
          .str();
    }
    return llvm::formatv("an L2 prefetch of {0} bytes at {1:x} lies outside "
                         "the K and V pools",
                         p.bytes, at)
        .str();
  };
  for (const Prefetch &p : prefetches)
    if (std::string problem = place(p); !problem.empty())
      return problem;
  // Every head reads the same pages, and heads whose blocks are as large
  // (the same byte budget's pages) prefetch as many.
  for (int side = 0; side < 2; ++side)
    for (uint32_t h = 1; h < layer.kv_heads; ++h)
      for (uint32_t first = 0; first < h; ++first) {
        auto blockBytes = [&](uint32_t head) {
          return side ? heads[head].v.block_bytes : heads[head].k.block_bytes;
        };
        if (blockBytes(first) != blockBytes(h))
          continue;
        const uint64_t mine = perHead[side * layer.kv_heads + h],
                       theirs = perHead[side * layer.kv_heads + first];
        if (mine != theirs)
          return llvm::formatv("{0} L2 prefetches of KV head {1}'s {2} "
                               "blocks, {3} of head {4}'s: heads with "
                               "blocks of one size read the same pages",
                               mine, h, side ? "V" : "K", theirs, first)
              .str();
        break;
      }
  return "";
}
