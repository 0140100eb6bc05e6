//===- LayoutTest.cpp - Page layout version 2 tests -----------------------===//

#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Layout.h"
#include "kvc/Numerics/Quantize.h"

#include "gtest/gtest.h"

#include <random>

using namespace kvc::numerics;

namespace {
/// Matrix-form channel-axis codes [rows][D][groupBytes] in the page's
/// channel-pair order, restated from docs/layout.md: for channels 2p and
/// 2p + 1 and word k, bytes 4k, 4k+1 of 2p, then of 2p + 1, then bytes
/// 4k+2, 4k+3 of 2p, then of 2p + 1; an odd D's last channel as it is.
std::vector<uint8_t> pairChannels(const std::vector<uint8_t> &matrix,
                                  size_t d, size_t groupBytes) {
  std::vector<uint8_t> page(matrix.size());
  const size_t rowBytes = d * groupBytes;
  for (size_t row = 0; row < matrix.size(); row += rowBytes) {
    size_t out = row;
    for (size_t c = 0; c + 1 < d; c += 2)
      for (size_t k = 0; k < groupBytes / 4; ++k)
        for (size_t half = 0; half < 2; ++half)
          for (size_t channel = c; channel < c + 2; ++channel)
            for (size_t i = 0; i < 2; ++i)
              page[out++] =
                  matrix[row + channel * groupBytes + 4 * k + 2 * half + i];
    for (size_t i = out; i < row + rowBytes; ++i)
      page[i] = matrix[i];
  }
  return page;
}

std::vector<float> randomMatrix(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> v(n);
  for (float &x : v)
    x = normal(rng);
  return v;
}

void expectLayout(const BlockLayout &l, size_t codes, size_t paramsOffset,
                  size_t params, size_t count, size_t block) {
  EXPECT_EQ(l.codesOffset, 0u);
  EXPECT_EQ(l.codesBytes, codes);
  EXPECT_EQ(l.paramsOffset, paramsOffset);
  EXPECT_EQ(l.paramsBytes, params);
  EXPECT_EQ(l.paramsCount, count);
  EXPECT_EQ(l.blockBytes, block);
  EXPECT_EQ(l.paramsOffset % kLayoutAlignment, 0u);
  EXPECT_EQ(l.blockBytes % kLayoutAlignment, 0u);
}
} // namespace

TEST(Layout, Version) { EXPECT_EQ(kLayoutVersion, 2u); }

TEST(Layout, BlockSizes) {
  const auto ch = [](unsigned b, unsigned g) {
    return SideEncoding::quantized(b, QuantAxis::Channel, g);
  };
  const auto tok = [](unsigned b, unsigned g) {
    return SideEncoding::quantized(b, QuantAxis::Token, g);
  };
  // KIVI-2 keys, D=128, T=128: 128*128*2/8 = 4096 code bytes; (128/32)*128 =
  // 512 groups * 4 bytes of (scale, zero).
  expectLayout(computeBlockLayout(ch(2, 32), 128, 128), 4096, 4096, 2048, 512,
               6144);
  EXPECT_DOUBLE_EQ(bytesPerToken(ch(2, 32), 128, 128), 48.0);
  // 2-bit values per token, D=128, T=128: 128 tokens * 4 groups.
  expectLayout(computeBlockLayout(tok(2, 32), 128, 128), 4096, 4096, 2048, 512,
               6144);
  // 3-bit, group = head_dim = 128, T=32: 1536 code bytes, 32 groups.
  expectLayout(computeBlockLayout(tok(3, 128), 128, 32), 1536, 1536, 128, 32,
               1664);
  // 4-bit channel axis, group 64, D=64, T=64: 2048 bytes, 64 groups.
  expectLayout(computeBlockLayout(ch(4, 64), 64, 64), 2048, 2048, 256, 64,
               2304);
  // 8-bit per token, D=64, T=32.
  expectLayout(computeBlockLayout(tok(8, 64), 64, 32), 2048, 2048, 128, 32,
               2176);
  // fp8, D=64, T=32: 2048 code bytes + 32 fp16 scales.
  expectLayout(computeBlockLayout(SideEncoding::fp8Format(FP8Format::E4M3), 64,
                                  32),
               2048, 2048, 64, 32, 2112);
  // Plain fp16, D=64, T=32.
  expectLayout(computeBlockLayout(SideEncoding::plain(), 64, 32), 4096, 4096,
               0, 0, 4096);
  EXPECT_DOUBLE_EQ(bytesPerToken(SideEncoding::plain(), 64, 32), 128.0);
  // Padding: channel axis with an odd head_dim. D=3, 3-bit, T=32: codes
  // 3 * 12 = 36 bytes -> params at 48, 3 groups * 4 = 12 -> 60 -> block 64.
  expectLayout(computeBlockLayout(ch(3, 32), 3, 32), 36, 48, 12, 3, 64);
  // Decoupled K and V differ in size.
  const CacheEncoding enc{ch(2, 32), tok(4, 32), 128};
  EXPECT_DOUBLE_EQ(cacheBytesPerToken(enc, 128, 128), 48.0 + 80.0);
  EXPECT_EQ(residualStagingBytes(128, 64), 16384u);
  EXPECT_EQ(residualStagingBytes(0, 64), 0u);
}

TEST(Layout, Validation) {
  const SideEncoding k = SideEncoding::quantized(2, QuantAxis::Channel, 64);
  EXPECT_EQ(validatePageConfig(k, 64, 128), "");
  EXPECT_NE(validatePageConfig(k, 64, 96), "");  // 96 % 64
  EXPECT_NE(validatePageConfig(k, 64, 48), "");  // 48 % 32
  EXPECT_NE(validatePageConfig(k, 64, 0), "");
  EXPECT_NE(validatePageConfig(SideEncoding::quantized(2, QuantAxis::Token, 64),
                               96, 32),
            "");
  EXPECT_EQ(validatePageConfig(SideEncoding::plain(), 7, 32), "");
}

// Writing a page then reading it equals the matrix form, byte for byte
// (channel-axis channels paired), and writing it in pieces (one token / one
// group at a time) gives the same bytes.
TEST(Layout, PageRoundTripEqualsMatrixForm) {
  const unsigned d = 64, t = 128;
  const SideEncoding sides[] = {
      SideEncoding::quantized(2, QuantAxis::Channel, 32),
      SideEncoding::quantized(3, QuantAxis::Channel, 64),
      SideEncoding::quantized(4, QuantAxis::Token, 32),
      SideEncoding::quantized(8, QuantAxis::Token, 64),
      SideEncoding::quantized(3, QuantAxis::Token, 64),
      SideEncoding::fp8Format(FP8Format::E4M3),
      SideEncoding::fp8Format(FP8Format::E5M2),
      SideEncoding::plain(),
  };
  const std::vector<float> x = randomMatrix(size_t{t} * d, 3);
  for (const SideEncoding &side : sides) {
    SCOPED_TRACE(side.toString());
    const BlockLayout l = computeBlockLayout(side, d, t);
    std::vector<uint8_t> block(l.blockBytes, 0);
    writePageTokens(x.data(), 0, t, side, d, t, block.data());

    std::vector<float> expected(x.size());
    if (side.isQuant()) {
      const QuantizedMatrix q = quantizeMatrix(x.data(), t, d, side.quant);
      ASSERT_EQ(q.codes.size(), l.codesBytes);
      const std::vector<uint8_t> codes =
          side.isChannelAxis()
              ? pairChannels(q.codes, d, side.quant.group * side.quant.bits / 8)
              : q.codes;
      EXPECT_TRUE(std::equal(codes.begin(), codes.end(), block.begin()));
      for (size_t g = 0; g < q.scales.size(); ++g) {
        // Token axis: (scale, zero) a group; channel axis: (scale, scale,
        // zero, zero) a channel pair.
        size_t scale = 4 * g, zero = 4 * g + 2;
        if (side.isChannelAxis()) {
          scale = 4 * (g - g % 2) + 2 * (g % 2);
          zero = scale + 4;
        }
        const uint8_t *p = block.data() + l.paramsOffset;
        EXPECT_EQ(p[scale] | p[scale + 1] << 8, q.scales[g]);
        EXPECT_EQ(p[zero] | p[zero + 1] << 8, q.zeros[g]);
      }
      expected = dequantizeMatrix(q, t, d, side.quant);
    } else if (side.isFP8()) {
      std::vector<uint8_t> codes(x.size());
      std::vector<uint16_t> scales(t);
      quantizeFP8Matrix(x.data(), t, d, side.fp8, codes.data(), scales.data());
      EXPECT_TRUE(std::equal(codes.begin(), codes.end(), block.begin()));
      for (size_t i = 0; i < t; ++i) {
        const uint8_t *p = block.data() + l.paramsOffset + 2 * i;
        EXPECT_EQ(p[0] | p[1] << 8, scales[i]);
      }
      dequantizeFP8Matrix(codes.data(), scales.data(), t, d, side.fp8,
                          expected.data());
    } else {
      for (size_t i = 0; i < x.size(); ++i) {
        const uint16_t h = floatToHalf(x[i]);
        EXPECT_EQ(block[2 * i] | block[2 * i + 1] << 8, h);
        expected[i] = halfToFloat(h);
      }
    }
    // Padding stays zero.
    for (size_t i = l.codesBytes; i < l.paramsOffset; ++i)
      EXPECT_EQ(block[i], 0);
    for (size_t i = l.paramsOffset + l.paramsBytes; i < l.blockBytes; ++i)
      EXPECT_EQ(block[i], 0);

    std::vector<float> back(x.size());
    readPageTokens(block.data(), 0, t, side, d, t, back.data());
    EXPECT_EQ(back, expected);

    // Piecewise writes, and a partial read in the middle of the page.
    const size_t step = side.tokenGranularity();
    std::vector<uint8_t> pieces(l.blockBytes, 0);
    for (size_t first = 0; first < t; first += step)
      writePageTokens(x.data() + first * d, first, step, side, d, t,
                      pieces.data());
    EXPECT_EQ(pieces, block);
    const size_t mid = t / 2; // a multiple of every group size used here
    std::vector<float> part(step * d);
    readPageTokens(block.data(), mid, step, side, d, t, part.data());
    EXPECT_TRUE(std::equal(part.begin(), part.end(),
                           expected.begin() + mid * d));
  }
}

// Version 2's point: in a paired channel-axis page, bits 2i and 2i + 16 of
// each word are token i of the two channels (2-bit codes here), so a word
// read with one mask holds one token of both. An odd D keeps its last
// channel unpaired, and its round trip is exact too.
TEST(Layout, ChannelPairsShareWords) {
  const unsigned d = 6, t = 64, group = 32;
  const SideEncoding side =
      SideEncoding::quantized(2, QuantAxis::Channel, group);
  const std::vector<float> x = randomMatrix(size_t{t} * d, 11);
  const BlockLayout l = computeBlockLayout(side, d, t);
  std::vector<uint8_t> block(l.blockBytes, 0);
  writePageTokens(x.data(), 0, t, side, d, t, block.data());
  const QuantizedMatrix q = quantizeMatrix(x.data(), t, d, side.quant);
  auto matrixCode = [&](size_t token, size_t channel) {
    // Group (token / G, channel), code token % G at bit 2 (token % 16) of
    // its word (token % G) / 16.
    const size_t at = (token / group * d + channel) * 8 + token % group / 16 * 4;
    const uint32_t word = q.codes[at] | q.codes[at + 1] << 8 |
                          q.codes[at + 2] << 16 | uint32_t(q.codes[at + 3]) << 24;
    return word >> (2 * (token % 16)) & 3u;
  };
  for (size_t token = 0; token < t; ++token)
    for (size_t c = 0; c < d; c += 2) {
      // The page word holding token `token` of channels c and c + 1.
      const size_t within = token % group, high = within % 16 / 8;
      const size_t at =
          (token / group * d + c) * 8 + 8 * (within / 16) + 4 * high;
      const uint32_t word = block[at] | block[at + 1] << 8 |
                            block[at + 2] << 16 | uint32_t(block[at + 3]) << 24;
      const unsigned bit = 2 * (within % 8);
      EXPECT_EQ(word >> bit & 3u, matrixCode(token, c)) << token << " " << c;
      EXPECT_EQ(word >> (bit + 16) & 3u, matrixCode(token, c + 1))
          << token << " " << c;
    }

  const SideEncoding odd = SideEncoding::quantized(3, QuantAxis::Channel, 32);
  const std::vector<float> y = randomMatrix(size_t{32} * 3, 12);
  std::vector<uint8_t> oddBlock(computeBlockLayout(odd, 3, 32).blockBytes, 0);
  writePageTokens(y.data(), 0, 32, odd, 3, 32, oddBlock.data());
  const QuantizedMatrix oq = quantizeMatrix(y.data(), 32, 3, odd.quant);
  // Channel 2 (unpaired): its 12 bytes and (scale, zero) where the matrix
  // form has them.
  EXPECT_TRUE(std::equal(oq.codes.begin() + 24, oq.codes.end(),
                         oddBlock.begin() + 24));
  const size_t p = computeBlockLayout(odd, 3, 32).paramsOffset + 8;
  EXPECT_EQ(oddBlock[p] | oddBlock[p + 1] << 8, oq.scales[2]);
  EXPECT_EQ(oddBlock[p + 2] | oddBlock[p + 3] << 8, oq.zeros[2]);
  std::vector<float> back(y.size());
  readPageTokens(oddBlock.data(), 0, 32, odd, 3, 32, back.data());
  EXPECT_EQ(back, dequantizeMatrix(oq, 32, 3, odd.quant));
}
