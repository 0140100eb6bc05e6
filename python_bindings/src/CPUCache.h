//===- CPUCache.h - the runtime's CPU cache as a Python object --*- C++ -*-===//
//
// Shared by Runtime.cpp (the CPUCache class) and Execution.cpp (compiled
// functions bind their cache arguments to a CPUCache's layers).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_PYTHON_CPUCACHE_H
#define KVC_PYTHON_CPUCACHE_H

#include "Bindings.h"

#include "kvc_runtime.h"

#include <pybind11/numpy.h>

#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace kvc::python {

/// Raises RuntimeError with the runtime's message unless `status` is OK.
void checkStatus(kvc_rt_status status, const char *what);

using FloatArray =
    pybind11::array_t<float, pybind11::array::c_style | pybind11::array::forcecast>;

class CPUCache {
public:
  /// Runtime encodings, `encodingsPerLayer` (1 or kvHeads) per layer,
  /// layer-major (kvc_rt_cache_config::encodings).
  CPUCache(std::vector<kvc_rt_encoding> encodings, unsigned encodingsPerLayer,
           unsigned kvHeads, unsigned headDim, unsigned pageTokens,
           unsigned maxSequences, unsigned maxTokens, unsigned pagesPerLayer);

  kvc_rt_seq newSequence();
  kvc_rt_seq fork(kvc_rt_seq parent);
  void free(kvc_rt_seq seq);
  uint64_t length(kvc_rt_seq seq, unsigned layer);
  /// keys, values: float32 [kv_heads, n, head_dim].
  void append(kvc_rt_seq seq, unsigned layer, const FloatArray &keys,
              const FloatArray &values);
  /// The dequantized view: (keys, values), each [kv_heads, n, head_dim].
  pybind11::tuple gather(kvc_rt_seq seq, unsigned layer);
  /// Applies an eviction policy spec ("h2o:sink=4:window=64:budget=256") to
  /// every KV head of (seq, layer); scores: float32 [kv_heads, n] or None.
  /// `demote` (key, value) side specs keep the evicted tokens at those
  /// encodings (kvc_rt_evict_demote) instead of dropping them.
  void evict(kvc_rt_seq seq, unsigned layer, const std::string &policy,
             const std::optional<FloatArray> &scores,
             const std::optional<std::pair<std::string, std::string>> &demote);
  /// uint8 [kv_heads, n]: 1 for a live token, 0 for an evicted one.
  pybind11::array_t<uint8_t> liveTokens(kvc_rt_seq seq, unsigned layer);
  pybind11::dict layerStats(unsigned layer);
  pybind11::dict stats();
  void verify();

  kvc_rt_cache *handle() const { return cache.get(); }
  const kvc_rt_cache_config &configuration() const { return config; }

private:
  struct Deleter {
    void operator()(kvc_rt_cache *c) const { kvc_rt_cache_destroy(c); }
  };
  std::vector<kvc_rt_encoding> encodings;
  kvc_rt_cache_config config{};
  std::unique_ptr<kvc_rt_cache, Deleter> cache;
};

} // namespace kvc::python

#endif // KVC_PYTHON_CPUCACHE_H
