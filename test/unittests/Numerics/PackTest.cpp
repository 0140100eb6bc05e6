//===- PackTest.cpp - Bit packing tests -----------------------------------===//

#include "kvc/Numerics/Pack.h"

#include "gtest/gtest.h"

#include <random>
#include <vector>

using namespace kvc::numerics;

namespace {
const unsigned kBits[] = {2, 3, 4, 8};

uint32_t word(const std::vector<uint8_t> &packed, unsigned w) {
  return packed[4 * w] | packed[4 * w + 1] << 8 | packed[4 * w + 2] << 16 |
         uint32_t(packed[4 * w + 3]) << 24;
}

/// The layout rule of Pack.h, spelled out independently: where code i's bits
/// live, as (word, bit) pairs for code bits 0..b-1.
std::pair<unsigned, unsigned> bitLocation(unsigned bits, unsigned i,
                                          unsigned codeBit) {
  if (bits == 3) {
    if (codeBit < 2)
      return {i / 16, 2 * (i % 16) + codeBit};
    return {2, i};
  }
  const unsigned perWord = 32 / bits;
  return {i / perWord, bits * (i % perWord) + codeBit};
}

void checkUnit(const std::vector<uint8_t> &codes, unsigned bits) {
  std::vector<uint8_t> packed(packedUnitBytes(bits), 0xAA);
  packUnit(codes.data(), bits, packed.data());
  // Every bit of the packed unit is accounted for by the layout rule.
  std::vector<uint32_t> expected(bits, 0);
  for (unsigned i = 0; i < 32; ++i)
    for (unsigned b = 0; b < bits; ++b)
      if ((codes[i] >> b) & 1) {
        auto loc = bitLocation(bits, i, b);
        expected[loc.first] |= 1u << loc.second;
      }
  for (unsigned w = 0; w < bits; ++w)
    ASSERT_EQ(word(packed, w), expected[w]) << "bits " << bits << " word " << w;
  std::vector<uint8_t> back(32, 0xFF);
  unpackUnit(packed.data(), bits, back.data());
  ASSERT_EQ(back, codes);
  for (unsigned i = 0; i < 32; ++i)
    ASSERT_EQ(unpackCodeAt(packed.data(), bits, i), codes[i]);
}
} // namespace

TEST(Pack, Sizes) {
  EXPECT_EQ(packedUnitBytes(2), 8u);
  EXPECT_EQ(packedUnitBytes(3), 12u);
  EXPECT_EQ(packedUnitBytes(4), 16u);
  EXPECT_EQ(packedUnitBytes(8), 32u);
  EXPECT_EQ(packedBytes(3, 128), 48u);
  EXPECT_TRUE(isSupportedBitWidth(3));
  EXPECT_FALSE(isSupportedBitWidth(5));
  EXPECT_FALSE(isSupportedBitWidth(1));
}

TEST(Pack, ExhaustiveEveryValueAtEveryPosition) {
  for (unsigned bits : kBits) {
    const unsigned top = (1u << bits) - 1;
    for (unsigned background : {0u, top})
      for (unsigned pos = 0; pos < 32; ++pos)
        for (unsigned v = 0; v <= top; ++v) {
          std::vector<uint8_t> codes(32, static_cast<uint8_t>(background));
          codes[pos] = static_cast<uint8_t>(v);
          checkUnit(codes, bits);
        }
  }
}

TEST(Pack, RandomUnits) {
  std::mt19937 rng(1);
  for (unsigned bits : kBits)
    for (int n = 0; n < 20000; ++n) {
      std::vector<uint8_t> codes(32);
      for (auto &c : codes)
        c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
      checkUnit(codes, bits);
    }
}

TEST(Pack, HighBitsIgnored) {
  std::vector<uint8_t> codes(32, 0xFF), back(32);
  std::vector<uint8_t> packed(packedUnitBytes(2));
  packUnit(codes.data(), 2, packed.data());
  unpackUnit(packed.data(), 2, back.data());
  EXPECT_EQ(back, std::vector<uint8_t>(32, 3));
}

TEST(Pack, MultiUnit) {
  std::mt19937 rng(2);
  for (unsigned bits : kBits) {
    std::vector<uint8_t> codes(32 * 5), back(32 * 5);
    for (auto &c : codes)
      c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
    std::vector<uint8_t> packed(packedBytes(bits, codes.size()));
    packCodes(codes.data(), codes.size(), bits, packed.data());
    unpackCodes(packed.data(), codes.size(), bits, back.data());
    EXPECT_EQ(back, codes);
    // Units are independent and consecutive.
    std::vector<uint8_t> unit(packedUnitBytes(bits));
    packUnit(codes.data() + 64, bits, unit.data());
    EXPECT_TRUE(std::equal(unit.begin(), unit.end(),
                           packed.begin() + 2 * packedUnitBytes(bits)));
  }
}
