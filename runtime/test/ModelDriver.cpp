//===- ModelDriver.cpp - Model-based testing of the runtime ---------------===//

#include "ModelDriver.h"
#include "ReservedWrite.h"

#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Layout.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>

namespace kvc {
namespace rt {
namespace testing {

namespace num = kvc::numerics;

//===----------------------------------------------------------------------===//
// Model helpers
//===----------------------------------------------------------------------===//

namespace {
std::string statusText(kvc_rt_status s) { return kvc_rt_status_name(s); }

bool sameFloat(float a, float b) {
  if (std::isnan(a) || std::isnan(b))
    return std::isnan(a) && std::isnan(b);
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

} // namespace


bool ModelDriver::Fingerprint::operator==(const Fingerprint &o) const {
  if (layers.size() != o.layers.size() || lengths != o.lengths)
    return false;
  for (size_t i = 0; i < layers.size(); ++i)
    if (std::memcmp(&layers[i], &o.layers[i], sizeof(kvc_rt_layer_stats)))
      return false;
  return std::memcmp(&cache, &o.cache, sizeof(kvc_rt_cache_stats)) == 0;
}

uint64_t ModelDriver::compressed(uint32_t layer, uint64_t n) const {
  return num::compressedTokenCount(n, cfg_.encodingOf(layer, 0).residual);
}

uint32_t ModelDriver::pagesFor(uint32_t layer, uint64_t n) const {
  const uint64_t t = cfg_.config.page_tokens;
  return static_cast<uint32_t>((compressed(layer, n) + t - 1) / t);
}

int ModelDriver::newPage(uint32_t layer) {
  std::vector<int> &refs = refs_[layer];
  auto it = std::find(refs.begin(), refs.end(), 0);
  int id;
  if (it == refs.end()) {
    id = static_cast<int>(refs.size());
    refs.push_back(0);
  } else {
    id = static_cast<int>(it - refs.begin());
  }
  refs[id] = 1;
  ++used_[layer];
  return id;
}

void ModelDriver::dropPage(uint32_t layer, int page) {
  if (page < 0)
    return; // a hole

  if (--refs_[layer][page] == 0)
    --used_[layer];
}

ModelDriver::~ModelDriver() {
  if (cache_)
    kvc_rt_cache_destroy(cache_);
}

std::string ModelDriver::init(const ModelConfig &config) {
  cfg_ = config;
  const kvc_rt_cache_config c = cfg_.get();
  kvc_rt_status s = kvc_rt_cache_create(&c, &cache_);
  if (s != KVC_RT_OK) {
    cache_ = nullptr;
    return "cache_create(" + cfg_.name + "): " + statusText(s) + ": " +
           kvc_rt_last_error();
  }
  refs_.assign(c.num_layers, {});
  used_.assign(c.num_layers, 0);
  // Geometry: each head's blocks follow its own encoding, back to back in
  // head order (layout.md 4.1).
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    kvc_rt_layer_view lv;
    if (kvc_rt_layer_view_get(cache_, l, &lv) != KVC_RT_OK)
      return "layer_view failed";
    uint64_t kOffset = 0, vOffset = 0;
    bool uniform = true;
    for (uint32_t h = 0; h < c.kv_heads; ++h) {
      const kvc_rt_encoding &e = cfg_.encodingOf(l, h);
      uniform &= std::memcmp(&e, &cfg_.encodingOf(l, 0), sizeof(e)) == 0;
      kvc_rt_head_view hv;
      if (kvc_rt_head_view_get(cache_, l, h, &hv) != KVC_RT_OK)
        return "head_view failed";
      const size_t kBlock = num::computeBlockLayout(toNumerics(e.key),
                                                    c.head_dim, c.page_tokens)
                                .blockBytes;
      const size_t vBlock = num::computeBlockLayout(toNumerics(e.value),
                                                    c.head_dim, c.page_tokens)
                                .blockBytes;
      if (std::memcmp(&hv.encoding, &e, sizeof(e)) ||
          hv.k.block_bytes != kBlock || hv.v.block_bytes != vBlock ||
          hv.k_block_offset != kOffset || hv.v_block_offset != vOffset ||
          hv.k.page_bytes != lv.k.page_bytes ||
          hv.v.page_bytes != lv.v.page_bytes)
        return "layer " + std::to_string(l) + " head " + std::to_string(h) +
               ": head view differs from the model";
      kOffset += kBlock;
      vOffset += vBlock;
    }
    if (lv.k.page_bytes != kOffset || lv.v.page_bytes != vOffset ||
        lv.uniform_heads != (uniform ? 1u : 0u))
      return "layer " + std::to_string(l) +
             ": page sizes or uniform_heads differ from the model";
  }
  return "";
}

ModelDriver::Fingerprint ModelDriver::fingerprint() {
  Fingerprint f;
  f.layers.resize(cfg_.config.num_layers);
  for (uint32_t l = 0; l < cfg_.config.num_layers; ++l)
    kvc_rt_layer_stats_get(cache_, l, &f.layers[l]);
  kvc_rt_cache_stats_get(cache_, &f.cache);
  for (const Seq &s : seqs_)
    for (uint32_t l = 0; l < cfg_.config.num_layers; ++l) {
      uint64_t n = UINT64_MAX;
      kvc_rt_sequence_length(cache_, s.id, l, &n);
      f.lengths.push_back(n);
    }
  return f;
}

std::string ModelDriver::expectFailure(kvc_rt_status got,
                                       kvc_rt_status expected,
                                       const Fingerprint &before,
                                       const char *what) {
  ++counts_.expectedFailures;
  if (got != expected)
    return std::string(what) + ": expected " + statusText(expected) +
           ", got " + statusText(got) + " (" + kvc_rt_last_error() + ")";
  if (std::strlen(kvc_rt_last_error()) == 0)
    return std::string(what) + ": failed without a message";
  if (!(fingerprint() == before))
    return std::string(what) + ": a failed call changed the cache";
  return "";
}

//===----------------------------------------------------------------------===//
// Operations
//===----------------------------------------------------------------------===//

std::string ModelDriver::step(Choices &c) {
  ++counts_.steps;
  const uint32_t op = c.below(100);
  std::string err;
  if (op < 8)
    err = opCreate();
  else if (op < 16)
    err = opFork(c);
  else if (op < 25)
    err = opFree(c);
  else if (op < 83)
    err = opAppend(c);
  else if (op < 88)
    err = opEvict(c);
  else
    err = opExpectedFailure(c);
  if (err.empty())
    err = checkStats();
  return err;
}

std::string ModelDriver::opCreate() {
  const Fingerprint before = fingerprint();
  kvc_rt_seq id = 0;
  kvc_rt_status s = kvc_rt_sequence_create(cache_, &id);
  if (seqs_.size() == cfg_.config.max_sequences)
    return expectFailure(s, KVC_RT_ERROR_CAPACITY_EXCEEDED, before,
                         "create with all slots in use");
  if (s != KVC_RT_OK)
    return "sequence_create: " + statusText(s) + ": " + kvc_rt_last_error();
  ++counts_.create;
  Seq seq;
  seq.id = id;
  seq.layers.resize(cfg_.config.num_layers);
  for (SeqLayer &l : seq.layers) {
    l.keys.assign(cfg_.config.kv_heads, {});
    l.values.assign(cfg_.config.kv_heads, {});
    l.deqKeys.assign(cfg_.config.kv_heads, {});
    l.deqValues.assign(cfg_.config.kv_heads, {});
    l.live.assign(cfg_.config.kv_heads, {});
  }
  seqs_.push_back(std::move(seq));
  return "";
}

std::string ModelDriver::opFork(Choices &c) {
  if (seqs_.empty())
    return opCreate();
  const size_t parent = c.below(static_cast<uint32_t>(seqs_.size()));
  const Fingerprint before = fingerprint();
  kvc_rt_seq id = 0;
  kvc_rt_status s = kvc_rt_sequence_fork(cache_, seqs_[parent].id, &id);
  if (seqs_.size() == cfg_.config.max_sequences)
    return expectFailure(s, KVC_RT_ERROR_CAPACITY_EXCEEDED, before,
                         "fork with all slots in use");
  if (s != KVC_RT_OK)
    return "sequence_fork: " + statusText(s) + ": " + kvc_rt_last_error();
  ++counts_.fork;
  Seq child = seqs_[parent];
  child.id = id;
  for (uint32_t l = 0; l < cfg_.config.num_layers; ++l)
    for (int page : child.layers[l].pages)
      if (page >= 0)
        ++refs_[l][page];
  seqs_.push_back(std::move(child));
  // The child must read exactly what the parent does.
  return checkSequence(seqs_.back(), c.below(cfg_.config.num_layers), false,
                       false);
}

std::string ModelDriver::opFree(Choices &c) {
  if (seqs_.empty())
    return opCreate();
  ++counts_.free;
  const size_t victim = c.below(static_cast<uint32_t>(seqs_.size()));
  kvc_rt_status s = kvc_rt_sequence_free(cache_, seqs_[victim].id);
  if (s != KVC_RT_OK)
    return "sequence_free: " + statusText(s) + ": " + kvc_rt_last_error();
  for (uint32_t l = 0; l < cfg_.config.num_layers; ++l)
    for (int page : seqs_[victim].layers[l].pages)
      dropPage(l, page);
  freed_.push_back(seqs_[victim].id);
  if (freed_.size() > 64)
    freed_.erase(freed_.begin());
  seqs_.erase(seqs_.begin() + victim);
  return "";
}

std::string ModelDriver::opExpectedFailure(Choices &c) {
  const kvc_rt_cache_config &cfg = cfg_.config;
  const Fingerprint before = fingerprint();
  const bool haveSeq = !seqs_.empty();
  const kvc_rt_seq live =
      haveSeq ? seqs_[c.below(static_cast<uint32_t>(seqs_.size()))].id : 0;
  const uint64_t liveLength = haveSeq ? seqs_[0].layers[0].n : 0;
  std::vector<float> buffer(size_t{cfg.kv_heads} * (cfg.max_tokens + 8) *
                                cfg.head_dim,
                            0.5f);
  kvc_rt_tokens tokens{};
  tokens.keys = buffer.data();
  tokens.values = buffer.data();
  tokens.num_tokens = 1;
  tokens.dtype = KVC_RT_DTYPE_F32;
  tokens.kv_heads = cfg.kv_heads;
  tokens.head_dim = cfg.head_dim;

  switch (c.below(14)) {
  case 0: { // double free / use after free
    if (freed_.empty())
      return "";
    const kvc_rt_seq dead =
        freed_[c.below(static_cast<uint32_t>(freed_.size()))];
    kvc_rt_seq out;
    switch (c.below(4)) {
    case 0:
      return expectFailure(kvc_rt_sequence_free(cache_, dead),
                           KVC_RT_ERROR_INVALID_SEQUENCE, before,
                           "double free");
    case 1:
      return expectFailure(kvc_rt_sequence_fork(cache_, dead, &out),
                           KVC_RT_ERROR_INVALID_SEQUENCE, before,
                           "fork of a freed sequence");
    case 2:
      return expectFailure(kvc_rt_append(cache_, dead, 0, &tokens),
                           KVC_RT_ERROR_INVALID_SEQUENCE, before,
                           "append to a freed sequence");
    default:
      return expectFailure(kvc_rt_gather(cache_, dead, 0, 0, buffer.data(),
                                         nullptr, cfg.max_tokens),
                           KVC_RT_ERROR_INVALID_SEQUENCE, before,
                           "gather of a freed sequence");
    }
  }
  case 1: { // ids that were never handed out
    const kvc_rt_seq bogus[] = {0, UINT64_MAX, (uint64_t(7) << 32) | 1,
                                uint64_t(cfg.max_sequences)};
    const kvc_rt_seq id = bogus[c.below(4)];
    for (const Seq &s : seqs_)
      if (s.id == id)
        return ""; // slot 1 may really be at generation 7
    return expectFailure(kvc_rt_sequence_free(cache_, id),
                         KVC_RT_ERROR_INVALID_SEQUENCE, before, "bogus id");
  }
  case 2:
    if (!haveSeq)
      return "";
    return expectFailure(
        kvc_rt_append(cache_, live, cfg.num_layers + c.below(3), &tokens),
        KVC_RT_ERROR_INVALID_ARGUMENT, before, "layer out of range");
  case 3:
    if (!haveSeq)
      return "";
    if (c.below(2))
      tokens.kv_heads += 1;
    else
      tokens.head_dim *= 2;
    return expectFailure(kvc_rt_append(cache_, live, 0, &tokens),
                         KVC_RT_ERROR_SHAPE_MISMATCH, before,
                         "shape mismatch");
  case 4:
    if (!haveSeq)
      return "";
    if (c.below(2)) {
      tokens.values = nullptr;
      return expectFailure(kvc_rt_append(cache_, live, 0, &tokens),
                           KVC_RT_ERROR_NULL_POINTER, before, "NULL values");
    }
    return expectFailure(kvc_rt_append(cache_, live, 0, nullptr),
                         KVC_RT_ERROR_NULL_POINTER, before, "NULL tokens");
  case 5: { // past max_tokens in one call
    if (!haveSeq)
      return "";
    const uint32_t layer = c.below(cfg.num_layers);
    uint64_t n = 0;
    kvc_rt_sequence_length(cache_, live, layer, &n);
    tokens.num_tokens =
        static_cast<uint32_t>(cfg.max_tokens - n + 1 + c.below(8));
    return expectFailure(kvc_rt_append(cache_, live, layer, &tokens),
                         KVC_RT_ERROR_CAPACITY_EXCEEDED, before,
                         "append past max_tokens");
  }
  case 6:
    if (!haveSeq)
      return "";
    tokens.dtype = 2 + c.below(5);
    return expectFailure(kvc_rt_append(cache_, live, 0, &tokens),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before, "bad dtype");
  case 7:
    if (!haveSeq || liveLength == 0)
      return "";
    return expectFailure(kvc_rt_gather(cache_, seqs_[0].id, 0, 0,
                                       buffer.data(), buffer.data(),
                                       liveLength - 1),
                         KVC_RT_ERROR_CAPACITY_EXCEEDED, before,
                         "gather into a short buffer");
  case 8: { // handles that are not live caches
    struct NotACache {
      char bytes[64];
    } fake{};
    kvc_rt_cache *bogus = reinterpret_cast<kvc_rt_cache *>(&fake);
    if (c.below(2))
      return expectFailure(kvc_rt_sequence_free(bogus, live),
                           KVC_RT_ERROR_INVALID_HANDLE, before,
                           "foreign cache handle");
    return expectFailure(kvc_rt_append(nullptr, live, 0, &tokens),
                         KVC_RT_ERROR_NULL_POINTER, before, "NULL cache");
  }
  case 9: {
    if (!haveSeq)
      return expectFailure(kvc_rt_sequence_create(cache_, nullptr),
                           KVC_RT_ERROR_NULL_POINTER, before,
                           "create into NULL");
    return expectFailure(kvc_rt_sequence_fork(cache_, live, nullptr),
                         KVC_RT_ERROR_NULL_POINTER, before, "fork into NULL");
  }
  case 10: {
    uint8_t block[16];
    return expectFailure(kvc_rt_read_block(cache_, 0, cfg.pages_per_layer, 0,
                                           KVC_RT_POOL_K, block,
                                           sizeof(block)),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before,
                         "read_block past the pool");
  }
  case 11: { // per-head queries with bad arguments
    const uint32_t layer = c.below(cfg.num_layers);
    if (c.below(2)) {
      kvc_rt_head_view view;
      return expectFailure(
          kvc_rt_head_view_get(cache_, layer, cfg.kv_heads + c.below(3), &view),
          KVC_RT_ERROR_INVALID_ARGUMENT, before, "head view of a bad head");
    }
    std::vector<kvc_rt_encoding> encodings(cfg.kv_heads + 1,
                                           cfg_.encodingOf(layer, 0));
    return expectFailure(
        kvc_rt_cache_check_layer_heads(cache_, layer, encodings.data(),
                                       cfg.kv_heads + 1, cfg.kv_heads,
                                       cfg.head_dim, cfg.page_tokens),
        KVC_RT_ERROR_INVALID_ARGUMENT, before,
        "check_layer_heads with a bad count");
  }
  case 12:
    return opReserveFailure(c, before);
  default: {
    if (!haveSeq)
      return "";
    kvc_rt_sequence_view view;
    return expectFailure(kvc_rt_sequence_view_get(cache_, live, cfg.num_layers,
                                                  &view),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before,
                         "view of a layer out of range");
  }
  }
}

//===----------------------------------------------------------------------===//
// Checks
//===----------------------------------------------------------------------===//

std::string ModelDriver::checkSequence(const Seq &seq, uint32_t layer,
                                       bool spec, bool bytes) {
  const kvc_rt_cache_config &cfg = cfg_.config;
  const SeqLayer &sl = seq.layers[layer];
  const uint32_t D = cfg.head_dim, T = cfg.page_tokens;
  const std::string where = "seq " + std::to_string(seq.id) + " layer " +
                            std::to_string(layer) + ": ";

  kvc_rt_sequence_view view;
  kvc_rt_status s = kvc_rt_sequence_view_get(cache_, seq.id, layer, &view);
  if (s != KVC_RT_OK)
    return where + "sequence_view: " + statusText(s);
  const uint64_t c = compressed(layer, sl.n);
  uint64_t evicted = 0;
  for (const std::vector<uint8_t> &live : sl.live)
    evicted += std::count(live.begin(), live.end(), 0);
  if (view.num_tokens != sl.n || view.compressed_tokens != c ||
      view.residual_tokens != sl.n - c ||
      view.num_pages != sl.pages.size() || view.evicted_tokens != evicted ||
      (view.live_bitmap == nullptr) != (evicted == 0) ||
      (view.demoted_pages != nullptr) != sl.demoting)
    return where + "view counts differ from the model";
  for (size_t i = 0; i < sl.pages.size(); ++i)
    if ((sl.pages[i] < 0) != (view.page_table[i] == KVC_RT_PAGE_HOLE))
      return where + "page " + std::to_string(i) +
             (sl.pages[i] < 0 ? " should be a hole" : " should not be a hole");
  std::vector<uint8_t> gotLive(sl.n + 1);

  std::vector<float> gotK(sl.n * D + 1), gotV(sl.n * D + 1);
  for (uint32_t h = 0; h < cfg.kv_heads; ++h) {
    const kvc_rt_encoding &enc = cfg_.encodingOf(layer, h);
    const num::SideEncoding sides[2] = {toNumerics(enc.key),
                                        toNumerics(enc.value)};
    s = kvc_rt_gather(cache_, seq.id, layer, h, gotK.data(), gotV.data(),
                      sl.n);
    if (s != KVC_RT_OK)
      return where + "gather: " + statusText(s) + ": " + kvc_rt_last_error();
    s = kvc_rt_live_tokens(cache_, seq.id, layer, h, gotLive.data(), sl.n);
    if (s != KVC_RT_OK)
      return where + "live_tokens: " + statusText(s);
    if (!std::equal(sl.live[h].begin(), sl.live[h].end(), gotLive.begin()))
      return where + "head " + std::to_string(h) +
             ": live tokens differ from the model";
    for (int side = 0; side < 2; ++side) {
      const std::vector<float> &x = side ? sl.values[h] : sl.keys[h];
      const std::vector<float> &deq = side ? sl.deqValues[h] : sl.deqKeys[h];
      const std::vector<float> &got = side ? gotV : gotK;
      if (deq.size() != c * D)
        return where + "model: compressed rows out of step";
      if (spec) {
        // The model's incremental view must be the spec's.
        const std::vector<float> want = num::simulateCacheSide(
            x.data(), sl.n, D, sides[side], enc.residual);
        for (uint64_t i = 0; i < sl.n * D; ++i)
          if (!sameFloat(i < c * D ? deq[i] : x[i], want[i]))
            return where + "model: the incremental view differs from "
                           "simulateCacheSide at element " +
                   std::to_string(i);
      }
      const auto &demoted = side ? sl.demotedValues : sl.demotedKeys;
      for (uint64_t i = 0; i < sl.n * D; ++i) {
        // Evicted tokens read as their demoted rows (two-tier), else NaN
        // (their page may be a hole).
        const float want =
            !sl.live[h][i / D]
                ? (sl.demoting ? demoted[h].at(i / D)[i % D]
                               : std::numeric_limits<float>::quiet_NaN())
            : i < c * D ? deq[i]
                        : x[i];
        if (!sameFloat(got[i], want))
          return where + (side ? "V" : "K") + " head " + std::to_string(h) +
                 " token " + std::to_string(i / D) + " channel " +
                 std::to_string(i % D) + ": got " + std::to_string(got[i]) +
                 ", expected " + std::to_string(want) + " (n = " +
                 std::to_string(sl.n) + ")";
      }
      if (!bytes)
        continue;
      // Page bytes: a zeroed block with this sequence's tokens written.
      const num::BlockLayout bl = num::computeBlockLayout(sides[side], D, T);
      std::vector<uint8_t> want8(bl.blockBytes), got8(bl.blockBytes);
      for (uint32_t i = 0; i < view.num_pages; ++i) {
        if (sl.pages[i] < 0)
          continue; // a hole: checked above, no bytes to compare
        const uint64_t first = uint64_t(i) * T;
        const uint64_t count = std::min<uint64_t>(c - first, T);
        std::fill(want8.begin(), want8.end(), 0);
        num::writePageTokens(x.data() + first * D, 0, count, sides[side], D, T,
                             want8.data());
        s = kvc_rt_read_block(cache_, layer, view.page_table[i], h,
                              side ? KVC_RT_POOL_V : KVC_RT_POOL_K,
                              got8.data(), got8.size());
        if (s != KVC_RT_OK)
          return where + "read_block: " + statusText(s);
        if (want8 != got8)
          return where + (side ? "V" : "K") + " head " + std::to_string(h) +
                 " page " + std::to_string(i) + ": stored bytes differ";
      }
    }
  }
  return "";
}

std::string ModelDriver::checkStats() {
  const kvc_rt_cache_config &cfg = cfg_.config;
  kvc_rt_cache_stats cs;
  if (kvc_rt_cache_stats_get(cache_, &cs) != KVC_RT_OK)
    return "cache_stats failed";
  if (cs.live_sequences != seqs_.size())
    return "live_sequences " + std::to_string(cs.live_sequences) +
           ", model " + std::to_string(seqs_.size());
  for (uint32_t l = 0; l < cfg.num_layers; ++l) {
    kvc_rt_layer_stats ls;
    if (kvc_rt_layer_stats_get(cache_, l, &ls) != KVC_RT_OK)
      return "layer_stats failed";
    uint32_t shared = 0;
    for (int r : refs_[l])
      shared += r > 1;
    uint64_t tokens = 0, comp = 0, evicted = 0, demoted = 0;
    for (const Seq &s : seqs_) {
      tokens += s.layers[l].n;
      comp += compressed(l, s.layers[l].n);
      for (const std::vector<uint8_t> &live : s.layers[l].live) {
        const uint64_t dead = std::count(live.begin(), live.end(), 0);
        evicted += dead;
        demoted += s.layers[l].demoting ? dead : 0;
      }
    }
    // Page bytes are the sums of every head's block (layout.md 4.1).
    uint64_t kPage = 0, vPage = 0;
    for (uint32_t h = 0; h < cfg.kv_heads; ++h) {
      const kvc_rt_encoding &e = cfg_.encodingOf(l, h);
      kPage += num::computeBlockLayout(toNumerics(e.key), cfg.head_dim,
                                       cfg.page_tokens)
                   .blockBytes;
      vPage += num::computeBlockLayout(toNumerics(e.value), cfg.head_dim,
                                       cfg.page_tokens)
                   .blockBytes;
    }
    if (ls.pages_used != used_[l] || ls.pages_shared != shared ||
        ls.pages_free != cfg.pages_per_layer - used_[l] ||
        ls.tokens != tokens || ls.compressed_tokens != comp ||
        ls.tokens_evicted != evicted || ls.tokens_demoted != demoted ||
        ls.tokens_live != tokens * cfg.kv_heads - evicted ||
        ls.k_page_bytes_used != ls.pages_used * kPage ||
        ls.v_page_bytes_used != ls.pages_used * vPage)
      return "layer " + std::to_string(l) + " stats differ from the model: " +
             "used " + std::to_string(ls.pages_used) + " vs " +
             std::to_string(used_[l]) + ", shared " +
             std::to_string(ls.pages_shared) + " vs " +
             std::to_string(shared);
  }
  return "";
}

std::string ModelDriver::checkRenaming() {
  // The runtime's page indices must be a renaming of the model's pages: the
  // same sharing structure, no page in two roles.
  for (uint32_t l = 0; l < cfg_.config.num_layers; ++l) {
    std::map<int, int32_t> modelToRuntime;
    std::map<int32_t, int> runtimeToModel;
    for (const Seq &seq : seqs_) {
      kvc_rt_sequence_view view;
      if (kvc_rt_sequence_view_get(cache_, seq.id, l, &view) != KVC_RT_OK)
        return "sequence_view failed";
      const std::vector<int> &pages = seq.layers[l].pages;
      for (size_t i = 0; i < pages.size(); ++i) {
        const int32_t r = view.page_table[i];
        if ((pages[i] < 0) != (r == KVC_RT_PAGE_HOLE))
          return "layer " + std::to_string(l) + ": holes differ from the model";
        if (pages[i] < 0)
          continue;
        auto a = modelToRuntime.emplace(pages[i], r);
        auto b = runtimeToModel.emplace(r, pages[i]);
        if (a.first->second != r || b.first->second != pages[i])
          return "layer " + std::to_string(l) +
                 ": page sharing differs from the model";
      }
    }
  }
  return "";
}

std::string ModelDriver::checkAll() {
  ++counts_.fullChecks;
  if (kvc_rt_cache_verify(cache_) != KVC_RT_OK)
    return std::string("verify: ") + kvc_rt_last_error();
  std::string err = checkStats();
  if (err.empty())
    err = checkRenaming();
  for (const Seq &seq : seqs_)
    for (uint32_t l = 0; l < cfg_.config.num_layers && err.empty(); ++l)
      err = checkSequence(seq, l, true, true);
  return err;
}

std::string ModelDriver::finish() {
  std::string err;
  while (!seqs_.empty() && err.empty()) {
    if (kvc_rt_sequence_free(cache_, seqs_.back().id) != KVC_RT_OK)
      err = std::string("free at finish: ") + kvc_rt_last_error();
    for (uint32_t l = 0; l < cfg_.config.num_layers; ++l)
      for (int page : seqs_.back().layers[l].pages)
        dropPage(l, page);
    seqs_.pop_back();
  }
  if (err.empty())
    err = checkAll();
  kvc_rt_layer_stats ls;
  for (uint32_t l = 0; l < cfg_.config.num_layers && err.empty(); ++l)
    if (kvc_rt_layer_stats_get(cache_, l, &ls) != KVC_RT_OK ||
        ls.pages_used != 0 || ls.pages_free != cfg_.config.pages_per_layer)
      err = "pages leaked after freeing every sequence";
  if (cache_ && kvc_rt_cache_destroy(cache_) != KVC_RT_OK && err.empty())
    err = std::string("destroy: ") + kvc_rt_last_error();
  cache_ = nullptr;
  return err;
}

} // namespace testing
} // namespace rt
} // namespace kvc
