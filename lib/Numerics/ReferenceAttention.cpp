//===- ReferenceAttention.cpp - fp64 attention oracle ---------------------===//
//
// Keys are kept transposed ([D][n]) so that the score loop runs over keys
// with independent accumulators (vectorizable without reassociation); every
// score is still summed over d in order 0..D-1.
//
//===----------------------------------------------------------------------===//

#include "kvc/Numerics/ReferenceAttention.h"

#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/Half.h"

#include "Check.h"

#include <algorithm>
#include <cmath>

namespace kvc {
namespace numerics {

namespace {
/// One head's keys (transposed) and values in double.
struct HeadView {
  size_t numKeys = 0;
  std::vector<double> keysT; // [D][numKeys]
  std::vector<double> values; // [numKeys][D]
};

HeadView loadHead(const float *keys, const float *values, size_t numKeys,
                  size_t headDim) {
  HeadView h;
  h.numKeys = numKeys;
  h.keysT.resize(numKeys * headDim);
  h.values.resize(numKeys * headDim);
  for (size_t j = 0; j < numKeys; ++j)
    for (size_t d = 0; d < headDim; ++d) {
      h.keysT[d * numKeys + j] = keys[j * headDim + d];
      h.values[j * headDim + d] = values[j * headDim + d];
    }
  return h;
}

/// First visible key of the query at position p.
size_t firstVisibleKey(size_t p, const AttentionOptions &opts) {
  return opts.window != 0 && p + 1 > opts.window ? p + 1 - opts.window : 0;
}

/// s[j - from] += sum_d q[d] * k[j][d] for keys j in [from, to) of `view`,
/// summing over d in order 0..D-1. Four channels per pass keep the partial
/// sum in a register without changing the order of the additions.
void accumulateScores(const double *q, size_t headDim, const HeadView &view,
                      size_t from, size_t to, double *s) {
  if (from >= to)
    return;
  const size_t n = view.numKeys;
  const double *kt = view.keysT.data();
  size_t d = 0;
  for (; d + 4 <= headDim; d += 4) {
    const double q0 = q[d], q1 = q[d + 1], q2 = q[d + 2], q3 = q[d + 3];
    const double *k0 = kt + d * n, *k1 = k0 + n, *k2 = k1 + n, *k3 = k2 + n;
    for (size_t j = from; j < to; ++j) {
      double t = s[j - from];
      t += q0 * k0[j];
      t += q1 * k1[j];
      t += q2 * k2[j];
      t += q3 * k3[j];
      s[j - from] = t;
    }
  }
  for (; d < headDim; ++d) {
    const double qd = q[d];
    const double *k = kt + d * n;
    for (size_t j = from; j < to; ++j)
      s[j - from] += qd * k[j];
  }
}

/// Attention of one query over keys [lo, hi): keys j < split come from `a`,
/// the others from `b`. `keep` ([n] or null) hides evicted keys; `bias`
/// ([n] or null) is the query's mask row; `mass` ([n] or null) receives
/// each key's probability.
void attendQuery(const double *q, size_t headDim, double scale,
                 const AttentionOptions &opts, const HeadView &a, size_t split,
                 const HeadView &b, size_t lo, size_t hi,
                 std::vector<double> &scores, std::vector<double> &acc,
                 double *out, const uint8_t *keep = nullptr,
                 const float *bias = nullptr, double *mass = nullptr) {
  KVC_NUMERICS_CHECK(lo < hi, "a query must see at least one key");
  const size_t m = hi - lo;
  scores.assign(m, 0.0);
  const size_t mid = std::min(std::max(split, lo), hi);
  accumulateScores(q, headDim, a, lo, mid, scores.data());
  accumulateScores(q, headDim, b, mid, hi, scores.data() + (mid - lo));
  double maxScore = -INFINITY;
  for (size_t j = lo; j < hi; ++j) {
    double &s = scores[j - lo];
    s *= scale;
    if (opts.softcap > 0.0)
      s = opts.softcap * std::tanh(s / opts.softcap);
    if (bias)
      s += bias[j];
    if (keep && !keep[j])
      s = -INFINITY;
    maxScore = std::max(maxScore, s);
  }
  KVC_NUMERICS_CHECK(maxScore > -INFINITY,
                     "a query must see at least one live key");
  double sum = 0.0;
  for (double &s : scores) {
    s = std::exp(s - maxScore);
    sum += s;
  }
  if (mass)
    for (size_t j = lo; j < hi; ++j)
      mass[j] += scores[j - lo] / sum;
  // Accumulate in a local buffer: `out` could alias the views as far as the
  // compiler knows, which would force a store per element.
  acc.assign(headDim, 0.0);
  double *accp = acc.data();
  for (size_t j = lo; j < hi; ++j) {
    const double w = scores[j - lo];
    const double *v = (j < split ? a.values.data() : b.values.data()) +
                      j * headDim;
    for (size_t d = 0; d < headDim; ++d)
      accp[d] += w * v[d];
  }
  for (size_t d = 0; d < headDim; ++d)
    out[d] = accp[d] / sum;
}

double effectiveScale(const AttentionOptions &opts, size_t headDim) {
  return opts.scale != 0.0 ? opts.scale
                           : 1.0 / std::sqrt(static_cast<double>(headDim));
}
} // namespace

std::vector<double> referenceAttention(const float *q, size_t numQueryHeads,
                                       size_t queryLen, const float *keys,
                                       const float *values, size_t numKVHeads,
                                       size_t numKeys, size_t headDim,
                                       const AttentionOptions &opts,
                                       double *mass) {
  KVC_NUMERICS_CHECK(numKVHeads > 0 && numQueryHeads % numKVHeads == 0,
                     "kv heads must divide query heads (GQA)");
  KVC_NUMERICS_CHECK(queryLen <= numKeys, "query length exceeds key count");
  const size_t ratio = numQueryHeads / numKVHeads;
  const double scale = effectiveScale(opts, headDim);
  std::vector<double> out(numQueryHeads * queryLen * headDim);
  std::vector<double> scores, acc, qd(headDim);
  for (size_t kh = 0; kh < numKVHeads; ++kh) {
    const HeadView view =
        loadHead(keys + kh * numKeys * headDim,
                 values + kh * numKeys * headDim, numKeys, headDim);
    for (size_t h = kh * ratio; h < (kh + 1) * ratio; ++h)
      for (size_t i = 0; i < queryLen; ++i) {
        const float *qi = q + (h * queryLen + i) * headDim;
        std::copy(qi, qi + headDim, qd.begin());
        const size_t p = numKeys - queryLen + i;
        const size_t hi = opts.causal ? p + 1 : numKeys;
        const float *bias =
            opts.mask
                ? opts.mask +
                      ((opts.maskPerHead ? h : 0) * queryLen + i) * numKeys
                : nullptr;
        attendQuery(qd.data(), headDim, scale, opts, view, numKeys, view,
                    firstVisibleKey(p, opts), hi, scores, acc,
                    out.data() + (h * queryLen + i) * headDim,
                    opts.keep ? opts.keep + kh * numKeys : nullptr, bias,
                    mass ? mass + kh * numKeys : nullptr);
      }
  }
  return out;
}

std::vector<double> teacherForcedAttention(const float *q, const float *keys,
                                           const float *values,
                                           size_t numQueryHeads,
                                           size_t numKVHeads, size_t seqLen,
                                           size_t headDim,
                                           const CacheEncoding &enc,
                                           const AttentionOptions &opts,
                                           size_t firstQuery) {
  KVC_NUMERICS_CHECK(opts.causal, "teacher forcing is causal");
  KVC_NUMERICS_CHECK(!opts.keep, "eviction changes from step to step: "
                                 "teacher forcing cannot take a keep mask");
  KVC_NUMERICS_CHECK(!opts.mask, "teacher forcing takes no additive mask");
  KVC_NUMERICS_CHECK(numKVHeads > 0 && numQueryHeads % numKVHeads == 0,
                     "kv heads must divide query heads (GQA)");
  KVC_NUMERICS_CHECK(firstQuery <= seqLen, "firstQuery beyond the sequence");
  const std::string err =
      validateCacheEncoding(enc, static_cast<unsigned>(headDim));
  KVC_NUMERICS_CHECK(err.empty(), err.c_str());
  const size_t ratio = numQueryHeads / numKVHeads;
  const size_t outLen = seqLen - firstQuery;
  const double scale = effectiveScale(opts, headDim);
  const size_t maxCompressed = compressedTokenCount(seqLen, enc.residual);
  std::vector<double> out(numQueryHeads * outLen * headDim);
  std::vector<double> scores, acc, qd(headDim);
  for (size_t kh = 0; kh < numKVHeads; ++kh) {
    const float *k = keys + kh * seqLen * headDim;
    const float *v = values + kh * seqLen * headDim;
    // The compressed prefix view, shared by all query positions.
    const HeadView compressed =
        loadHead(compressRoundTrip(k, maxCompressed, headDim, enc.key).data(),
                 compressRoundTrip(v, maxCompressed, headDim, enc.value).data(),
                 maxCompressed, headDim);
    const SideEncoding fp16 = SideEncoding::plain();
    const HeadView residual =
        loadHead(compressRoundTrip(k, seqLen, headDim, fp16).data(),
                 compressRoundTrip(v, seqLen, headDim, fp16).data(), seqLen,
                 headDim);
    for (size_t h = kh * ratio; h < (kh + 1) * ratio; ++h)
      for (size_t p = firstQuery; p < seqLen; ++p) {
        const float *qp = q + (h * seqLen + p) * headDim;
        std::copy(qp, qp + headDim, qd.begin());
        const size_t split = compressedTokenCount(p + 1, enc.residual);
        attendQuery(qd.data(), headDim, scale, opts, compressed, split,
                    residual, firstVisibleKey(p, opts), p + 1, scores, acc,
                    out.data() + (h * outLen + (p - firstQuery)) * headDim);
      }
  }
  return out;
}

double relativeError(const std::vector<double> &a,
                     const std::vector<double> &ref) {
  KVC_NUMERICS_CHECK(a.size() == ref.size(), "size mismatch");
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - ref[i]) * (a[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

} // namespace numerics
} // namespace kvc
