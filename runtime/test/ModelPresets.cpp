//===- ModelPresets.cpp - Configurations and decision sources -------------===//
//
// The cache configurations the model-based tests, the fuzzer and the CUDA
// test run on, the encoding helpers, and the fuzzer's byte-driven choices.
//
//===----------------------------------------------------------------------===//

#include "ModelDriver.h"

namespace kvc {
namespace rt {
namespace testing {

ByteChoices::ByteChoices(const uint8_t *data, size_t size)
    : data_(data), size_(size) {
  uint32_t seed = 2166136261u; // FNV-1a of the input
  for (size_t i = 0; i < size; ++i)
    seed = (seed ^ data[i]) * 16777619u;
  rng_.seed(seed);
}

uint32_t ByteChoices::below(uint32_t bound) {
  if (bound <= 1)
    return 0;
  uint32_t v = next();
  if (bound > 256)
    v = (v << 8) | next();
  if (bound > 65536)
    v = (v << 8) | next();
  return v % bound;
}

kvc_rt_cache_config ModelConfig::get() const {
  kvc_rt_cache_config c = config;
  c.encodings = encodings.data();
  return c;
}

const kvc_rt_encoding &ModelConfig::encodingOf(uint32_t layer,
                                               uint32_t head) const {
  const uint32_t per = config.encodings_per_layer;
  if (per <= 1)
    return encodings[layer];
  return encodings[size_t{layer} * per + head];
}

kvc_rt_side_encoding fp16Side() { return kvc_rt_side_encoding{}; }

numerics::SideEncoding toNumerics(const kvc_rt_side_encoding &s) {
  switch (s.kind) {
  case KVC_RT_SIDE_QUANT:
    return numerics::SideEncoding::quantized(
        s.bits,
        s.axis == KVC_RT_AXIS_CHANNEL ? numerics::QuantAxis::Channel
                                      : numerics::QuantAxis::Token,
        s.group);
  case KVC_RT_SIDE_FP8:
    return numerics::SideEncoding::fp8Format(s.fp8_format == KVC_RT_FP8_E4M3
                                            ? numerics::FP8Format::E4M3
                                            : numerics::FP8Format::E5M2);
  default:
    return numerics::SideEncoding::plain();
  }
}

kvc_rt_side_encoding quantSide(uint32_t bits, uint32_t axis, uint32_t group) {
  kvc_rt_side_encoding s{};
  s.kind = KVC_RT_SIDE_QUANT;
  s.bits = bits;
  s.axis = axis;
  s.group = group;
  return s;
}

kvc_rt_side_encoding fp8Side(uint32_t format) {
  kvc_rt_side_encoding s{};
  s.kind = KVC_RT_SIDE_FP8;
  s.fp8_format = format;
  return s;
}

kvc_rt_encoding makeEncoding(kvc_rt_side_encoding key,
                             kvc_rt_side_encoding value, uint32_t residual) {
  kvc_rt_encoding e;
  e.key = key;
  e.value = value;
  e.residual = residual;
  return e;
}

size_t numPresets() { return 7; }

ModelConfig preset(size_t index, uint32_t backend) {
  ModelConfig m;
  kvc_rt_config_init(&m.config);
  kvc_rt_cache_config &c = m.config;
  c.backend = backend;
  const uint32_t CH = KVC_RT_AXIS_CHANNEL, TOK = KVC_RT_AXIS_TOKEN;
  auto set = [&](uint32_t layers, uint32_t heads, uint32_t dim, uint32_t t,
                 uint32_t seqs, uint32_t tokens, uint32_t pages) {
    c.num_layers = layers;
    c.kv_heads = heads;
    c.head_dim = dim;
    c.page_tokens = t;
    c.max_sequences = seqs;
    c.max_tokens = tokens;
    c.pages_per_layer = pages;
  };
  switch (index % numPresets()) {
  case 0: // KIVI-2: channel-axis keys, token-axis values, R < T.
    m.name = "kivi2";
    set(2, 2, 32, 64, 8, 256, 20);
    m.encodings = {makeEncoding(quantSide(2, CH, 32), quantSide(2, TOK, 32), 32),
                   makeEncoding(quantSide(2, CH, 32), quantSide(2, TOK, 32), 32)};
    break;
  case 1: // Different encodings per layer, fp8 on either side, R = 0.
    m.name = "decoupled-mixed";
    set(2, 1, 64, 32, 6, 160, 16);
    m.encodings = {
        makeEncoding(quantSide(4, CH, 32), fp8Side(KVC_RT_FP8_E4M3), 64),
        makeEncoding(fp8Side(KVC_RT_FP8_E5M2), quantSide(3, TOK, 32), 0)};
    break;
  case 2: // fp16 with R not a multiple of 32, 8-bit, R > T.
    m.name = "plain-odd-residual";
    set(3, 3, 32, 32, 5, 130, 10);
    m.encodings = {makeEncoding(fp16Side(), fp16Side(), 5),
                   makeEncoding(quantSide(8, TOK, 32), fp16Side(), 7),
                   makeEncoding(quantSide(2, CH, 32), quantSide(4, TOK, 32), 96)};
    break;
  case 3: // Groups of 64, a residual window of two pages.
    m.name = "long-residual";
    set(1, 2, 64, 64, 6, 400, 18);
    m.encodings = {
        makeEncoding(quantSide(3, CH, 64), quantSide(4, TOK, 64), 128)};
    break;
  case 4: // Pages of 96 tokens; a channel group as large as a page.
    m.name = "page96";
    set(2, 1, 32, 96, 6, 300, 12);
    m.encodings = {
        makeEncoding(quantSide(2, CH, 32), quantSide(2, TOK, 32), 32),
        makeEncoding(quantSide(4, CH, 96), fp8Side(KVC_RT_FP8_E4M3), 96)};
    break;
  case 5: // Every head of a layer encoded differently (granularity=head).
    m.name = "per-head";
    set(2, 3, 64, 64, 6, 256, 16);
    c.encodings_per_layer = 3;
    m.encodings = {
        makeEncoding(quantSide(4, CH, 32), quantSide(2, TOK, 32), 64),
        makeEncoding(quantSide(2, CH, 32), fp8Side(KVC_RT_FP8_E4M3), 64),
        makeEncoding(fp16Side(), quantSide(4, TOK, 64), 64),
        makeEncoding(fp8Side(KVC_RT_FP8_E5M2), fp16Side(), 128),
        makeEncoding(quantSide(3, CH, 64), quantSide(8, TOK, 32), 128),
        makeEncoding(quantSide(2, CH, 32), quantSide(2, TOK, 32), 128)};
    break;
  default: // Per-head encodings with partial pages (R < T, R = 0), one
           // layer whose heads happen to agree.
    m.name = "per-head-partial";
    set(3, 2, 32, 96, 6, 300, 14);
    c.encodings_per_layer = 2;
    m.encodings = {
        makeEncoding(quantSide(2, CH, 32), quantSide(4, TOK, 32), 32),
        makeEncoding(fp16Side(), fp8Side(KVC_RT_FP8_E4M3), 32),
        makeEncoding(fp8Side(KVC_RT_FP8_E4M3), quantSide(3, TOK, 32), 0),
        makeEncoding(quantSide(8, TOK, 32), fp16Side(), 0),
        makeEncoding(quantSide(4, CH, 32), quantSide(2, TOK, 32), 96),
        makeEncoding(quantSide(4, CH, 32), quantSide(2, TOK, 32), 96)};
    break;
  }
  return m;
}

void randomizeHeadEncodings(ModelConfig &m, Choices &choices) {
  const kvc_rt_cache_config &c = m.config;
  const uint32_t CH = KVC_RT_AXIS_CHANNEL, TOK = KVC_RT_AXIS_TOKEN;
  std::vector<kvc_rt_side_encoding> sides = {
      fp16Side(), fp8Side(KVC_RT_FP8_E4M3), fp8Side(KVC_RT_FP8_E5M2)};
  for (uint32_t bits : {2u, 3u, 4u, 8u})
    for (uint32_t axis : {CH, TOK})
      for (uint32_t group : {32u, 64u})
        sides.push_back(quantSide(bits, axis, group));
  std::vector<kvc_rt_encoding> perHead;
  for (uint32_t l = 0; l < c.num_layers; ++l)
    for (uint32_t h = 0; h < c.kv_heads; ++h) {
      const kvc_rt_encoding &base = m.encodingOf(l, h);
      kvc_rt_encoding e = makeEncoding(
          sides[choices.below(uint32_t(sides.size()))],
          sides[choices.below(uint32_t(sides.size()))], base.residual);
      // A choice the layer's residual, head_dim or page size rules out
      // falls back to the head's current encoding.
      if (kvc_rt_encoding_validate(&e, c.head_dim, c.page_tokens) !=
          KVC_RT_OK)
        e = base;
      perHead.push_back(e);
    }
  m.encodings = std::move(perHead);
  m.config.encodings_per_layer = c.kv_heads;
  m.name += "+random-heads";
}

} // namespace testing
} // namespace rt
} // namespace kvc
