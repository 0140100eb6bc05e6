//===- CApi.cpp - The extern "C" entry points -----------------------------===//
//
// Thin wrappers: check the handle against the registry of live caches and
// the pointer arguments, call the Cache, and record the message as the
// thread's and the cache's last error. No C++ exception or type crosses the
// boundary (the runtime is built with -fno-exceptions).
//
//===----------------------------------------------------------------------===//

#include "kvc_runtime.h"

#include "Backend.h"
#include "Cache.h"
#include "Geometry.h"

#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_set>

using kvc::rt::Cache;
using kvc::rt::Status;

struct kvc_rt_cache {
  std::unique_ptr<Cache> impl;
  std::string lastError;
};

namespace {
thread_local std::string threadLastError;

/// The live caches. A pointer is checked here before it is dereferenced, so
/// a destroyed or foreign handle is an error, not undefined behaviour.
class Registry {
public:
  void add(const kvc_rt_cache *c) {
    std::unique_lock<std::shared_mutex> lock(mutex_);
    live_.insert(c);
  }
  bool remove(const kvc_rt_cache *c) {
    std::unique_lock<std::shared_mutex> lock(mutex_);
    return live_.erase(c) == 1;
  }
  bool contains(const kvc_rt_cache *c) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return live_.count(c) == 1;
  }

private:
  mutable std::shared_mutex mutex_;
  std::unordered_set<const kvc_rt_cache *> live_;
};

Registry &registry() {
  static Registry *r = new Registry(); // never destroyed: usable at exit
  return *r;
}

kvc_rt_status finish(const Status &s, const kvc_rt_cache *cache = nullptr) {
  threadLastError = s.message();
  if (!s.isOk() && cache)
    const_cast<kvc_rt_cache *>(cache)->lastError = s.message();
  return s.code();
}

Status checkHandle(const kvc_rt_cache *cache) {
  if (!cache)
    return kvc::rt::nullPointer("cache");
  if (!registry().contains(cache))
    return Status::error(KVC_RT_ERROR_INVALID_HANDLE,
                         "invalid kvc_rt_cache handle (destroyed or never "
                         "created)");
  return Status::ok();
}

/// Runs `body` on a checked cache; `out`-style pointer checks happen inside.
template <typename Body>
kvc_rt_status withCache(const kvc_rt_cache *cache, Body body) {
  Status s = checkHandle(cache);
  if (!s.isOk())
    return finish(s);
  return finish(body(*cache->impl), cache);
}
} // namespace

kvc::rt::Cache *kvc::rt::liveCache(const kvc_rt_cache *cache) {
  return checkHandle(cache).isOk() ? cache->impl.get() : nullptr;
}

extern "C" {

const char *kvc_rt_last_error(void) { return threadLastError.c_str(); }

uint32_t kvc_rt_abi_version(void) { return KVC_RT_ABI_VERSION; }

kvc_rt_status kvc_rt_config_init(kvc_rt_cache_config *config) {
  if (!config)
    return finish(kvc::rt::nullPointer("config"));
  *config = kvc_rt_cache_config{};
  config->backend = KVC_RT_BACKEND_CPU;
  config->device = 0;
  config->page_tokens = KVC_RT_DEFAULT_PAGE_TOKENS;
  config->encodings_per_layer = 1;
  return finish(Status::ok());
}

kvc_rt_status kvc_rt_encoding_validate(const kvc_rt_encoding *encoding,
                                       uint32_t head_dim,
                                       uint32_t page_tokens) {
  if (!encoding)
    return finish(kvc::rt::nullPointer("encoding"));
  kvc::numerics::CacheEncoding unused;
  return finish(
      kvc::rt::validateEncoding(*encoding, head_dim, page_tokens, &unused));
}

kvc_rt_status kvc_rt_config_validate(const kvc_rt_cache_config *config) {
  if (!config)
    return finish(kvc::rt::nullPointer("config"));
  kvc::rt::CacheGeometry g;
  return finish(kvc::rt::buildGeometry(*config, &g));
}

kvc_rt_status kvc_rt_config_footprint(const kvc_rt_cache_config *config,
                                      kvc_rt_footprint *out) {
  if (!config)
    return finish(kvc::rt::nullPointer("config"));
  if (!out)
    return finish(kvc::rt::nullPointer("out"));
  kvc::rt::CacheGeometry g;
  Status s = kvc::rt::buildGeometry(*config, &g);
  if (s.isOk())
    *out = g.footprint();
  return finish(s);
}

kvc_rt_status kvc_rt_plan_capacity(const kvc_rt_cache_config *config,
                                   uint64_t budget_bytes,
                                   uint32_t tokens_per_sequence,
                                   kvc_rt_capacity_plan *plan) {
  if (!config)
    return finish(kvc::rt::nullPointer("config"));
  if (!plan)
    return finish(kvc::rt::nullPointer("plan"));
  return finish(kvc::rt::planCapacity(*config, budget_bytes,
                                      tokens_per_sequence, plan));
}

kvc_rt_status kvc_rt_backend_available(uint32_t backend, int32_t device) {
  switch (backend) {
  case KVC_RT_BACKEND_CPU:
  case KVC_RT_BACKEND_CPU_STAGED:
    return finish(Status::ok());
  case KVC_RT_BACKEND_CUDA:
    return finish(kvc::rt::cudaBackendAvailable(device));
  default:
    return finish(
        kvc::rt::invalidArgument("unknown backend " + std::to_string(backend)));
  }
}

kvc_rt_status kvc_rt_cache_create(const kvc_rt_cache_config *config,
                                  kvc_rt_cache **out) {
  if (!config)
    return finish(kvc::rt::nullPointer("config"));
  if (!out)
    return finish(kvc::rt::nullPointer("out"));
  std::unique_ptr<Cache> impl;
  Status s = Cache::create(*config, &impl);
  if (!s.isOk())
    return finish(s);
  kvc_rt_cache *cache = new kvc_rt_cache();
  cache->impl = std::move(impl);
  registry().add(cache);
  *out = cache;
  return finish(Status::ok());
}

kvc_rt_status kvc_rt_cache_destroy(kvc_rt_cache *cache) {
  if (!cache)
    return finish(kvc::rt::nullPointer("cache"));
  if (!registry().remove(cache))
    return finish(checkHandle(cache));
  delete cache;
  return finish(Status::ok());
}

const char *kvc_rt_cache_last_error(const kvc_rt_cache *cache) {
  if (!cache || !registry().contains(cache))
    return "invalid kvc_rt_cache handle";
  return cache->lastError.c_str();
}

kvc_rt_status kvc_rt_cache_get_config(const kvc_rt_cache *cache,
                                      kvc_rt_cache_config *out) {
  return withCache(cache, [&](const Cache &c) {
    if (!out)
      return kvc::rt::nullPointer("out");
    *out = c.config();
    return Status::ok();
  });
}

kvc_rt_status kvc_rt_cache_check_layer(const kvc_rt_cache *cache,
                                       uint32_t layer,
                                       const kvc_rt_encoding *encoding,
                                       uint32_t kv_heads, uint32_t head_dim,
                                       uint32_t page_tokens) {
  return withCache(cache, [&](const Cache &c) {
    if (!encoding)
      return kvc::rt::nullPointer("encoding");
    return c.checkLayerHeads(layer, encoding, 1, kv_heads, head_dim,
                             page_tokens);
  });
}

kvc_rt_status kvc_rt_cache_check_layer_heads(const kvc_rt_cache *cache,
                                             uint32_t layer,
                                             const kvc_rt_encoding *encodings,
                                             uint32_t count, uint32_t kv_heads,
                                             uint32_t head_dim,
                                             uint32_t page_tokens) {
  return withCache(cache, [&](const Cache &c) {
    if (!encodings)
      return kvc::rt::nullPointer("encodings");
    return c.checkLayerHeads(layer, encodings, count, kv_heads, head_dim,
                             page_tokens);
  });
}

kvc_rt_status kvc_rt_cache_stream(const kvc_rt_cache *cache, void **stream) {
  return withCache(cache, [&](const Cache &c) {
    if (!stream)
      return kvc::rt::nullPointer("stream");
    *stream = c.backend().stream();
    return Status::ok();
  });
}

kvc_rt_status kvc_rt_cache_synchronize(kvc_rt_cache *cache) {
  return withCache(cache,
                   [&](const Cache &c) { return c.backend().synchronize(); });
}

kvc_rt_status kvc_rt_sequence_create(kvc_rt_cache *cache, kvc_rt_seq *out) {
  Status s = checkHandle(cache);
  if (!s.isOk())
    return finish(s);
  if (!out)
    return finish(kvc::rt::nullPointer("out"), cache);
  return finish(cache->impl->createSequence(out), cache);
}

kvc_rt_status kvc_rt_sequence_fork(kvc_rt_cache *cache, kvc_rt_seq parent,
                                   kvc_rt_seq *out) {
  Status s = checkHandle(cache);
  if (!s.isOk())
    return finish(s);
  if (!out)
    return finish(kvc::rt::nullPointer("out"), cache);
  return finish(cache->impl->forkSequence(parent, out), cache);
}

kvc_rt_status kvc_rt_sequence_free(kvc_rt_cache *cache, kvc_rt_seq seq) {
  Status s = checkHandle(cache);
  if (!s.isOk())
    return finish(s);
  return finish(cache->impl->freeSequence(seq), cache);
}

kvc_rt_status kvc_rt_sequence_length(const kvc_rt_cache *cache,
                                     kvc_rt_seq seq, uint32_t layer,
                                     uint64_t *num_tokens) {
  return withCache(cache, [&](const Cache &c) {
    if (!num_tokens)
      return kvc::rt::nullPointer("num_tokens");
    return c.sequenceLength(seq, layer, num_tokens);
  });
}

kvc_rt_status kvc_rt_append(kvc_rt_cache *cache, kvc_rt_seq seq,
                            uint32_t layer, const kvc_rt_tokens *tokens) {
  Status s = checkHandle(cache);
  if (!s.isOk())
    return finish(s);
  if (!tokens)
    return finish(kvc::rt::nullPointer("tokens"), cache);
  return finish(cache->impl->append(seq, layer, *tokens), cache);
}

kvc_rt_status kvc_rt_reserve_append(kvc_rt_cache *cache, uint32_t layer,
                                    const kvc_rt_seq *seqs, uint32_t count,
                                    uint32_t num_tokens,
                                    kvc_rt_append_range *out) {
  Status s = checkHandle(cache);
  if (!s.isOk())
    return finish(s);
  if (count > 0 && !seqs)
    return finish(kvc::rt::nullPointer("seqs"), cache);
  if (count > 0 && !out)
    return finish(kvc::rt::nullPointer("out"), cache);
  return finish(cache->impl->reserveAppend(seqs, count, layer, num_tokens, out),
                cache);
}

kvc_rt_status kvc_rt_evict(kvc_rt_cache *cache, kvc_rt_seq seq, uint32_t layer,
                           const kvc_rt_evict_policy *policy,
                           const float *scores, uint64_t num_tokens) {
  return kvc_rt_evict_heads(cache, seq, layer, policy, nullptr, scores,
                            num_tokens);
}

/// kvc_rt_evict_heads and kvc_rt_evict_demote (`demote` null: drop).
static kvc_rt_status evictChecked(kvc_rt_cache *cache, kvc_rt_seq seq,
                                  uint32_t layer,
                                  const kvc_rt_evict_policy *policy,
                                  const uint32_t *head_budgets,
                                  const kvc_rt_encoding *demote,
                                  bool demoting, const float *scores,
                                  uint64_t num_tokens) {
  Status s = checkHandle(cache);
  if (!s.isOk())
    return finish(s);
  if (!policy)
    return finish(kvc::rt::nullPointer("policy"), cache);
  if (demoting && !demote)
    return finish(kvc::rt::nullPointer("demote"), cache);
  return finish(cache->impl->evict(seq, layer, *policy, head_budgets, demote,
                                   scores, num_tokens),
                cache);
}

kvc_rt_status kvc_rt_evict_heads(kvc_rt_cache *cache, kvc_rt_seq seq,
                                 uint32_t layer,
                                 const kvc_rt_evict_policy *policy,
                                 const uint32_t *head_budgets,
                                 const float *scores, uint64_t num_tokens) {
  return evictChecked(cache, seq, layer, policy, head_budgets, nullptr,
                      /*demoting=*/false, scores, num_tokens);
}

kvc_rt_status kvc_rt_evict_demote(kvc_rt_cache *cache, kvc_rt_seq seq,
                                  uint32_t layer,
                                  const kvc_rt_evict_policy *policy,
                                  const uint32_t *head_budgets,
                                  const kvc_rt_encoding *demote,
                                  const float *scores, uint64_t num_tokens) {
  return evictChecked(cache, seq, layer, policy, head_budgets, demote,
                      /*demoting=*/true, scores, num_tokens);
}

kvc_rt_status kvc_rt_live_tokens(const kvc_rt_cache *cache, kvc_rt_seq seq,
                                 uint32_t layer, uint32_t kv_head,
                                 uint8_t *out, uint64_t n) {
  return withCache(cache, [&](const Cache &c) {
    return c.liveTokens(seq, layer, kv_head, out, n);
  });
}

kvc_rt_status kvc_rt_layer_view_get(const kvc_rt_cache *cache, uint32_t layer,
                                    kvc_rt_layer_view *out) {
  return withCache(cache, [&](const Cache &c) {
    if (!out)
      return kvc::rt::nullPointer("out");
    return c.layerView(layer, out);
  });
}

kvc_rt_status kvc_rt_head_view_get(const kvc_rt_cache *cache, uint32_t layer,
                                   uint32_t head, kvc_rt_head_view *out) {
  return withCache(cache, [&](const Cache &c) {
    if (!out)
      return kvc::rt::nullPointer("out");
    return c.headView(layer, head, out);
  });
}

kvc_rt_status kvc_rt_sequence_view_get(const kvc_rt_cache *cache,
                                       kvc_rt_seq seq, uint32_t layer,
                                       kvc_rt_sequence_view *out) {
  return withCache(cache, [&](const Cache &c) {
    if (!out)
      return kvc::rt::nullPointer("out");
    return c.sequenceView(seq, layer, out);
  });
}

kvc_rt_status kvc_rt_gather(const kvc_rt_cache *cache, kvc_rt_seq seq,
                            uint32_t layer, uint32_t head, float *keys_out,
                            float *values_out, uint64_t capacity_tokens) {
  return withCache(cache, [&](const Cache &c) {
    return c.gather(seq, layer, head, keys_out, values_out, capacity_tokens);
  });
}

kvc_rt_status kvc_rt_read_block(const kvc_rt_cache *cache, uint32_t layer,
                                uint32_t page, uint32_t head, uint32_t pool,
                                void *dst, uint64_t dst_bytes) {
  return withCache(cache, [&](const Cache &c) {
    return c.readBlock(layer, page, head, pool, dst, dst_bytes);
  });
}

kvc_rt_status kvc_rt_cache_stats_get(const kvc_rt_cache *cache,
                                     kvc_rt_cache_stats *out) {
  return withCache(cache, [&](const Cache &c) {
    if (!out)
      return kvc::rt::nullPointer("out");
    return c.stats(out);
  });
}

kvc_rt_status kvc_rt_layer_stats_get(const kvc_rt_cache *cache,
                                     uint32_t layer, kvc_rt_layer_stats *out) {
  return withCache(cache, [&](const Cache &c) {
    if (!out)
      return kvc::rt::nullPointer("out");
    return c.layerStats(layer, out);
  });
}

kvc_rt_status kvc_rt_cache_verify(const kvc_rt_cache *cache) {
  return withCache(cache, [&](const Cache &c) { return c.verify(); });
}

} // extern "C"
