//===- Pack.h - Bit packing of quantization codes ---------------*- C++ -*-===//
//
// Codes are packed in units of 32 codes into 32-bit little-endian words, so a
// unit of b-bit codes is exactly b words (4*b bytes) and every word decodes on
// its own (one 32-bit load + shifts on the GPU):
//   b=2: 2 words; word w holds codes 16w..16w+15, code i at bits 2*(i%16).
//   b=4: 4 words; word w holds codes 8w..8w+7,    code i at bits 4*(i%8).
//   b=8: 8 words; one byte per code (byte i = code i).
//   b=3: 3 words as bit planes: words 0-1 hold the low 2 bits of codes 0-15 /
//        16-31 exactly like b=2, word 2 holds bit 2 of code i at bit i.
// Packing works on bytes, so the result does not depend on host endianness.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_NUMERICS_PACK_H
#define KVC_NUMERICS_PACK_H

#include <cstddef>
#include <cstdint>

namespace kvc {
namespace numerics {

/// Codes per packing unit; group sizes are multiples of it.
constexpr unsigned kPackUnitCodes = 32;

/// True for the supported code widths 2, 3, 4 and 8.
bool isSupportedBitWidth(unsigned bits);

/// Bytes of one packed unit of 32 codes: 4 * bits.
inline size_t packedUnitBytes(unsigned bits) { return 4u * bits; }

/// Bytes of `numCodes` packed codes (numCodes a multiple of 32): numCodes*b/8.
inline size_t packedBytes(unsigned bits, size_t numCodes) {
  return numCodes / kPackUnitCodes * packedUnitBytes(bits);
}

/// Packs 32 codes (one per byte; bits above `bits` are ignored) into
/// packedUnitBytes(bits) bytes at `out`.
void packUnit(const uint8_t *codes, unsigned bits, uint8_t *out);

/// Inverse of packUnit: 32 codes, one per byte.
void unpackUnit(const uint8_t *in, unsigned bits, uint8_t *codes);

/// Code `index` (0..31) of one packed unit, without unpacking the others.
uint8_t unpackCodeAt(const uint8_t *unit, unsigned bits, unsigned index);

/// Packs/unpacks `numCodes` codes (a multiple of 32) unit after unit.
void packCodes(const uint8_t *codes, size_t numCodes, unsigned bits,
               uint8_t *out);
void unpackCodes(const uint8_t *in, size_t numCodes, unsigned bits,
                 uint8_t *codes);

} // namespace numerics
} // namespace kvc

#endif // KVC_NUMERICS_PACK_H
