//===- Pack.cpp - Bit packing of quantization codes -----------------------===//

#include "kvc/Numerics/Pack.h"

#include "Check.h"

namespace kvc {
namespace numerics {

namespace {
void storeWord(uint32_t w, uint8_t *out) {
  out[0] = static_cast<uint8_t>(w);
  out[1] = static_cast<uint8_t>(w >> 8);
  out[2] = static_cast<uint8_t>(w >> 16);
  out[3] = static_cast<uint8_t>(w >> 24);
}

uint32_t loadWord(const uint8_t *in) {
  return static_cast<uint32_t>(in[0]) | static_cast<uint32_t>(in[1]) << 8 |
         static_cast<uint32_t>(in[2]) << 16 |
         static_cast<uint32_t>(in[3]) << 24;
}

/// Packs 32 fields of `width` bits (width divides 32) into 32*width/32 words.
void packFields(const uint8_t *codes, unsigned width, uint8_t *out) {
  const unsigned perWord = 32 / width;
  const uint32_t mask = (1u << width) - 1u;
  for (unsigned w = 0; w < width; ++w) {
    uint32_t word = 0;
    for (unsigned j = 0; j < perWord; ++j)
      word |= (codes[w * perWord + j] & mask) << (width * j);
    storeWord(word, out + 4 * w);
  }
}
} // namespace

bool isSupportedBitWidth(unsigned bits) {
  return bits == 2 || bits == 3 || bits == 4 || bits == 8;
}

void packUnit(const uint8_t *codes, unsigned bits, uint8_t *out) {
  KVC_NUMERICS_CHECK(isSupportedBitWidth(bits), "bit width must be 2/3/4/8");
  if (bits != 3) {
    packFields(codes, bits, out);
    return;
  }
  // 3 bits: two 2-bit planes (words 0-1) plus one 1-bit plane (word 2).
  packFields(codes, 2, out);
  uint32_t high = 0;
  for (unsigned i = 0; i < kPackUnitCodes; ++i)
    high |= static_cast<uint32_t>((codes[i] >> 2) & 1u) << i;
  storeWord(high, out + 8);
}

uint8_t unpackCodeAt(const uint8_t *unit, unsigned bits, unsigned index) {
  if (bits == 3) {
    const uint32_t low = loadWord(unit + 4 * (index / 16));
    const uint32_t high = loadWord(unit + 8);
    return static_cast<uint8_t>(((low >> (2 * (index % 16))) & 3u) |
                                (((high >> index) & 1u) << 2));
  }
  const unsigned perWord = 32 / bits;
  const uint32_t word = loadWord(unit + 4 * (index / perWord));
  return static_cast<uint8_t>((word >> (bits * (index % perWord))) &
                              ((1u << bits) - 1u));
}

void unpackUnit(const uint8_t *in, unsigned bits, uint8_t *codes) {
  KVC_NUMERICS_CHECK(isSupportedBitWidth(bits), "bit width must be 2/3/4/8");
  for (unsigned i = 0; i < kPackUnitCodes; ++i)
    codes[i] = unpackCodeAt(in, bits, i);
}

void packCodes(const uint8_t *codes, size_t numCodes, unsigned bits,
               uint8_t *out) {
  KVC_NUMERICS_CHECK(numCodes % kPackUnitCodes == 0,
                     "code count must be a multiple of 32");
  for (size_t u = 0; u < numCodes / kPackUnitCodes; ++u)
    packUnit(codes + u * kPackUnitCodes, bits, out + u * packedUnitBytes(bits));
}

void unpackCodes(const uint8_t *in, size_t numCodes, unsigned bits,
                 uint8_t *codes) {
  KVC_NUMERICS_CHECK(numCodes % kPackUnitCodes == 0,
                     "code count must be a multiple of 32");
  for (size_t u = 0; u < numCodes / kPackUnitCodes; ++u)
    unpackUnit(in + u * packedUnitBytes(bits), bits,
               codes + u * kPackUnitCodes);
}

} // namespace numerics
} // namespace kvc
