//===- ReservedWrite.cpp - Hand-written tokens of a reservation -----------===//

#include "ReservedWrite.h"

#include "ModelDriver.h"

#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Layout.h"

#include <algorithm>
#include <vector>

namespace kvc {
namespace rt {
namespace testing {

namespace num = kvc::numerics;

namespace {
/// fp16 bits of element `index` of an append input: what kvc_rt_append
/// stores, staged or compressed (f32 inputs are rounded to fp16 first).
uint16_t inputHalf(const void *base, uint32_t dtype, uint64_t index) {
  if (dtype == KVC_RT_DTYPE_F32)
    return num::floatToHalf(static_cast<const float *>(base)[index]);
  return static_cast<const uint16_t *>(base)[index];
}

std::string failed(const char *what) {
  return std::string("writeReserved: ") + what + ": " + kvc_rt_last_error();
}
} // namespace

std::string writeReserved(kvc_rt_cache *cache, kvc_rt_seq seq, uint32_t layer,
                          const kvc_rt_append_range &r,
                          const kvc_rt_tokens &in) {
  kvc_rt_cache_config config;
  if (kvc_rt_cache_get_config(cache, &config) != KVC_RT_OK)
    return failed("cache_get_config");
  if (config.backend != KVC_RT_BACKEND_CPU &&
      config.backend != KVC_RT_BACKEND_CPU_STAGED)
    return "writeReserved: host backends only";
  kvc_rt_sequence_view view;
  if (kvc_rt_sequence_view_get(cache, seq, layer, &view) != KVC_RT_OK)
    return failed("sequence_view_get");
  const uint32_t H = view.kv_heads, D = view.head_dim, T = view.page_tokens;
  const uint64_t n0 = r.old_tokens, n1 = r.new_tokens;
  const uint64_t c0 = r.old_compressed, c1 = r.new_compressed;
  if (n1 < n0 || c1 < c0 || c0 > n0 || c1 > n1 || view.num_tokens != n1 ||
      view.compressed_tokens != c1)
    return "writeReserved: the range [" + std::to_string(n0) + ", " +
           std::to_string(n1) + ") is not the sequence's latest reservation";
  if (n1 == n0)
    return "";
  if (in.num_tokens != n1 - n0 || in.kv_heads != H || in.head_dim != D ||
      !in.keys || !in.values ||
      (in.dtype != KVC_RT_DTYPE_F32 && in.dtype != KVC_RT_DTYPE_F16))
    return "writeReserved: the tokens do not fit the reservation";
  const uint64_t headStride =
      in.head_stride ? in.head_stride : uint64_t(in.num_tokens) * D;
  const uint64_t tokenStride = in.token_stride ? in.token_stride : D;
  if (view.residual_tokens && !view.k_residual)
    return "writeReserved: staged tokens without a staging buffer";

  std::vector<float> x(size_t{T} * D);
  for (int v = 0; v < 2; ++v) {
    const void *input = v ? in.values : in.keys;
    const uint64_t pageBytes = v ? view.v.page_bytes : view.k.page_bytes;
    // The caller writes backend memory: host memory on these backends.
    uint8_t *pool = static_cast<uint8_t *>(
        const_cast<void *>(v ? view.v_pool : view.k_pool));
    uint8_t *residual = static_cast<uint8_t *>(
        const_cast<void *>(v ? view.v_residual : view.k_residual));
    for (uint32_t h = 0; h < H; ++h) {
      kvc_rt_head_view hv;
      if (kvc_rt_head_view_get(cache, layer, h, &hv) != KVC_RT_OK)
        return failed("head_view_get");
      const num::SideEncoding enc =
          toNumerics(v ? hv.encoding.value : hv.encoding.key);
      const uint64_t offset = v ? hv.v_block_offset : hv.k_block_offset;
      uint16_t *staged = reinterpret_cast<uint16_t *>(
          residual ? residual + h * view.residual_head_bytes : nullptr);
      // (1) Compress [c(n0), c(n1)) a page piece at a time; the staged
      // tokens are read before (2) overwrites their rows.
      for (uint64_t t0 = c0; t0 < c1;) {
        const uint64_t page = t0 / T;
        const uint64_t count = std::min<uint64_t>(c1, (page + 1) * T) - t0;
        const int32_t entry = view.page_table[page];
        if (entry == KVC_RT_PAGE_HOLE) {
          t0 += count; // every token of a hole is evicted
          continue;
        }
        for (uint64_t i = 0; i < count; ++i) {
          const uint64_t t = t0 + i;
          for (uint32_t c = 0; c < D; ++c)
            x[i * D + c] = num::halfToFloat(
                t < n0
                    ? staged[(t - c0) * D + c]
                    : inputHalf(input, in.dtype,
                                h * headStride + (t - n0) * tokenStride + c));
        }
        num::writePageTokens(x.data(), t0 % T, count, enc, D, T,
                             pool + uint64_t(entry) * pageBytes + offset);
        t0 += count;
      }
      // (2) Stage [max(c(n1), n0), n1) as fp16 rows t - c(n1).
      for (uint64_t t = std::max(c1, n0); t < n1; ++t)
        for (uint32_t c = 0; c < D; ++c)
          staged[(t - c1) * D + c] = inputHalf(
              input, in.dtype, h * headStride + (t - n0) * tokenStride + c);
    }
  }
  return "";
}

} // namespace testing
} // namespace rt
} // namespace kvc
