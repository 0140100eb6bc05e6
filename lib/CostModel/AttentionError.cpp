//===- AttentionError.cpp - Measured attention error of candidates --------===//
//
// The evaluator itself is ErrorKernels.h, compiled for the baseline ISA here
// and for AVX2+FMA in AttentionErrorAVX2.cpp (x86-64); the faster one the
// CPU supports runs. This file schedules (layer, KV head) units on threads.
//
//===----------------------------------------------------------------------===//

#define KVC_ERROR_KERNEL_NAMESPACE baseline
#include "ErrorKernels.h"
#include "ForEachKVHead.h"
#undef KVC_ERROR_KERNEL_NAMESPACE

#include <cassert>

namespace kvc {
namespace cost {

#ifdef KVC_HAVE_AVX2_KERNELS
namespace avx2 {
void evaluateHead(const LayerErrorRequest &request, size_t kvHead,
                  const ErrorOptions &options, LayerErrors &out);
} // namespace avx2
#endif

double CandidateError::headError(size_t h) const {
  return denominator[h] > 0.0 ? numerator[h] / denominator[h] : 0.0;
}

double CandidateError::layerError() const {
  double num = 0.0, den = 0.0;
  for (size_t h = 0; h < numerator.size(); ++h) {
    num += numerator[h];
    den += denominator[h];
  }
  return den > 0.0 ? num / den : 0.0;
}

namespace {
using EvaluateFn = void (*)(const LayerErrorRequest &, size_t,
                            const ErrorOptions &, LayerErrors &);
EvaluateFn selectEvaluator() {
#ifdef KVC_HAVE_AVX2_KERNELS
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return avx2::evaluateHead;
#endif
  return baseline::evaluateHead;
}
} // namespace


std::vector<LayerErrors>
computeErrors(const std::vector<LayerErrorRequest> &requests,
              const ErrorOptions &options) {
  std::vector<LayerErrors> results(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const LayerStats &layer = *requests[i].layer;
    assert(options.scoreFrom < layer.numTokens && "nothing to score");
    auto sized = [&](size_t n) {
      CandidateError e;
      e.numerator.assign(layer.numKVHeads, 0.0);
      e.denominator.assign(layer.numKVHeads, 0.0);
      return std::vector<CandidateError>(n, e);
    };
    results[i].key = sized(requests[i].keyCandidates.size());
    results[i].value = sized(requests[i].valueCandidates.size());
  }
  const EvaluateFn evaluate = selectEvaluator();
  forEachKVHead(requests, options.threads, [&](size_t request, size_t kvHead) {
    evaluate(requests[request], kvHead, options, results[request]);
  });
  return results;
}

std::vector<CandidateError>
candidateErrors(const LayerStats &layer, Side side,
                const std::vector<Candidate> &candidates,
                const ErrorOptions &options) {
  LayerErrorRequest request;
  request.layer = &layer;
  request.residual = options.residual;
  (side == Side::Key ? request.keyCandidates : request.valueCandidates) =
      candidates;
  std::vector<LayerErrors> result = computeErrors({request}, options);
  return side == Side::Key ? result[0].key : result[0].value;
}

double analyticError(const Candidate &candidate, Side side) {
  const double sideWeight = side == Side::Key ? 2.0 : 1.0;
  const numerics::SideEncoding &e = candidate.element;
  switch (e.kind) {
  case numerics::SideEncoding::Kind::Plain:
    return 0.0;
  case numerics::SideEncoding::Kind::FP8: {
    const int mantissa = e.fp8 == numerics::FP8Format::E4M3 ? 3 : 2;
    return sideWeight * std::pow(4.0, -(mantissa + 1)) / 3.0;
  }
  case numerics::SideEncoding::Kind::Quant: {
    const double range = 2.0 * std::sqrt(2.0 * std::log(double(e.quant.group)));
    const double step = range / double((1u << e.quant.bits) - 1u);
    const bool keysPerToken =
        side == Side::Key && e.quant.axis == numerics::QuantAxis::Token;
    const bool valuesPerChannel =
        side == Side::Value && e.quant.axis == numerics::QuantAxis::Channel;
    const double axisPenalty = keysPerToken ? 4.0 : valuesPerChannel ? 2.0 : 1.0;
    return sideWeight * step * step / 12.0 * axisPenalty;
  }
  }
  return 0.0;
}

} // namespace cost
} // namespace kvc
