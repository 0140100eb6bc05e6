//===- Runtime.cpp - kvc._kvc: the CPU paged cache of the runtime ---------===//
//
// CPUCache wraps a kvc_rt_cache on the CPU backend: sequences, append (which
// compresses through the numerics library as residual blocks flush), fork
// with copy-on-write, gather of the dequantized view, and stats. Runtime
// errors become RuntimeError with the runtime's message; the cache is left
// as it was, like the C ABI promises.
//
//===----------------------------------------------------------------------===//

#include "CPUCache.h"

#include "kvc/Numerics/Evict.h"

#include "Geometry.h" // runtime/lib: numerics <-> C encodings

#include <pybind11/stl.h>

namespace py = pybind11;
using kvc::python::CPUCache;

void kvc::python::checkStatus(kvc_rt_status status, const char *what) {
  if (status != KVC_RT_OK)
    throw std::runtime_error(std::string(what) + ": " +
                             kvc_rt_status_name(status) + ": " +
                             kvc_rt_last_error());
}

using kvc::python::checkStatus;

/// The runtime encoding of a (key, value, residual) of the spec language.
static kvc_rt_encoding parseEncoding(const py::handle &spec) {
  auto [key, value, residual] =
      spec.cast<std::tuple<std::string, std::string, unsigned>>();
  return {::kvc::rt::toCSideEncoding(kvc::python::parseSide(key)),
          ::kvc::rt::toCSideEncoding(kvc::python::parseSide(value)),
          residual};
}

/// Runtime encodings, layer-major, and how many each layer has: one per
/// layer unless some layer lists one per KV head, in which case the others
/// are repeated for each head.
static std::pair<std::vector<kvc_rt_encoding>, unsigned>
parseLayers(const std::vector<py::object> &layers, unsigned kvHeads) {
  std::vector<std::vector<kvc_rt_encoding>> perLayer;
  bool perHead = false;
  for (size_t index = 0; index < layers.size(); ++index) {
    const py::object &layer = layers[index];
    if (py::isinstance<py::list>(layer)) {
      auto heads = layer.cast<py::list>();
      if (heads.size() != kvHeads)
        throw py::value_error("layer " + std::to_string(index) + " lists " +
                              std::to_string(heads.size()) +
                              " head encodings for " +
                              std::to_string(kvHeads) + " KV heads");
      std::vector<kvc_rt_encoding> encodings;
      for (py::handle head : heads)
        encodings.push_back(parseEncoding(head));
      perLayer.push_back(std::move(encodings));
      perHead = true;
    } else {
      perLayer.push_back(std::vector<kvc_rt_encoding>{parseEncoding(layer)});
    }
  }
  std::vector<kvc_rt_encoding> flat;
  for (std::vector<kvc_rt_encoding> &encodings : perLayer) {
    if (perHead && encodings.size() == 1)
      encodings.resize(kvHeads, encodings.front());
    flat.insert(flat.end(), encodings.begin(), encodings.end());
  }
  return {std::move(flat), perHead ? kvHeads : 1u};
}

CPUCache::CPUCache(std::vector<kvc_rt_encoding> encodingList,
                   unsigned encodingsPerLayer, unsigned kvHeads,
                   unsigned headDim, unsigned pageTokens,
                   unsigned maxSequences, unsigned maxTokens,
                   unsigned pagesPerLayer)
    : encodings(std::move(encodingList)) {
  if (encodings.empty())
    throw py::value_error("a cache needs at least one layer's encoding");
  kvc_rt_config_init(&config);
  config.kv_heads = kvHeads;
  config.head_dim = headDim;
  config.page_tokens = pageTokens;
  config.max_sequences = maxSequences;
  config.max_tokens = maxTokens;
  config.pages_per_layer = pagesPerLayer;
  config.backend = KVC_RT_BACKEND_CPU;
  config.num_layers = unsigned(encodings.size() / encodingsPerLayer);
  config.encodings_per_layer = encodingsPerLayer;
  if (!config.pages_per_layer && config.page_tokens)
    config.pages_per_layer =
        config.max_sequences *
        ((config.max_tokens + config.page_tokens - 1) / config.page_tokens);
  config.encodings = encodings.data();
  kvc_rt_cache *raw = nullptr;
  checkStatus(kvc_rt_cache_create(&config, &raw), "kvc_rt_cache_create");
  cache.reset(raw);
}

kvc_rt_seq CPUCache::newSequence() {
  kvc_rt_seq seq = 0;
  checkStatus(kvc_rt_sequence_create(cache.get(), &seq),
              "kvc_rt_sequence_create");
  return seq;
}

kvc_rt_seq CPUCache::fork(kvc_rt_seq parent) {
  kvc_rt_seq child = 0;
  checkStatus(kvc_rt_sequence_fork(cache.get(), parent, &child),
              "kvc_rt_sequence_fork");
  return child;
}

void CPUCache::free(kvc_rt_seq seq) {
  checkStatus(kvc_rt_sequence_free(cache.get(), seq), "kvc_rt_sequence_free");
}

uint64_t CPUCache::length(kvc_rt_seq seq, unsigned layer) {
  uint64_t n = 0;
  checkStatus(kvc_rt_sequence_length(cache.get(), seq, layer, &n),
              "kvc_rt_sequence_length");
  return n;
}

void CPUCache::append(kvc_rt_seq seq, unsigned layer,
                      const kvc::python::FloatArray &keys,
                      const kvc::python::FloatArray &values) {
  if (keys.ndim() != 3 || values.ndim() != 3 ||
      !std::equal(keys.shape(), keys.shape() + 3, values.shape()))
    throw py::value_error("keys and values must both be [kv_heads, tokens, "
                          "head_dim] arrays of one shape");
  kvc_rt_tokens tokens{};
  tokens.keys = keys.data();
  tokens.values = values.data();
  tokens.num_tokens = uint32_t(keys.shape(1));
  tokens.dtype = KVC_RT_DTYPE_F32;
  tokens.kv_heads = uint32_t(keys.shape(0));
  tokens.head_dim = uint32_t(keys.shape(2));
  checkStatus(kvc_rt_append(cache.get(), seq, layer, &tokens),
              "kvc_rt_append");
}

py::tuple CPUCache::gather(kvc_rt_seq seq, unsigned layer) {
  uint64_t n = length(seq, layer);
  kvc::python::FloatArray keys({py::ssize_t(config.kv_heads), py::ssize_t(n),
                                py::ssize_t(config.head_dim)});
  kvc::python::FloatArray values({py::ssize_t(config.kv_heads),
                                  py::ssize_t(n),
                                  py::ssize_t(config.head_dim)});
  for (unsigned h = 0; h < config.kv_heads; ++h)
    checkStatus(kvc_rt_gather(cache.get(), seq, layer, h,
                              keys.mutable_data() + h * n * config.head_dim,
                              values.mutable_data() + h * n * config.head_dim,
                              n),
                "kvc_rt_gather");
  return py::make_tuple(keys, values);
}

void CPUCache::evict(
    kvc_rt_seq seq, unsigned layer, const std::string &spec,
    const std::optional<kvc::python::FloatArray> &scores,
    const std::optional<std::pair<std::string, std::string>> &demote) {
  ::kvc::numerics::EvictPolicy policy;
  std::string problem = ::kvc::numerics::parseEvictPolicy(spec, policy);
  if (!problem.empty())
    throw py::value_error("eviction spec '" + spec + "': " + problem);
  uint64_t n = length(seq, layer);
  if (scores && (scores->ndim() != 2 ||
                 uint64_t(scores->shape(0)) != config.kv_heads ||
                 uint64_t(scores->shape(1)) != n))
    throw py::value_error("scores must be [kv_heads, tokens] = [" +
                          std::to_string(config.kv_heads) + ", " +
                          std::to_string(n) + "]");
  kvc_rt_evict_policy c{uint32_t(policy.kind), uint32_t(policy.sink),
                        uint32_t(policy.window), uint32_t(policy.budget)};
  // Per-head budgets ("...:heads=64,32"): the runtime checks their count.
  std::vector<uint32_t> headBudgets(policy.headBudgets.begin(),
                                    policy.headBudgets.end());
  if (!headBudgets.empty() && headBudgets.size() != config.kv_heads)
    throw py::value_error("eviction spec '" + spec + "' has " +
                          std::to_string(headBudgets.size()) +
                          " per-head budgets for " +
                          std::to_string(config.kv_heads) + " KV heads");
  const uint32_t *budgets = headBudgets.empty() ? nullptr : headBudgets.data();
  if (demote) {
    const kvc_rt_encoding encoding =
        parseEncoding(py::make_tuple(demote->first, demote->second, 0u));
    checkStatus(kvc_rt_evict_demote(cache.get(), seq, layer, &c, budgets,
                                    &encoding,
                                    scores ? scores->data() : nullptr, n),
                "kvc_rt_evict_demote");
    return;
  }
  checkStatus(kvc_rt_evict_heads(cache.get(), seq, layer, &c, budgets,
                                 scores ? scores->data() : nullptr, n),
              "kvc_rt_evict_heads");
}

py::array_t<uint8_t> CPUCache::liveTokens(kvc_rt_seq seq, unsigned layer) {
  uint64_t n = length(seq, layer);
  py::array_t<uint8_t> live({py::ssize_t(config.kv_heads), py::ssize_t(n)});
  for (unsigned h = 0; h < config.kv_heads; ++h)
    checkStatus(kvc_rt_live_tokens(cache.get(), seq, layer, h,
                                   live.mutable_data() + h * n, n),
                "kvc_rt_live_tokens");
  return live;
}

py::dict CPUCache::layerStats(unsigned layer) {
  kvc_rt_layer_stats s{};
  checkStatus(kvc_rt_layer_stats_get(cache.get(), layer, &s),
              "kvc_rt_layer_stats_get");
  py::dict d;
  d["pages_total"] = s.pages_total;
  d["pages_used"] = s.pages_used;
  d["pages_free"] = s.pages_free;
  d["pages_shared"] = s.pages_shared;
  d["k_page_bytes_used"] = s.k_page_bytes_used;
  d["v_page_bytes_used"] = s.v_page_bytes_used;
  d["k_residual_bytes"] = s.k_residual_bytes;
  d["v_residual_bytes"] = s.v_residual_bytes;
  d["tokens"] = s.tokens;
  d["compressed_tokens"] = s.compressed_tokens;
  d["tokens_live"] = s.tokens_live;
  d["tokens_evicted"] = s.tokens_evicted;
  d["tokens_demoted"] = s.tokens_demoted;
  d["demoted_bytes"] = s.demoted_bytes;
  return d;
}

py::dict CPUCache::stats() {
  kvc_rt_cache_stats s{};
  checkStatus(kvc_rt_cache_stats_get(cache.get(), &s),
              "kvc_rt_cache_stats_get");
  py::dict d;
  d["live_sequences"] = s.live_sequences;
  d["max_sequences"] = s.max_sequences;
  d["pages_used"] = s.pages_used;
  d["pages_free"] = s.pages_free;
  d["k_bytes_used"] = s.k_bytes_used;
  d["v_bytes_used"] = s.v_bytes_used;
  d["backend_bytes"] = s.footprint.backend_bytes;
  d["demoted_bytes"] = s.demoted_bytes;
  return d;
}

void CPUCache::verify() {
  checkStatus(kvc_rt_cache_verify(cache.get()), "kvc_rt_cache_verify");
}

namespace kvc::python {
void bindRuntime(py::module_ &m) {
  py::class_<CPUCache>(m, "CPUCache",
                       "The runtime's paged KV cache on the CPU backend.")
      .def(py::init([](const std::vector<py::object> &layers, unsigned kvHeads,
                       unsigned headDim, unsigned pageTokens,
                       unsigned maxSequences, unsigned maxTokens,
                       unsigned pagesPerLayer) {
             auto [encodings, perLayer] = parseLayers(layers, kvHeads);
             return CPUCache(std::move(encodings), perLayer, kvHeads, headDim,
                             pageTokens, maxSequences, maxTokens,
                             pagesPerLayer);
           }),
           py::arg("layers"), py::arg("kv_heads"), py::arg("head_dim"),
           py::arg("page_tokens") = 64, py::arg("max_sequences") = 8,
           py::arg("max_tokens") = 4096, py::arg("pages_per_layer") = 0,
           "layers: one (key encoding, value encoding, residual) per layer, "
           "e.g. [('q2:channel:g32', 'q2:token:g32', 128)], or for a layer "
           "with per-KV-head encodings a list of kv_heads such tuples. "
           "pages_per_layer 0: enough for max_sequences full sequences.")
      .def("new_sequence", &CPUCache::newSequence)
      .def("fork", &CPUCache::fork, py::arg("parent"),
           "A sequence sharing the parent's pages (copy-on-write).")
      .def("free", &CPUCache::free, py::arg("seq"))
      .def("length", &CPUCache::length, py::arg("seq"), py::arg("layer"))
      .def("append", &CPUCache::append, py::arg("seq"), py::arg("layer"),
           py::arg("keys"), py::arg("values"),
           "Append float32 [kv_heads, n, head_dim] keys and values.")
      .def("gather", &CPUCache::gather, py::arg("seq"), py::arg("layer"),
           "The dequantized (keys, values), each [kv_heads, n, head_dim].")
      .def("evict", &CPUCache::evict, py::arg("seq"), py::arg("layer"),
           py::arg("policy"), py::arg("scores") = std::nullopt,
           py::arg("demote") = std::nullopt,
           "Evict tokens of (seq, layer) by a policy spec "
           "('h2o:sink=4:window=64:budget=256'); scores float32 [kv_heads, "
           "tokens] for h2o/snapkv, None for streaming. Pages with no live "
           "token go back to the pool. demote=(key, value) side specs, e.g. "
           "('q2:token:g32', 'fp8:e4m3'), keeps the evicted tokens at those "
           "per-token encodings (two-tier) instead of dropping them; "
           "gather then returns their demoted rows.")
      .def("live_tokens", &CPUCache::liveTokens, py::arg("seq"),
           py::arg("layer"), "uint8 [kv_heads, tokens]: 1 = live.")
      .def("layer_stats", &CPUCache::layerStats, py::arg("layer"))
      .def("stats", &CPUCache::stats)
      .def("verify", &CPUCache::verify,
           "Check every bookkeeping invariant (raises on a broken one).");
}
} // namespace kvc::python
