//===- ForEachKVHead.h - per-KV-head work on a few threads ------*- C++ -*-===//
//
// The cost model's measurements (candidate errors, eviction runs) are
// independent per (request, KV head): this spreads those units over threads.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_COSTMODEL_FOREACHKVHEAD_H
#define KVC_LIB_COSTMODEL_FOREACHKVHEAD_H

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace kvc {
namespace cost {

/// Calls body(requestIndex, kvHead) once for every KV head of every request
/// (`requests[i].layer->numKVHeads` heads), on `threads` threads (0: one per
/// core). Units are handed out in order; they are all alike here.
template <typename Request, typename Body>
void forEachKVHead(const std::vector<Request> &requests, unsigned threads,
                   Body body) {
  struct Unit {
    size_t request, kvHead;
  };
  std::vector<Unit> units;
  for (size_t i = 0; i < requests.size(); ++i)
    for (size_t h = 0; h < requests[i].layer->numKVHeads; ++h)
      units.push_back({i, h});
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t u = next++; u < units.size(); u = next++)
      body(units[u].request, units[u].kvHead);
  };
  if (threads == 0)
    threads = std::thread::hardware_concurrency();
  threads = std::max(1u, std::min<unsigned>(threads, units.size()));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t)
    pool.emplace_back(worker);
  worker();
  for (std::thread &t : pool)
    t.join();
}

} // namespace cost
} // namespace kvc

#endif // KVC_LIB_COSTMODEL_FOREACHKVHEAD_H
