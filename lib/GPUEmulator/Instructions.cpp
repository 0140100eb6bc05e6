//===- Instructions.cpp - per-thread PTX instructions for the emulator ----===//
//
// The PTX instructions without an LLVM IR equivalent that kvc's kernels use
// (through NVVM intrinsics or inline PTX), one thread at a time.
//
//===----------------------------------------------------------------------===//

#include "EmulatorAbi.h"

#include <cfenv>
#include <cmath>
#include <cstdint>

using namespace kvc::gpuemu;

namespace {
/// Flush-to-zero of an f32 subnormal, sign kept (PTX `.ftz`).
float flush(float x, int32_t ftz) {
  return ftz && std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x)
                                                   : x;
}
} // namespace

extern "C" uint32_t __kvc_emu_lop3(uint32_t a, uint32_t b, uint32_t c,
                                   uint32_t lut) {
  // Bit i of the table is the result for (a, b, c) bits = (i>>2, i>>1, i)&1,
  // the PTX ISA's ta = 0xF0, tb = 0xCC, tc = 0xAA convention.
  uint32_t result = 0;
  for (unsigned i = 0; i < 8; ++i)
    if (lut >> i & 1u)
      result |= ((i & 4) ? a : ~a) & ((i & 2) ? b : ~b) & ((i & 1) ? c : ~c);
  return result;
}

extern "C" uint32_t __kvc_emu_prmt(uint32_t a, uint32_t b,
                                   uint32_t selector) {
  // The PTX ISA's default mode: nibble i's low three bits index the pool
  // {b, a} (bytes 0-3 from a), its high bit replicates the byte's sign.
  const uint64_t pool = uint64_t(b) << 32 | a;
  uint32_t result = 0;
  for (unsigned i = 0; i < 4; ++i) {
    const uint32_t nibble = selector >> (4 * i) & 0xF;
    uint32_t byte = uint32_t(pool >> (8 * (nibble & 7))) & 0xFF;
    if (nibble & 8)
      byte = (byte & 0x80) ? 0xFF : 0x00;
    result |= byte << (8 * i);
  }
  return result;
}

extern "C" float __kvc_emu_fma(int32_t rounding, int32_t ftz, float a,
                               float b, float c) {
  static const int modes[] = {FE_TONEAREST, FE_TOWARDZERO, FE_DOWNWARD,
                              FE_UPWARD};
  const int saved = std::fegetround();
  std::fesetround(modes[rounding & 3]);
  volatile float result = std::fma(flush(a, ftz), flush(b, ftz), flush(c, ftz));
  std::fesetround(saved);
  return flush(result, ftz);
}

extern "C" float __kvc_emu_saturate(float x, int32_t ftz) {
  // cvt.sat: NaN becomes 0, the rest is clamped to [0, 1].
  x = flush(x, ftz);
  if (std::isnan(x))
    return 0.0f;
  return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x);
}

extern "C" float __kvc_emu_ex2(float x, int32_t ftz) {
  // ex2.approx (max relative error 2^-22 on the GPU; exact-ish here).
  return flush(std::exp2(flush(x, ftz)), ftz);
}
