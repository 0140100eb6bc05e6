//===- Layout.h - kvc page layout, version 2 --------------------*- C++ -*-===//
//
// Byte layout of one page block (docs/layout.md is the normative text). A page
// holds T tokens of one (layer, kv_head, sequence-page); its K block lives in
// the K pool and its V block in the V pool, each laid out by its own side
// encoding, so their sizes differ:
//
//   [codes region][pad to 16][params region][pad to 16]
//
//   quant, channel axis: codes [T/G][D][G*b/8], channels paired: the G*b/8
//                        bytes of channels 2p and 2p + 1 interleaved by
//                        16-bit halves (channelPairHalfOffset); params
//                        [T/G][D], (scale, scale, zero, zero) a channel pair
//   quant, token axis:   codes [T][D*b/8];     params (scale, zero) fp16
//                        pairs [T][D/G]
//   fp8:                 codes [T][D] bytes;   params fp16 scales [T]
//   plain (fp16):        codes [T][D] fp16;    no params
//
// The codes region is the matrix form's codes tensor of the same T tokens
// (Quantize.h), byte for byte except for the channel axis's pairing; params
// interleave the scales and zeros tensors so one 4-byte load fetches a
// token-axis group's (scale, zero), and one a channel-axis pair's scales or
// zeros. Version 2 paired the channel axis's channels: a word of channel
// 2p's codes and the same word of channel 2p + 1 become a word of their low
// halves and a word of their high halves, so the same bits of one word hold
// one token of both channels (a tensor-core A register, no transposes). All multi-byte values are
// little-endian. Regions start at 16-byte aligned offsets and the block size
// is a multiple of 16, so 16-byte vector loads are always aligned.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_NUMERICS_LAYOUT_H
#define KVC_NUMERICS_LAYOUT_H

#include "kvc/Numerics/Encoding.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace kvc {
namespace numerics {

/// Version of the page layout described here and in docs/layout.md.
constexpr unsigned kLayoutVersion = 2;
/// Alignment of regions and blocks, in bytes.
constexpr size_t kLayoutAlignment = 16;

inline size_t alignTo(size_t n, size_t a) { return (n + a - 1) / a * a; }

/// Offsets and sizes (bytes) of one side's block of a page.
struct BlockLayout {
  size_t codesOffset = 0;  ///< always 0
  size_t codesBytes = 0;
  size_t paramsOffset = 0; ///< 16-byte aligned
  size_t paramsBytes = 0;  ///< 0 for plain
  size_t paramsCount = 0;  ///< (scale, zero) pairs (quant) or scales (fp8)
  size_t blockBytes = 0;   ///< multiple of 16
};

/// "" if a page of `pageTokens` tokens can hold `side` at head_dim D: T a
/// positive multiple of 32 and of a channel-axis group; token-axis group
/// divides D; the quant spec valid.
std::string validatePageConfig(const SideEncoding &side, unsigned headDim,
                               unsigned pageTokens);

/// The block layout of one side (precondition: validatePageConfig is "").
BlockLayout computeBlockLayout(const SideEncoding &side, unsigned headDim,
                               unsigned pageTokens);

/// Amortized storage per token of one side, metadata and padding included:
/// blockBytes / T.
double bytesPerToken(const SideEncoding &side, unsigned headDim,
                     unsigned pageTokens);
/// Keys plus values, per kv head.
double cacheBytesPerToken(const CacheEncoding &enc, unsigned headDim,
                          unsigned pageTokens);

/// The fp16 residual staging buffer of one side of one (layer, kv_head,
/// sequence): [R][D] fp16, R * D * 2 bytes (rounded up to 16).
size_t residualStagingBytes(unsigned residual, unsigned headDim);

/// Channel-axis codes: where byte `offset` of channel `channel`'s group
/// (G*b/8 bytes, matrix form) lies in the page, from the start of its row
/// of groups [D][G*b/8]: channels 2p and 2p + 1 share 2*G*b/8 bytes, word k
/// of each split into a word of the two low halves (8k: channel 2p's, then
/// 2p + 1's) and one of the two high halves (8k + 4). An odd D's last
/// channel is not paired (its bytes stay where the matrix form has them;
/// this function is not for it).
size_t channelPairHalfOffset(size_t channel, size_t offset, size_t groupBytes);

/// Byte offsets in the params region of a group's fp16 scale and zero.
struct ParamsOffsets {
  size_t scale, zero;
};
/// Channel-axis group `group` (tb * D + channel): a channel pair's four
/// values are (scale 2p, scale 2p + 1, zero 2p, zero 2p + 1) at 4 * (tb * D
/// + 2p); an odd D's last channel keeps (scale, zero) at 4 * group.
ParamsOffsets channelAxisParamsOffsets(size_t group, size_t headDim);

/// Compresses the rows x [numTokens][D] into tokens firstToken ..
/// firstToken+numTokens-1 of a page block. firstToken and numTokens must be
/// multiples of side.tokenGranularity() (whole channel-axis groups). Uses the
/// matrix-form quantizer, so the bytes are quantizeMatrix's (channel-axis
/// ones paired as above).
void writePageTokens(const float *x, size_t firstToken, size_t numTokens,
                     const SideEncoding &side, unsigned headDim,
                     unsigned pageTokens, uint8_t *block);

/// Dequantizes tokens firstToken .. firstToken+numTokens-1 of a page block
/// into out [numTokens][D] (same alignment rule as writePageTokens).
void readPageTokens(const uint8_t *block, size_t firstToken, size_t numTokens,
                    const SideEncoding &side, unsigned headDim,
                    unsigned pageTokens, float *out);

} // namespace numerics
} // namespace kvc

#endif // KVC_NUMERICS_LAYOUT_H
