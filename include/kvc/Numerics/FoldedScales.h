//===- FoldedScales.h - The tensor-core passes' folded scales ---*- C++ -*-===//
//
// The GPU's tensor-core key pass over channel-axis 2-, 4- and 8-bit keys does
// not dequantize them: a 32-token unit lies in one group of each channel, so
// q . k = sum_c (q_c * scale_c) * code_c + sum_c q_c * zero_c, with the codes
// in the mma's A fragments, fp16(fp16(q / 16) * scale) in its B fragments and
// the zeros in one more mma (docs/gpu-tensor-cores.md, "Folded scales"). Its
// rounding is thus not the cache's dequantized keys rounded to fp16: these
// functions give oracles the keys a query sees through that arithmetic, so
// that checks can hold those kernels to f32-accumulation tolerances.
//
// The tensor-core value pass folds the scales of token-axis 2-, 4- and 8-bit
// values whose group is the whole head (one scale and zero a token): it
// weighs the codes by weight * scale (split into fp16 hi and lo parts, as
// the weights are) and adds sum_t weight * zero in f32, so its values are
// the dequantized ones, not rounded to fp16 (foldsValueScales).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_NUMERICS_FOLDEDSCALES_H
#define KVC_NUMERICS_FOLDEDSCALES_H

#include "kvc/Numerics/Encoding.h"
#include "kvc/Numerics/ReferenceAttention.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvc {
namespace numerics {

/// Whether the tensor-core key pass folds the scales of `side`'s keys:
/// channel-axis 2-, 4- and 8-bit codes.
bool foldsKeyScales(const SideEncoding &side);

/// Whether the tensor-core value pass folds the scales of `side`'s values
/// at head_dim `headDim`: token-axis 2-, 4- and 8-bit codes in groups of
/// the whole head.
bool foldsValueScales(const SideEncoding &side, size_t headDim);

/// The power of two the tensor-core key pass multiplies the queries by
/// before it folds `side`'s scales into them: 2^(bits - 4), i.e. 1/4, 1
/// and 16 for 2-, 4- and 8-bit codes. fp16(q * queryScale * scale) is then
/// about |q| times the channel's range / 16 at every width: finite while
/// |q| * range < 2^20 (and the fragment fp16(q * queryScale) while |q| <
/// 4096 for 8-bit keys), and an fp16 normal while |q| * range > ~2^-10, so
/// that tensor cores that flush subnormal inputs would drop at most 2^-10
/// of a channel's product (1/16 at every width, as until 2026-12-07, left
/// 8-bit keys' products subnormal below |q| * range ~ 0.25).
/// Needs foldsKeyScales(side).
double foldedKeyQueryScale(const SideEncoding &side);

/// The compressed rows of one side of one head of a cache holding n tokens
/// (simulateCacheSide's rows below compressedTokenCount(n, R)) as codes and,
/// for every element, its group's fp16 scale and zero.
struct CompressedTerms {
  size_t tokens = 0;                   ///< compressed rows
  std::vector<uint8_t> codes;          ///< [tokens][D]
  std::vector<uint16_t> scales, zeros; ///< [tokens][D], fp16 bits
  double queryScale = 1.0;             ///< foldedKeyQueryScale(side)
};
/// Needs foldsKeyScales(side); checks validateSideEncoding(side, D, R).
CompressedTerms simulateCompressedTerms(const float *x, size_t numTokens,
                                        size_t headDim,
                                        const SideEncoding &side,
                                        unsigned residual);

/// Overwrites rows [0, terms.tokens) of `keys` ([n][D]) with the keys that
/// the query row `q` (f32, D values) sees through the folded arithmetic:
/// with s = terms.queryScale and qs = fp16(q_c * s), channel c of token t
/// holds (fp16(qs * scale) * code + qs * zero) / s / fp16(q_c) (the plain row's
/// value where fp16(q_c) = 0: the term is 0 either way), so that an oracle
/// multiplying fp16(q) by these keys sums the kernel's exact products
/// (up to f32 rounding of each key). The other rows stay as they are (the
/// residual's fp16 rows, which the pass multiplies as stored).
void foldKeyRows(const float *q, const CompressedTerms &terms, size_t headDim,
                 float *keys);

/// referenceAttention of one query row a head (queryLen 1) as kernels that
/// fold key scales compute it: the queries `q` (f32, [Hq][D]) rounded to
/// fp16, and query head j over the keys ([Hkv][n][D], rounded to fp16) of
/// its KV head h with rows [0, terms[h]->tokens) folded for its own row of
/// `q` (foldKeyRows); heads whose terms[h] is null over their keys as they
/// are. `opts.keep`, `opts.mask` and `mass` are as in referenceAttention
/// (queryLen 1).
std::vector<double>
foldedKeyAttention(const float *q, size_t numQueryHeads, const float *keys,
                   const float *values, size_t numKVHeads, size_t numKeys,
                   size_t headDim, const std::vector<const CompressedTerms *> &terms,
                   const AttentionOptions &opts, double *mass = nullptr);

} // namespace numerics
} // namespace kvc

#endif // KVC_NUMERICS_FOLDEDSCALES_H
