//===- ModelDriverAppend.cpp - Append operations of the model driver -----===//
//
// kvc_rt_append calls, and batches reserved with kvc_rt_reserve_append and
// written by ReservedWrite (the contract generated append code follows):
// the model applies them as sequential appends; failing calls must change
// nothing.
//
//===----------------------------------------------------------------------===//

#include "ModelDriver.h"
#include "ReservedWrite.h"

#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Layout.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace kvc {
namespace rt {
namespace testing {

namespace num = kvc::numerics;

namespace {
std::string statusText(kvc_rt_status s) { return kvc_rt_status_name(s); }
} // namespace

kvc_rt_tokens ModelDriver::AppendInput::tokens() const {
  kvc_rt_tokens t{};
  t.keys = half ? static_cast<const void *>(kh.data()) : kf.data();
  t.values = half ? static_cast<const void *>(vh.data()) : vf.data();
  t.num_tokens = count;
  t.dtype = half ? KVC_RT_DTYPE_F16 : KVC_RT_DTYPE_F32;
  t.kv_heads = heads;
  t.head_dim = dim;
  t.head_stride = headStride;
  t.token_stride = tokenStride;
  return t;
}

float ModelDriver::AppendInput::stored(bool value, uint32_t h, uint32_t t,
                                       uint32_t ch) const {
  const uint64_t i = h * hs + t * ts + ch;
  if (half)
    return num::halfToFloat(value ? vh[i] : kh[i]);
  return num::halfToFloat(num::floatToHalf(value ? vf[i] : kf[i]));
}

uint32_t ModelDriver::chooseCount(Choices &c, uint64_t room) const {
  // Mostly decode steps, sometimes chunks, rarely a prefill.
  const uint32_t shape = c.below(20);
  uint32_t count = shape < 12   ? 1
                   : shape < 17 ? 2 + c.below(16)
                                : 1 + c.below(cfg_.config.max_tokens / 2);
  if (count > room) {
    if (room == 0)
      count = 1 + c.below(4); // exercise the capacity error
    else
      count = static_cast<uint32_t>(room);
  }
  return count;
}

ModelDriver::AppendInput ModelDriver::makeInput(Choices &c,
                                                uint32_t count) const {
  const kvc_rt_cache_config &cfg = cfg_.config;
  const uint32_t H = cfg.kv_heads, D = cfg.head_dim;
  AppendInput in;
  in.count = count;
  in.heads = H;
  in.dim = D;
  // Layout and dtype of the input.
  const uint32_t layout = c.below(3);
  in.half = c.below(4) == 0;
  uint64_t elements = uint64_t(H) * count * D;
  if (layout == 1) { // BSHD
    in.headStride = D;
    in.tokenStride = uint64_t(H) * D;
  } else if (layout == 2) { // padded rows
    in.tokenStride = D + 8;
    in.headStride = uint64_t(count) * in.tokenStride + 3;
    elements = in.headStride * H;
  }
  in.hs = in.headStride ? in.headStride : uint64_t(count) * D;
  in.ts = in.tokenStride ? in.tokenStride : D;

  // Values: per-channel scales like real keys, sometimes constant groups,
  // rarely NaN / Inf / fp16 overflow / subnormals.
  in.kf.assign(elements, 0.0f);
  in.vf.assign(elements, 0.0f);
  const bool constant = c.below(16) == 0;
  const float bias = c.gaussian();
  for (int side = 0; side < 2; ++side) {
    std::vector<float> &dst = side ? in.vf : in.kf;
    for (uint32_t h = 0; h < H; ++h)
      for (uint32_t t = 0; t < count; ++t)
        for (uint32_t ch = 0; ch < D; ++ch) {
          const float scale = side ? 1.0f : 1.0f + float(ch % 7);
          dst[h * in.hs + t * in.ts + ch] =
              constant ? bias : bias + scale * c.gaussian();
        }
    if (c.below(24) == 0) {
      static const float specials[] = {std::numeric_limits<float>::quiet_NaN(),
                                       std::numeric_limits<float>::infinity(),
                                       -1.0e5f,
                                       7.0e4f,
                                       1.0e-8f,
                                       -0.0f};
      const uint32_t h = c.below(H), t = c.below(count), ch = c.below(D);
      dst[h * in.hs + t * in.ts + ch] = specials[c.below(6)];
    }
  }
  if (in.half) {
    in.kh.resize(elements);
    in.vh.resize(elements);
    for (uint64_t i = 0; i < elements; ++i) {
      in.kh[i] = num::floatToHalf(in.kf[i]);
      in.vh[i] = num::floatToHalf(in.vf[i]);
    }
  }
  return in;
}

uint64_t ModelDriver::pagesNeeded(const SeqLayer &sl, uint32_t layer,
                                  uint64_t count,
                                  std::map<int, int> &copied) const {
  const uint64_t T = cfg_.config.page_tokens;
  const uint64_t n0 = sl.n, n1 = n0 + count;
  const uint64_t c0 = compressed(layer, n0), c1 = compressed(layer, n1);
  uint64_t needed = 0;
  // Copy-on-write: the flush writes into a partially filled page that
  // another sequence still reads (one that copied it earlier in the batch
  // no longer does).
  if (c1 > c0 && c0 % T != 0) {
    const int page = sl.pages[c0 / T];
    if (page >= 0 && refs_[layer][page] - copied[page] > 1) {
      ++copied[page];
      needed = 1;
    }
  }
  // Pages whose positions were all evicted while staged are born holes.
  for (uint32_t p = pagesFor(layer, n0); p < pagesFor(layer, n1); ++p)
    needed += pageDead(sl, p, n0) ? 0 : 1;
  return needed;
}

void ModelDriver::applyAppend(SeqLayer &sl, uint32_t layer,
                              const AppendInput &in) {
  const kvc_rt_cache_config &cfg = cfg_.config;
  const uint32_t H = cfg.kv_heads, D = cfg.head_dim, T = cfg.page_tokens;
  const uint64_t n0 = sl.n, n1 = n0 + in.count;
  const uint64_t c0 = compressed(layer, n0), c1 = compressed(layer, n1);
  const uint32_t p0 = pagesFor(layer, n0), p1 = pagesFor(layer, n1);
  for (uint32_t h = 0; h < H; ++h)
    for (uint32_t t = 0; t < in.count; ++t)
      for (uint32_t ch = 0; ch < D; ++ch) {
        sl.keys[h].push_back(in.stored(false, h, t, ch));
        sl.values[h].push_back(in.stored(true, h, t, ch));
      }
  if (c1 > c0 && c0 % T != 0 && sl.pages[c0 / T] >= 0 &&
      refs_[layer][sl.pages[c0 / T]] > 1) {
    ++counts_.copyOnWrites;
    const int shared = sl.pages[c0 / T];
    dropPage(layer, shared);
    sl.pages[c0 / T] = newPage(layer);
  }
  for (uint32_t p = p0; p < p1; ++p)
    sl.pages.push_back(pageDead(sl, p, n0) ? -1 : newPage(layer));
  for (std::vector<uint8_t> &live : sl.live)
    live.resize(n1, 1);
  sl.n = n1;
  if (c1 > c0) {
    for (uint32_t h = 0; h < H; ++h) {
      const kvc_rt_encoding &enc = cfg_.encodingOf(layer, h);
      const num::SideEncoding key = toNumerics(enc.key);
      const num::SideEncoding value = toNumerics(enc.value);
      std::vector<float> k =
          num::compressRoundTrip(sl.keys[h].data() + c0 * D, c1 - c0, D, key);
      std::vector<float> v = num::compressRoundTrip(
          sl.values[h].data() + c0 * D, c1 - c0, D, value);
      sl.deqKeys[h].insert(sl.deqKeys[h].end(), k.begin(), k.end());
      sl.deqValues[h].insert(sl.deqValues[h].end(), v.begin(), v.end());
    }
  }
}

std::vector<int64_t> ModelDriver::pageTables(const std::vector<kvc_rt_seq> &ids,
                                             uint32_t layer) const {
  std::vector<int64_t> tables;
  for (kvc_rt_seq id : ids) {
    kvc_rt_sequence_view view;
    if (kvc_rt_sequence_view_get(cache_, id, layer, &view) != KVC_RT_OK) {
      tables.push_back(-1); // a dead sequence
      continue;
    }
    tables.insert(tables.end(),
                  {int64_t(view.num_tokens), int64_t(view.compressed_tokens),
                   int64_t(view.num_pages)});
    tables.insert(tables.end(), view.page_table,
                  view.page_table + view.num_pages);
  }
  return tables;
}

std::string ModelDriver::opAppend(Choices &c) {
  if (seqs_.empty())
    return opCreate();
  const kvc_rt_cache_config &cfg = cfg_.config;
  // A third of the appends reserve their tokens (kvc_rt_reserve_append) and
  // write them by hand, as generated append code does; only where the
  // arena is host memory (not CUDA).
  const bool reserve = c.below(3) == 2;
  const uint32_t layer = c.below(cfg.num_layers);
  if (reserve && cfg.backend != KVC_RT_BACKEND_CUDA)
    return opReserveAppend(c, layer);
  Seq &seq = seqs_[c.below(static_cast<uint32_t>(seqs_.size()))];
  SeqLayer &sl = seq.layers[layer];
  const uint32_t count = chooseCount(c, cfg.max_tokens - sl.n);
  const AppendInput in = makeInput(c, count);
  const kvc_rt_tokens tokens = in.tokens();

  // Predict the outcome.
  const uint64_t n0 = sl.n, n1 = n0 + count;
  const uint64_t c0 = compressed(layer, n0), c1 = compressed(layer, n1);
  std::map<int, int> copied;
  const uint64_t needed = pagesNeeded(sl, layer, count, copied);
  const uint64_t freePages = cfg.pages_per_layer - used_[layer];

  const Fingerprint before = fingerprint();
  kvc_rt_status s = kvc_rt_append(cache_, seq.id, layer, &tokens);
  if (n1 > cfg.max_tokens)
    return expectFailure(s, KVC_RT_ERROR_CAPACITY_EXCEEDED, before,
                         "append past max_tokens");
  if (needed > freePages)
    return expectFailure(s, KVC_RT_ERROR_OUT_OF_MEMORY, before,
                         "append with exhausted pools");
  ++counts_.append;
  counts_.appendedTokens += count;
  if (s != KVC_RT_OK)
    return "append: " + statusText(s) + ": " + kvc_rt_last_error();

  applyAppend(sl, layer, in);
  // Checking the whole sequence costs O(n); do it often, not always.
  const bool flushed = c1 > c0;
  if (c.below(flushed ? 3 : 12) == 0)
    return checkSequence(seq, layer, false, c.below(4) == 0);
  return "";
}

std::string ModelDriver::opReserveAppend(Choices &c, uint32_t layer) {
  const kvc_rt_cache_config &cfg = cfg_.config;
  const Fingerprint before = fingerprint();
  // 1 to 4 distinct live sequences in a random order (indices into seqs_,
  // which no call below changes).
  std::vector<size_t> pick(seqs_.size());
  for (size_t i = 0; i < pick.size(); ++i)
    pick[i] = i;
  const uint32_t size =
      1 + c.below(std::min<uint32_t>(static_cast<uint32_t>(pick.size()), 4));
  for (uint32_t i = 0; i < size; ++i)
    std::swap(pick[i],
              pick[i + c.below(static_cast<uint32_t>(pick.size() - i))]);
  pick.resize(size);
  // Sequences at max_tokens fail every batch they are in: mostly leave
  // them out (when others remain).
  auto full = [&](size_t p) {
    return seqs_[p].layers[layer].n == cfg.max_tokens;
  };
  if (c.below(4) != 0 && !std::all_of(pick.begin(), pick.end(), full))
    pick.erase(std::remove_if(pick.begin(), pick.end(), full), pick.end());
  std::vector<kvc_rt_seq> ids;
  for (size_t p : pick)
    ids.push_back(seqs_[p].id);
  // Now and then a freed sequence among them: the whole batch fails.
  size_t deadAt = SIZE_MAX;
  if (!freed_.empty() && c.below(12) == 0) {
    deadAt = c.below(static_cast<uint32_t>(pick.size()) + 1);
    const kvc_rt_seq dead =
        freed_[c.below(static_cast<uint32_t>(freed_.size()))];
    ids.insert(ids.begin() + deadAt, dead);
  }
  // One count for the batch, fitting its longest sequence (rarely none).
  uint64_t room = UINT64_MAX;
  for (size_t p : pick)
    room = std::min<uint64_t>(room, cfg.max_tokens - seqs_[p].layers[layer].n);
  const uint32_t count = c.below(24) == 0 ? 0 : chooseCount(c, room);
  std::vector<AppendInput> inputs;
  for (size_t i = 0; i < pick.size() && count > 0; ++i)
    inputs.push_back(makeInput(c, count));

  // Predict the outcome: the batch is checked entry by entry (a dead
  // sequence, then max_tokens), then its pages are counted together; the
  // copies of a shared page are those of appends one after the other.
  kvc_rt_status expected = KVC_RT_OK;
  const char *what = "";
  if (ids.size() > cfg.max_sequences) {
    expected = KVC_RT_ERROR_INVALID_ARGUMENT;
    what = "reserve_append of more sequences than slots";
  }
  std::map<int, int> copied;
  uint64_t needed = 0;
  for (size_t i = 0, j = 0; i < ids.size() && expected == KVC_RT_OK; ++i) {
    if (i == deadAt) {
      expected = KVC_RT_ERROR_INVALID_SEQUENCE;
      what = "reserve_append with a freed sequence";
      continue;
    }
    const SeqLayer &sl = seqs_[pick[j++]].layers[layer];
    if (sl.n + count > cfg.max_tokens) {
      expected = KVC_RT_ERROR_CAPACITY_EXCEEDED;
      what = "reserve_append past max_tokens";
      continue;
    }
    needed += pagesNeeded(sl, layer, count, copied);
  }
  if (expected == KVC_RT_OK && needed > cfg.pages_per_layer - used_[layer]) {
    expected = KVC_RT_ERROR_OUT_OF_MEMORY;
    what = "reserve_append with exhausted pools";
  }

  const std::vector<int64_t> tables = pageTables(ids, layer);
  std::vector<kvc_rt_append_range> out(ids.size(),
                                       {UINT64_MAX, 0, UINT64_MAX, 0});
  const kvc_rt_status s = kvc_rt_reserve_append(
      cache_, layer, ids.data(), static_cast<uint32_t>(ids.size()), count,
      out.data());
  const std::string batch = "reserve_append of " + std::to_string(count) +
                            " tokens to " + std::to_string(ids.size()) +
                            " sequences in layer " + std::to_string(layer);
  if (expected != KVC_RT_OK) {
    // All or none: no count, page or page table may have changed.
    std::string err = expectFailure(s, expected, before, what);
    if (err.empty() && pageTables(ids, layer) != tables)
      err = std::string(what) + ": a failed reservation changed a page table";
    return err.empty() ? err : batch + ": " + err;
  }
  if (s != KVC_RT_OK)
    return batch + ": " + statusText(s) + ": " + kvc_rt_last_error();
  for (size_t i = 0; i < ids.size(); ++i) {
    const uint64_t n0 = seqs_[pick[i]].layers[layer].n, n1 = n0 + count;
    const kvc_rt_append_range &r = out[i];
    if (r.old_tokens != n0 || r.new_tokens != n1 ||
        r.old_compressed != compressed(layer, n0) ||
        r.new_compressed != compressed(layer, n1))
      return batch + ": entry " + std::to_string(i) + " reserved [" +
             std::to_string(r.old_tokens) + ", " +
             std::to_string(r.new_tokens) + ") compressed [" +
             std::to_string(r.old_compressed) + ", " +
             std::to_string(r.new_compressed) + "), the model [" +
             std::to_string(n0) + ", " + std::to_string(n1) + ")";
  }
  if (count == 0) {
    // Nothing reserved: the current counts, the cache unchanged.
    if (!(fingerprint() == before) || pageTables(ids, layer) != tables)
      return batch + ": reserving no tokens changed the cache";
    return "";
  }

  // The caller's part, entry by entry; the model moves as kvc_rt_append
  // calls in the batch's order would.
  ++counts_.reserveBatches;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string err =
        writeReserved(cache_, ids[i], layer, out[i], inputs[i].tokens());
    if (!err.empty())
      return batch + ": " + err;
    applyAppend(seqs_[pick[i]].layers[layer], layer, inputs[i]);
    ++counts_.append;
    ++counts_.reserved;
    counts_.appendedTokens += count;
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    const bool flushed = out[i].new_compressed > out[i].old_compressed;
    if (c.below(flushed ? 3 : 12) == 0) {
      const std::string err =
          checkSequence(seqs_[pick[i]], layer, false, c.below(4) == 0);
      if (!err.empty())
        return batch + ", entry " + std::to_string(i) + ": " + err;
    }
  }
  return "";
}

std::string ModelDriver::opReserveFailure(Choices &c,
                                          const Fingerprint &before) {
  const kvc_rt_cache_config &cfg = cfg_.config;
  const uint32_t layer = c.below(cfg.num_layers);
  const kvc_rt_seq live =
      seqs_.empty() ? kvc_rt_seq(0)
                    : seqs_[c.below(static_cast<uint32_t>(seqs_.size()))].id;
  std::vector<kvc_rt_append_range> out(cfg.max_sequences + 4);
  switch (c.below(5)) {
  case 0: { // a sequence twice (each would fit alone)
    std::vector<kvc_rt_seq> ids;
    for (const Seq &s : seqs_)
      if (s.layers[layer].n < cfg.max_tokens && ids.size() < 3)
        ids.push_back(s.id);
    if (ids.empty())
      return "";
    const kvc_rt_seq again = ids[c.below(static_cast<uint32_t>(ids.size()))];
    ids.insert(ids.begin() + c.below(static_cast<uint32_t>(ids.size()) + 1),
               again);
    const std::vector<int64_t> tables = pageTables(ids, layer);
    std::string err = expectFailure(
        kvc_rt_reserve_append(cache_, layer, ids.data(),
                              static_cast<uint32_t>(ids.size()), 1, out.data()),
        KVC_RT_ERROR_INVALID_ARGUMENT, before,
        "reserve_append with a sequence twice");
    if (err.empty() && pageTables(ids, layer) != tables)
      err = "reserve_append with a sequence twice changed a page table";
    return err;
  }
  case 1: { // more sequences than slots; UINT32_MAX with a short array
    // (the count alone rejects the batch, nothing past it is read)
    std::vector<kvc_rt_seq> ids(cfg.max_sequences + 1 + c.below(3), live);
    const uint32_t count =
        c.below(4) == 0 ? UINT32_MAX : static_cast<uint32_t>(ids.size());
    return expectFailure(kvc_rt_reserve_append(cache_, layer, ids.data(), count,
                                               1 + c.below(4), out.data()),
                         KVC_RT_ERROR_INVALID_ARGUMENT, before,
                         "reserve_append of more sequences than slots");
  }
  case 2: // NULL seqs or cache
    if (c.below(2))
      return expectFailure(kvc_rt_reserve_append(cache_, layer, nullptr,
                                                 1 + c.below(3), 1, out.data()),
                           KVC_RT_ERROR_NULL_POINTER, before,
                           "reserve_append of NULL seqs");
    return expectFailure(
        kvc_rt_reserve_append(nullptr, layer, &live, 1, 1, out.data()),
        KVC_RT_ERROR_NULL_POINTER, before, "reserve_append on a NULL cache");
  case 3:
    return expectFailure(
        kvc_rt_reserve_append(cache_, layer, &live, 1, 1, nullptr),
        KVC_RT_ERROR_NULL_POINTER, before, "reserve_append into NULL out");
  default: // a layer out of range, even for an empty batch
    return expectFailure(
        kvc_rt_reserve_append(cache_, cfg.num_layers + c.below(3), &live,
                              seqs_.empty() ? 0 : 1, 1, out.data()),
        KVC_RT_ERROR_INVALID_ARGUMENT, before,
        "reserve_append in a layer out of range");
  }
}

} // namespace testing
} // namespace rt
} // namespace kvc
