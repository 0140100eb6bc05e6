//===- ModelDriver.h - Model-based testing of the runtime -------*- C++ -*-===//
//
// Drives a cache through the C API with random (or fuzzer-chosen) sequences
// of create / fork / free / append calls, plus calls that must fail, and
// checks every result against a simple reference model. On the host
// backends a third of the appends reserve a batch of sequences
// (kvc_rt_reserve_append) and write the tokens by hand (ReservedWrite.h);
// the model is that of kvc_rt_append calls one after the other:
//  - per sequence, layer and head, the appended tokens as fp16-rounded
//    floats; the expected dequantized view is the numerics library's
//    simulateCacheSide of them, and the expected page bytes are what
//    writePageTokens produces in a zeroed block;
//  - abstract pages with reference counts (fork shares, copy-on-write
//    splits), so the runtime's page tables must be a bijective renaming of
//    the model's, and its stats / free counts must match;
//  - the predicted status of every call (capacity, out-of-memory, invalid
//    ids, shapes, eviction policies), with the state unchanged after a
//    failure;
//  - per sequence, layer and head, the live set under eviction (computed
//    with the numerics library's selectKeptTokens, the spec), and which
//    pages must be holes: gathers return NaN for evicted tokens.
// Used by the GoogleTest model test, the libFuzzer target and the CUDA test,
// so it depends on nothing but the C API and the numerics library.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_RUNTIME_TEST_MODELDRIVER_H
#define KVC_RUNTIME_TEST_MODELDRIVER_H

#include "kvc/Numerics/Encoding.h"
#include "kvc_runtime.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace kvc {
namespace rt {
namespace testing {

/// Where the driver's decisions come from.
class Choices {
public:
  virtual ~Choices() = default;
  /// A value in [0, bound); bound > 0.
  virtual uint32_t below(uint32_t bound) = 0;
  /// A float from a normal-ish distribution (for token values).
  virtual float gaussian() = 0;
  /// True once a finite source (fuzz input) has run dry.
  virtual bool exhausted() const { return false; }
};

class RandomChoices final : public Choices {
public:
  explicit RandomChoices(uint64_t seed) : rng_(seed) {}
  uint32_t below(uint32_t bound) override {
    return static_cast<uint32_t>(rng_() % bound);
  }
  float gaussian() override { return normal_(rng_); }

private:
  std::mt19937_64 rng_;
  std::normal_distribution<float> normal_{0.0f, 1.0f};
};

/// Decisions from fuzzer bytes; once they are used up every choice is 0.
/// Token values come from a generator seeded by the input instead, so that
/// the bytes steer the operations (special values are chosen by bytes).
class ByteChoices final : public Choices {
public:
  ByteChoices(const uint8_t *data, size_t size);
  uint32_t below(uint32_t bound) override;
  float gaussian() override { return normal_(rng_); }
  bool exhausted() const override { return pos_ >= size_; }

private:
  uint8_t next() { return pos_ < size_ ? data_[pos_++] : 0; }
  const uint8_t *data_;
  size_t size_;
  size_t pos_ = 0;
  std::mt19937 rng_;
  std::normal_distribution<float> normal_{0.0f, 1.0f};
};

/// A cache configuration with its own copy of the encodings (one per layer,
/// or one per KV head when config.encodings_per_layer == kv_heads).
struct ModelConfig {
  kvc_rt_cache_config config;
  std::vector<kvc_rt_encoding> encodings;
  std::string name;
  /// config with .encodings pointing into `encodings`.
  kvc_rt_cache_config get() const;
  /// The encoding of KV head `head` of `layer`.
  const kvc_rt_encoding &encodingOf(uint32_t layer, uint32_t head) const;
};

/// Encoding helpers.
kvc_rt_side_encoding fp16Side();
kvc_rt_side_encoding quantSide(uint32_t bits, uint32_t axis, uint32_t group);
/// The numerics form of a (valid) C side encoding.
numerics::SideEncoding toNumerics(const kvc_rt_side_encoding &s);
kvc_rt_side_encoding fp8Side(uint32_t format);
kvc_rt_encoding makeEncoding(kvc_rt_side_encoding key,
                             kvc_rt_side_encoding value, uint32_t residual);

/// Small configurations covering every side encoding, R < T, R > T, R = 0,
/// R not a multiple of 32, odd page sizes, per-layer and per-head encodings.
size_t numPresets();
ModelConfig preset(size_t index, uint32_t backend);

/// Gives every KV head of `m` its own encoding, chosen by `choices` among
/// the side encodings valid for its layer (the layer's residual is kept).
void randomizeHeadEncodings(ModelConfig &m, Choices &choices);

/// What ran: `steps` operations; of them, successful creates, forks, frees
/// and appends, and calls that failed as the model predicted.
struct OpCounts {
  uint64_t steps = 0, create = 0, fork = 0, free = 0,
           append = 0,    ///< sequence appends, reserved ones included
      reserved = 0,       ///< of those, through kvc_rt_reserve_append
      reserveBatches = 0, ///< successful reservations of >= 1 token
      expectedFailures = 0, fullChecks = 0, appendedTokens = 0,
           copyOnWrites = 0, ///< appends that had to copy a shared page
      evict = 0,             ///< successful kvc_rt_evict calls
      evictedTokens = 0,     ///< tokens (over heads) they evicted
      demotedTokens = 0,     ///< of those, kept at a lower precision
      holes = 0;             ///< pages they released
};

class ModelDriver {
public:
  ModelDriver() = default;
  ~ModelDriver();
  ModelDriver(const ModelDriver &) = delete;
  ModelDriver &operator=(const ModelDriver &) = delete;

  /// Creates the cache; "" on success, else why not.
  std::string init(const ModelConfig &config);
  /// One operation chosen by `choices`, checked against the model; "" or
  /// the first mismatch.
  std::string step(Choices &choices);
  /// Compares everything: verify, stats, every sequence's dequantized view
  /// and page bytes, and the page-table renaming.
  std::string checkAll();
  /// Frees every sequence (checked) and destroys the cache.
  std::string finish();

  const OpCounts &counts() const { return counts_; }
  kvc_rt_cache *cache() const { return cache_; }

private:
  struct SeqLayer {
    uint64_t n = 0;
    std::vector<std::vector<float>> keys;   ///< [H][n*D], fp16 values
    std::vector<std::vector<float>> values; ///< [H][n*D]
    /// [H][c(n)*D]: the dequantized compressed rows, grown at each flush
    /// with compressRoundTrip (checkAll compares them with
    /// simulateCacheSide, the spec).
    std::vector<std::vector<float>> deqKeys;
    std::vector<std::vector<float>> deqValues;
    std::vector<int> pages; ///< abstract page ids; -1 for a hole
    std::vector<std::vector<uint8_t>> live; ///< [H][n] 1 live, 0 evicted
    /// Two-tier eviction: the demotion encoding once the first demoting
    /// eviction evicted a token, and the rows readers then see for the
    /// evicted tokens, [H] maps token -> row [D].
    bool demoting = false;
    kvc_rt_encoding demote{};
    std::vector<std::map<uint64_t, std::vector<float>>> demotedKeys;
    std::vector<std::map<uint64_t, std::vector<float>>> demotedValues;
  };
  struct Seq {
    kvc_rt_seq id = 0;
    std::vector<SeqLayer> layers;
  };
  struct Fingerprint {
    std::vector<kvc_rt_layer_stats> layers;
    kvc_rt_cache_stats cache;
    std::vector<uint64_t> lengths;
    bool operator==(const Fingerprint &o) const;
  };

  std::string opCreate();
  std::string opFork(Choices &c);
  std::string opFree(Choices &c);
  std::string opAppend(Choices &c);
  /// A batch of distinct sequences (sometimes with a dead one) appended
  /// through kvc_rt_reserve_append and writeReserved; the model is that of
  /// kvc_rt_append calls one after the other, in the batch's order.
  std::string opReserveAppend(Choices &c, uint32_t layer);
  std::string opReserveFailure(Choices &c, const Fingerprint &before);
  std::string opEvict(Choices &c);
  std::string opEvictFailure(Choices &c, const Fingerprint &before);
  /// True when page `page` of `sl` holds no live token in any head: all of
  /// its positions are below `n` and evicted.
  bool pageDead(const SeqLayer &sl, uint64_t page, uint64_t n) const;
  std::string opExpectedFailure(Choices &c);

  /// Gathers (layer, seq) and compares with the model; `spec` also checks
  /// the model's incremental view against simulateCacheSide, `bytes` the
  /// stored page bytes.
  std::string checkSequence(const Seq &seq, uint32_t layer, bool spec,
                            bool bytes);
  std::string checkStats();
  std::string checkRenaming();
  Fingerprint fingerprint();
  /// Failed call: status must be `expected` and nothing may have changed.
  std::string expectFailure(kvc_rt_status got, kvc_rt_status expected,
                            const Fingerprint &before, const char *what);

  /// One append's input in kvc_rt_append's form: a random layout and
  /// dtype, values from `c` (rarely NaN, Inf, fp16 overflow).
  struct AppendInput {
    uint32_t count = 0, heads = 0, dim = 0;
    bool half = false;
    uint64_t headStride = 0, tokenStride = 0; ///< as passed (0: dense)
    uint64_t hs = 0, ts = 0;                  ///< the strides in effect
    std::vector<float> kf, vf;
    std::vector<uint16_t> kh, vh;
    kvc_rt_tokens tokens() const;
    /// fp16 value of (head, token, channel) as the cache stores it.
    float stored(bool value, uint32_t h, uint32_t t, uint32_t ch) const;
  };
  AppendInput makeInput(Choices &c, uint32_t count) const;
  /// Tokens to append to sequences with `room` tokens left before
  /// max_tokens: mostly one, sometimes a chunk, rarely a prefill; 1 to 4
  /// past max_tokens when room is 0.
  uint32_t chooseCount(Choices &c, uint64_t room) const;
  /// New pages a `count`-token append to `sl` takes. `copied` counts the
  /// shared pages that earlier appends of the same batch copied (their
  /// references are gone by then); the copy this one makes is added.
  uint64_t pagesNeeded(const SeqLayer &sl, uint32_t layer, uint64_t count,
                       std::map<int, int> &copied) const;
  /// The model's side of a successful append of `in` to `sl`.
  void applyAppend(SeqLayer &sl, uint32_t layer, const AppendInput &in);
  /// num_tokens and the host page table of each of `ids` in `layer` (a
  /// dead id leaves a marker), to show a failed call changed none.
  std::vector<int64_t> pageTables(const std::vector<kvc_rt_seq> &ids,
                                  uint32_t layer) const;

  uint64_t compressed(uint32_t layer, uint64_t n) const;
  uint32_t pagesFor(uint32_t layer, uint64_t n) const;
  int newPage(uint32_t layer);
  void dropPage(uint32_t layer, int page);

  ModelConfig cfg_;
  kvc_rt_cache *cache_ = nullptr;
  std::vector<Seq> seqs_;
  std::vector<kvc_rt_seq> freed_;
  std::vector<std::vector<int>> refs_; ///< [layer][abstract page] refcount
  std::vector<uint32_t> used_;         ///< [layer] pages with refs > 0
  int nextPage_ = 0;
  OpCounts counts_;
};

} // namespace testing
} // namespace rt
} // namespace kvc

#endif // KVC_RUNTIME_TEST_MODELDRIVER_H
