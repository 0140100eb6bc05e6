//===- ErrorKernels.h - The attention-error evaluator (internal) -*- C++ -*-===//
//
// Included once per instruction set (AttentionError.cpp: the baseline;
// AttentionErrorAVX2.cpp: AVX2+FMA on x86-64) inside a namespace named by
// KVC_ERROR_KERNEL_NAMESPACE; AttentionError.cpp picks one at run time.
//
// Per (layer, KV head), query positions are processed in chunks. For each
// position p and query head of the group, the reference (all-fp16) scores
// s_j, their exponentials e_j = exp(s_j - m) and sums are computed once;
// split(p) = compressedTokenCount(p + 1, R) keys are compressed. Then
//   value candidate: o_c - o = (1/Z) sum_{j<split} e_j dV_j
//   key candidate:   s'_j = s_j + scale q.dK_j (j < split),
//                    o_c - o = sum_{j<split} (e'_j/Z' - e_j/Z) V_j
//                              + (1/Z' - 1/Z) sum_{j>=split} e_j V_j
// where dK, dV are the candidate's round trip minus the fp16 view. Working
// on differences makes fp16 exactly 0 and keeps fp32 accurate for small
// errors. The query heads of a GQA group share every key/value load.
// With eviction (request.liveUntil), a key evicted before position p gets
// weight 0 in the reference and in every candidate at p.
//
//===----------------------------------------------------------------------===//

// No include guard: included once per instruction set.

#include "kvc/CostModel/AttentionError.h"

#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Prune.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

// The vector type's ABI differs between the two compilations; it never
// crosses a call boundary (everything using it is inline and internal).
#pragma GCC diagnostic ignored "-Wpsabi"

#ifndef KVC_ERROR_KERNEL_NAMESPACE
#error "define KVC_ERROR_KERNEL_NAMESPACE before including ErrorKernels.h"
#endif

namespace kvc {
namespace cost {
namespace KVC_ERROR_KERNEL_NAMESPACE {
namespace {

/// Keys per score block and channels per output block: multiples of the
/// vector width, so blocks need no tails (buffers are padded to them).
constexpr size_t kBlock = 16;
/// Query heads sharing one load.
constexpr size_t kHeadTile = 4;
/// Query positions per chunk of stored reference state.
constexpr size_t kChunk = 64;

size_t roundUp(size_t n, size_t a) { return (n + a - 1) / a * a; }

/// Eight floats; GCC/Clang vector extensions keep the accumulators in
/// registers (plain arrays are spilled on every iteration) and lower to
/// whatever vector width the instruction set of this compilation has.
typedef float Vec8 __attribute__((vector_size(32)));
static_assert(kBlock == 16, "the kernels hold a block as two Vec8");

inline Vec8 load8(const float *p) {
  Vec8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store8(float *p, Vec8 v) { std::memcpy(p, &v, sizeof(v)); }

typedef int32_t Int8 __attribute__((vector_size(32)));

/// exp(x) in fp32 on eight lanes (Cody-Waite reduction, degree-6
/// polynomial, a few ulp); x is clamped to [-87, 88].
inline Vec8 exp8(Vec8 x) {
  const Vec8 lo = -87.0f - Vec8{}, hi = 88.0f - Vec8{};
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const Vec8 t = x * 1.44269504088896341f;
  const Vec8 half = t >= Vec8{} ? 0.5f - Vec8{} : -0.5f - Vec8{};
  const Int8 n = __builtin_convertvector(t + half, Int8); // round
  const Vec8 nf = __builtin_convertvector(n, Vec8);
  const Vec8 r = (x - nf * 0.693145751953125f) - nf * 1.428606765330187e-6f;
  Vec8 p = 1.0f / 720.0f - Vec8{};
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const Int8 bits = (n + 127) << 23;
  Vec8 scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}
inline float fastExp(float x) { return exp8(x - Vec8{})[0]; }

/// out[j] = exp(x[j] - shift) for j < roundUp(n, 8) (buffers are padded).
inline void expShifted(const float *x, float shift, size_t n, float *out) {
  for (size_t j = 0; j < n; j += 8)
    store8(out + j, exp8(load8(x + j) - shift));
}

/// Sum and maximum of x[0..n) with eight partial results (a fixed order, so
/// results are deterministic; plain loops would not vectorize).
inline float sumOf(const float *x, size_t n) {
  Vec8 acc = {};
  size_t j = 0;
  for (; j + 8 <= n; j += 8)
    acc += load8(x + j);
  float s = 0.0f;
  for (size_t i = 0; i < 8; ++i)
    s += acc[i];
  for (; j < n; ++j)
    s += x[j];
  return s;
}
inline float maxOf(const float *x, size_t n, float init) {
  Vec8 acc = init - Vec8{};
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const Vec8 v = load8(x + j);
    acc = v > acc ? v : acc;
  }
  float m = init;
  for (size_t i = 0; i < 8; ++i)
    m = std::max(m, acc[i]);
  for (; j < n; ++j)
    m = std::max(m, x[j]);
  return m;
}

/// Keys are stored in blocks of kBlock keys, each block [D][kBlock], so
/// that a block's loads are one contiguous stream.
inline size_t blockedIndex(size_t j, size_t d, size_t headDim) {
  return (j / kBlock) * headDim * kBlock + d * kBlock + j % kBlock;
}

/// out[h][j] = sum_d q[h][d] * k[j][d] for j in [0, n) (rounded up to a
/// block), k in the blocked layout.
template <size_t HT>
void scoreKernel(const float *const *q, size_t headDim, const float *k,
                 size_t n, float *const *out) {
  for (size_t jb = 0; jb < n; jb += kBlock) {
    const float *block = k + jb * headDim;
    Vec8 acc[HT][2] = {};
    for (size_t d = 0; d < headDim; ++d) {
      const Vec8 k0 = load8(block + d * kBlock),
                 k1 = load8(block + d * kBlock + 8);
#pragma GCC unroll 4
      for (size_t h = 0; h < HT; ++h) {
        const float qd = q[h][d];
        acc[h][0] += qd * k0;
        acc[h][1] += qd * k1;
      }
    }
#pragma GCC unroll 4
    for (size_t h = 0; h < HT; ++h) {
      store8(out[h] + jb, acc[h][0]);
      store8(out[h] + jb + 8, acc[h][1]);
    }
  }
}

/// out[h][d] = sum_{j in [lo, hi)} w[h][j] * v[j][d] for d < dp (v rows
/// have dp >= D padded channels).
template <size_t HT>
void weightedSumKernel(const float *const *w, const float *v, size_t dp,
                       size_t lo, size_t hi, float *const *out) {
  for (size_t db = 0; db < dp; db += kBlock) {
    Vec8 acc[HT][2] = {};
    for (size_t j = lo; j < hi; ++j) {
      const Vec8 v0 = load8(v + j * dp + db), v1 = load8(v + j * dp + db + 8);
#pragma GCC unroll 4
      for (size_t h = 0; h < HT; ++h) {
        const float wj = w[h][j];
        acc[h][0] += wj * v0;
        acc[h][1] += wj * v1;
      }
    }
#pragma GCC unroll 4
    for (size_t h = 0; h < HT; ++h) {
      store8(out[h] + db, acc[h][0]);
      store8(out[h] + db + 8, acc[h][1]);
    }
  }
}

/// Dispatches a kernel on a head tile of 1..kHeadTile heads.
template <template <size_t> class K, typename... Args>
void forTile(size_t heads, Args &&...args) {
  switch (heads) {
  case 1:
    return K<1>::run(args...);
  case 2:
    return K<2>::run(args...);
  case 3:
    return K<3>::run(args...);
  default:
    return K<4>::run(args...);
  }
}
template <size_t HT> struct Scores {
  template <typename... A> static void run(A... a) { scoreKernel<HT>(a...); }
};
template <size_t HT> struct WeightedSum {
  template <typename... A> static void run(A... a) {
    weightedSumKernel<HT>(a...);
  }
};

/// The evaluation of one KV head of one layer.
class HeadEvaluator {
public:
  HeadEvaluator(const LayerErrorRequest &request, size_t kvHead,
                const ErrorOptions &options);
  /// Fills numerator[kvHead] of every candidate's error and the
  /// denominators.
  void run(LayerErrors &out);

private:
  struct Row {
    float m = 0, z = 0, zResidual = 0;
  };
  void prepareCandidates();
  void referenceChunk(size_t first, size_t last);
  void valueCandidateChunk(const std::vector<float> &delta, size_t first,
                           size_t last, double &numerator);
  void keyCandidateChunk(const std::vector<float> &deltaBlocked, size_t first,
                         size_t last, double &numerator);
  size_t split(size_t p) const {
    return std::min(numerics::compressedTokenCount(p + 1, residual), p + 1);
  }
  size_t rowIndex(size_t p, size_t h) const {
    return (p - chunkFirst) * group + h;
  }
  /// False when token j is evicted before query position p.
  bool isLive(size_t j, size_t p) const {
    return !liveUntil || liveUntil[j] >= p;
  }
  /// Masks evicted keys: scores to -inf (out of the maximum) ...
  void maskScores(float *scores, size_t n, size_t p) const {
    if (liveUntil)
      for (size_t j = 0; j < n; ++j)
        if (!isLive(j, p))
          scores[j] = -INFINITY;
  }
  /// ... and weights to exactly 0 (exp8 clamps, so it would not be 0).
  void maskWeights(float *weights, size_t n, size_t p) const {
    if (liveUntil)
      for (size_t j = 0; j < n; ++j)
        if (!isLive(j, p))
          weights[j] = 0.0f;
  }

  const LayerErrorRequest &request;
  const LayerStats &layer;
  size_t kvHead, group, headDim, numTokens, dp, np;
  unsigned residual;
  size_t scoreFrom;
  float scale;
  size_t maxCompressed;
  const uint32_t *liveUntil; // [N] or null: no eviction

  std::vector<const float *> queries; // [group] -> [N][D]
  std::vector<float> keysBlocked;     // fp16 view, blocked [np/16][D][16]
  std::vector<float> values;          // fp16 view, [N][dp]
  std::vector<std::vector<float>> keyDeltas; // per key candidate, blocked
  std::vector<std::vector<float>> valueDeltas; // per value candidate [N][dp]

  // Reference state of the current chunk, per (position, head) row.
  size_t chunkFirst = 0;
  std::vector<float> scores, exps; // [rows][np]
  std::vector<float> residualOut;  // [rows][dp]: sum_{j>=split} e_j V_j
  std::vector<Row> rows;
  double denominator = 0.0;
  // Scratch.
  std::vector<float> scratchScores, scratchWeights, scratchOut;
};

HeadEvaluator::HeadEvaluator(const LayerErrorRequest &request, size_t kvHead,
                             const ErrorOptions &options)
    : request(request), layer(*request.layer), kvHead(kvHead),
      group(layer.numQueryHeads / layer.numKVHeads), headDim(layer.headDim),
      numTokens(layer.numTokens), dp(roundUp(headDim, kBlock)),
      np(roundUp(numTokens, kBlock)), residual(request.residual),
      scoreFrom(options.scoreFrom),
      scale(float(options.scale != 0.0 ? options.scale
                                       : 1.0 / std::sqrt(double(headDim)))),
      maxCompressed(numerics::compressedTokenCount(numTokens, residual)),
      liveUntil(request.liveUntil ? (*request.liveUntil)[kvHead].data()
                                  : nullptr) {
  const size_t perHead = numTokens * headDim;
  for (size_t g = 0; g < group; ++g)
    queries.push_back(layer.queries.data() + (kvHead * group + g) * perHead);
  const float *k = layer.keys.data() + kvHead * perHead;
  const float *v = layer.values.data() + kvHead * perHead;
  keysBlocked.assign(headDim * np, 0.0f);
  values.assign(numTokens * dp, 0.0f);
  for (size_t j = 0; j < numTokens; ++j)
    for (size_t d = 0; d < headDim; ++d) {
      keysBlocked[blockedIndex(j, d, headDim)] =
          numerics::roundToHalf(k[j * headDim + d]);
      values[j * dp + d] = numerics::roundToHalf(v[j * headDim + d]);
    }
}

void HeadEvaluator::prepareCandidates() {
  const size_t perHead = numTokens * headDim;
  const float *k = layer.keys.data() + kvHead * perHead;
  const float *v = layer.values.data() + kvHead * perHead;
  for (const Candidate &c : request.keyCandidates) {
    std::vector<float> view;
    if (c.isPruned()) {
      std::vector<float> groupQueries;
      for (const float *q : queries)
        groupQueries.insert(groupQueries.end(), q, q + perHead);
      std::vector<unsigned> kept = numerics::selectKeyChannels(
          groupQueries.data(), group * numTokens, k, maxCompressed, headDim,
          c.pruneKeep);
      view = numerics::pruneRoundTrip(k, maxCompressed, headDim, kept,
                                      c.element);
    } else {
      view = numerics::compressRoundTrip(k, maxCompressed, headDim, c.element);
    }
    std::vector<float> delta(headDim * np, 0.0f);
    for (size_t j = 0; j < maxCompressed; ++j)
      for (size_t d = 0; d < headDim; ++d) {
        const size_t i = blockedIndex(j, d, headDim);
        delta[i] = view[j * headDim + d] - keysBlocked[i];
      }
    keyDeltas.push_back(std::move(delta));
  }
  for (const Candidate &c : request.valueCandidates) {
    std::vector<float> view =
        numerics::compressRoundTrip(v, maxCompressed, headDim, c.element);
    std::vector<float> delta(numTokens * dp, 0.0f);
    for (size_t j = 0; j < maxCompressed; ++j)
      for (size_t d = 0; d < headDim; ++d)
        delta[j * dp + d] = view[j * headDim + d] - values[j * dp + d];
    valueDeltas.push_back(std::move(delta));
  }
}

void HeadEvaluator::referenceChunk(size_t first, size_t last) {
  chunkFirst = first;
  const size_t numRows = (last - first) * group;
  scores.resize(numRows * np);
  exps.resize(numRows * np);
  residualOut.resize(numRows * dp);
  rows.resize(numRows);
  std::vector<float> out(kHeadTile * dp);
  for (size_t p = first; p < last; ++p) {
    const size_t n = p + 1, s = split(p);
    for (size_t h0 = 0; h0 < group; h0 += kHeadTile) {
      const size_t tile = std::min(kHeadTile, group - h0);
      const float *q[kHeadTile] = {};
      float *sc[kHeadTile] = {}, *ex[kHeadTile] = {}, *res[kHeadTile] = {},
            *o[kHeadTile] = {};
      for (size_t t = 0; t < tile; ++t) {
        const size_t r = rowIndex(p, h0 + t);
        q[t] = queries[h0 + t] + p * headDim;
        sc[t] = scores.data() + r * np;
        ex[t] = exps.data() + r * np;
        res[t] = residualOut.data() + r * dp;
        o[t] = out.data() + t * dp;
      }
      forTile<Scores>(tile, q, headDim, keysBlocked.data(), n, sc);
      for (size_t t = 0; t < tile; ++t) {
        Row &row = rows[rowIndex(p, h0 + t)];
        for (size_t j = 0; j < n; ++j)
          sc[t][j] *= scale;
        maskScores(sc[t], n, p);
        const float m = maxOf(sc[t], n, -INFINITY);
        expShifted(sc[t], m, n, ex[t]);
        maskWeights(ex[t], n, p);
        const float zRes = sumOf(ex[t] + s, n - s);
        row = Row{m, sumOf(ex[t], s) + zRes, zRes};
      }
      // Residual part and compressed part of the reference output.
      const float *w[kHeadTile] = {ex[0], ex[1], ex[2], ex[3]};
      forTile<WeightedSum>(tile, w, values.data(), dp, s, n, res);
      forTile<WeightedSum>(tile, w, values.data(), dp, size_t(0), s, o);
      for (size_t t = 0; t < tile; ++t) {
        const float invZ = 1.0f / rows[rowIndex(p, h0 + t)].z;
        for (size_t d = 0; d < headDim; ++d) {
          const double od = double(o[t][d] + res[t][d]) * invZ;
          denominator += od * od;
        }
      }
    }
  }
}

void HeadEvaluator::valueCandidateChunk(const std::vector<float> &delta,
                                        size_t first, size_t last,
                                        double &numerator) {
  scratchOut.resize(kHeadTile * dp);
  for (size_t p = first; p < last; ++p) {
    const size_t s = split(p);
    if (s == 0)
      continue;
    for (size_t h0 = 0; h0 < group; h0 += kHeadTile) {
      const size_t tile = std::min(kHeadTile, group - h0);
      const float *w[kHeadTile] = {};
      float *o[kHeadTile];
      for (size_t t = 0; t < tile; ++t) {
        w[t] = exps.data() + rowIndex(p, h0 + t) * np;
        o[t] = scratchOut.data() + t * dp;
      }
      forTile<WeightedSum>(tile, w, delta.data(), dp, size_t(0), s, o);
      for (size_t t = 0; t < tile; ++t) {
        const double invZ = 1.0 / rows[rowIndex(p, h0 + t)].z;
        double sum = 0.0;
        for (size_t d = 0; d < headDim; ++d)
          sum += double(o[t][d]) * o[t][d];
        numerator += sum * invZ * invZ;
      }
    }
  }
}

void HeadEvaluator::keyCandidateChunk(const std::vector<float> &deltaBlocked,
                                      size_t first, size_t last,
                                      double &numerator) {
  scratchScores.resize(kHeadTile * np);
  scratchWeights.resize(kHeadTile * np);
  scratchOut.resize(kHeadTile * dp);
  for (size_t p = first; p < last; ++p) {
    const size_t s = split(p);
    if (s == 0)
      continue;
    for (size_t h0 = 0; h0 < group; h0 += kHeadTile) {
      const size_t tile = std::min(kHeadTile, group - h0);
      const float *q[kHeadTile] = {};
      float *ds[kHeadTile] = {}, *w[kHeadTile] = {}, *o[kHeadTile] = {};
      float residualCoef[kHeadTile];
      for (size_t t = 0; t < tile; ++t) {
        q[t] = queries[h0 + t] + p * headDim;
        ds[t] = scratchScores.data() + t * np;
        w[t] = scratchWeights.data() + t * np;
        o[t] = scratchOut.data() + t * dp;
      }
      forTile<Scores>(tile, q, headDim, deltaBlocked.data(), s, ds);
      for (size_t t = 0; t < tile; ++t) {
        const size_t r = rowIndex(p, h0 + t);
        const Row &row = rows[r];
        const float *sc = scores.data() + r * np;
        const float *ex = exps.data() + r * np;
        // New scores of the compressed keys; shift by the larger maximum.
        for (size_t j = 0; j < s; ++j)
          ds[t][j] = sc[j] + scale * ds[t][j];
        const float mx = maxOf(ds[t], s, row.m);
        expShifted(ds[t], mx, s, w[t]);
        maskWeights(w[t], s, p);
        const float zc = sumOf(w[t], s);
        const float factor = mx == row.m ? 1.0f : fastExp(row.m - mx);
        const float z = zc + row.zResidual * factor;
        const float invZ = 1.0f / z, invRef = 1.0f / row.z;
        for (size_t j = 0; j < s; ++j)
          w[t][j] = w[t][j] * invZ - ex[j] * invRef;
        residualCoef[t] = factor * invZ - invRef;
      }
      const float *wc[kHeadTile] = {w[0], w[1], w[2], w[3]};
      forTile<WeightedSum>(tile, wc, values.data(), dp, size_t(0), s, o);
      for (size_t t = 0; t < tile; ++t) {
        const float *res = residualOut.data() + rowIndex(p, h0 + t) * dp;
        double sum = 0.0;
        for (size_t d = 0; d < headDim; ++d) {
          const double e = double(o[t][d]) + double(residualCoef[t]) * res[d];
          sum += e * e;
        }
        numerator += sum;
      }
    }
  }
}

void HeadEvaluator::run(LayerErrors &out) {
  prepareCandidates();
  const size_t numKey = request.keyCandidates.size();
  const size_t numValue = request.valueCandidates.size();
  std::vector<double> keyNum(numKey, 0.0), valueNum(numValue, 0.0);
  for (size_t first = scoreFrom; first < numTokens; first += kChunk) {
    const size_t last = std::min(numTokens, first + kChunk);
    referenceChunk(first, last);
    for (size_t c = 0; c < numKey; ++c)
      if (!(request.keyCandidates[c] == Candidate{}))
        keyCandidateChunk(keyDeltas[c], first, last, keyNum[c]);
    for (size_t c = 0; c < numValue; ++c)
      if (!(request.valueCandidates[c] == Candidate{}))
        valueCandidateChunk(valueDeltas[c], first, last, valueNum[c]);
  }
  for (size_t c = 0; c < numKey; ++c) {
    out.key[c].numerator[kvHead] = keyNum[c];
    out.key[c].denominator[kvHead] = denominator;
  }
  for (size_t c = 0; c < numValue; ++c) {
    out.value[c].numerator[kvHead] = valueNum[c];
    out.value[c].denominator[kvHead] = denominator;
  }
}

} // namespace

/// Fills the numerators of KV head `kvHead` of every candidate of
/// `request`, and the denominators, in `out`.
void evaluateHead(const LayerErrorRequest &request, size_t kvHead,
                  const ErrorOptions &options, LayerErrors &out) {
  HeadEvaluator evaluator(request, kvHead, options);
  evaluator.run(out);
}

} // namespace KVC_ERROR_KERNEL_NAMESPACE
} // namespace cost
} // namespace kvc
