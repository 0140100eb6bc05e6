//===- Selection.cpp - Bit-width selection under a memory budget ----------===//

#include "kvc/CostModel/Selection.h"

#include "llvm/Support/FormatVariadic.h"

#include <chrono>
#include <cmath>
#include <set>
#include <thread>

namespace kvc {
namespace cost {

const char *granularityName(Granularity g) {
  return g == Granularity::Layer ? "layer" : "head";
}

const char *modelKindName(ModelKind kind) {
  switch (kind) {
  case ModelKind::Calibrated:
    return "calibrated";
  case ModelKind::AttentionError:
    return "attention-error";
  case ModelKind::Analytic:
    return "analytic";
  }
  return "?";
}

namespace {
llvm::Error selectionError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                       start)
      .count();
}

/// Per layer and side: the candidates and, per candidate, the slot errors.
struct LayerSide {
  std::vector<Candidate> candidates;
  /// [candidate] -> per-head numerators and denominators (measured), or
  /// empty (analytic).
  std::vector<CandidateError> measured;
  double alpha = 1.0;
};

/// Checks that `stats` can stand for `layer`.
llvm::Error checkStatsLayer(const CalibrationStats &stats,
                            const LayerSpec &layer) {
  const LayerStats *s = stats.find(layer.layer);
  if (!s)
    return selectionError(stats.path + ": no statistics for layer " +
                          llvm::Twine(layer.layer) +
                          " (expected tensors layer" +
                          llvm::Twine(layer.layer) + ".q/k/v)");
  if (s->headDim != layer.headDim)
    return selectionError(llvm::formatv(
        "{0}: layer {1} has head_dim {2} in the statistics but {3} in the "
        "model",
        stats.path, layer.layer, s->headDim, layer.headDim));
  if (s->numKVHeads != layer.kvHeads)
    return selectionError(llvm::formatv(
        "{0}: layer {1} has {2} KV heads in the statistics but {3} in the "
        "model",
        stats.path, layer.layer, s->numKVHeads, layer.kvHeads));
  return llvm::Error::success();
}
} // namespace

llvm::Expected<SelectionResult>
selectBitwidths(const std::vector<LayerSpec> &layers,
                const CalibrationStats *stats,
                const SelectionOptions &options) {
  if (!(options.budget > 0.0) || !std::isfinite(options.budget))
    return selectionError("budget must be a positive number of bits per "
                          "element");
  if (layers.empty())
    return selectionError("no caches to allocate bits for");
  std::set<unsigned> seen;
  for (const LayerSpec &l : layers)
    if (!seen.insert(l.layer).second)
      return selectionError("layer " + llvm::Twine(l.layer) +
                            " is listed twice");

  SelectionResult result;
  result.granularity = options.granularity;
  result.budget = options.budget;
  result.threads = options.threads ? options.threads
                                   : std::max(1u, std::thread::hardware_concurrency());

  // Candidates; pruning needs data to be predicted.
  std::vector<LayerSide> sides(layers.size() * 2);
  auto sideOf = [&](size_t i, Side side) -> LayerSide & {
    return sides[2 * i + (side == Side::Key ? 0 : 1)];
  };
  CandidateOptions candidateOptions = options.candidates;
  if (!stats)
    candidateOptions.prune = false;
  for (size_t i = 0; i < layers.size(); ++i)
    for (Side side : {Side::Key, Side::Value}) {
      sideOf(i, side).candidates = enumerateCandidates(
          side, layers[i].headDim, layers[i].residual, candidateOptions);
      if (sideOf(i, side).candidates.empty())
        return selectionError(llvm::formatv(
            "layer {0} {1}: no candidate encoding is valid for head_dim {2} "
            "and residual {3}",
            layers[i].layer, sideName(side), layers[i].headDim,
            layers[i].residual));
    }

  if (stats) {
    result.statsPath = stats->path;
    bool calibrated = true;
    for (const LayerSpec &l : layers) {
      if (llvm::Error e = checkStatsLayer(*stats, l))
        return std::move(e);
      const LayerStats *s = stats->find(l.layer);
      for (Side side : {Side::Key, Side::Value}) {
        const auto &calib = s->calibration(side);
        if (!calib) {
          if (calibrated)
            result.note = llvm::formatv(
                "no kvc.calib.layer{0}.{1}.encoding/dloss in {2}: predicted "
                "loss is the attention error E, not calibrated",
                l.layer, sideName(side), stats->path);
          calibrated = false;
          continue;
        }
        std::string problem = validateCandidate(calib->encoding, side,
                                                l.headDim, l.residual);
        if (!problem.empty())
          return selectionError(llvm::formatv(
              "{0}: calibration encoding '{1}' of layer {2} {3} is not valid "
              "here: {4}",
              stats->path, calib->encoding.toString(), l.layer, sideName(side),
              problem));
      }
    }
    result.model = calibrated ? ModelKind::Calibrated
                              : ModelKind::AttentionError;

    // One batch: every candidate, plus the calibration encodings.
    std::vector<LayerErrorRequest> requests(layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      requests[i].layer = stats->find(layers[i].layer);
      requests[i].residual = layers[i].residual;
      requests[i].keyCandidates = sideOf(i, Side::Key).candidates;
      requests[i].valueCandidates = sideOf(i, Side::Value).candidates;
      if (calibrated) {
        requests[i].keyCandidates.push_back(
            requests[i].layer->keyCalibration->encoding);
        requests[i].valueCandidates.push_back(
            requests[i].layer->valueCalibration->encoding);
      }
      result.candidatesEvaluated += (requests[i].keyCandidates.size() +
                                     requests[i].valueCandidates.size()) *
                                    layers[i].kvHeads;
    }
    ErrorOptions errorOptions;
    errorOptions.scoreFrom = stats->scoreFrom;
    errorOptions.scale = options.scale;
    errorOptions.threads = options.threads;
    const auto start = std::chrono::steady_clock::now();
    std::vector<LayerErrors> errors = computeErrors(requests, errorOptions);
    result.errorSeconds = secondsSince(start);

    for (size_t i = 0; i < layers.size(); ++i)
      for (Side side : {Side::Key, Side::Value}) {
        LayerSide &ls = sideOf(i, side);
        ls.measured = side == Side::Key ? errors[i].key : errors[i].value;
        if (!calibrated)
          continue;
        const SideCalibration &calib =
            *requests[i].layer->calibration(side);
        const double refError = ls.measured.back().layerError();
        ls.measured.pop_back();
        if (!(refError > 0.0))
          return selectionError(llvm::formatv(
              "{0}: calibration encoding '{1}' of layer {2} {3} has no "
              "attention error, so it cannot calibrate the loss",
              stats->path, calib.encoding.toString(), layers[i].layer,
              sideName(side)));
        ls.alpha = calib.dloss / refError;
        result.alphas.push_back({layers[i].layer, side, ls.alpha,
                                 calib.encoding, refError, calib.dloss});
      }
  } else {
    result.note = "no statistics: analytic proxy from bits, group and axis";
  }

  // Slots.
  struct SlotRef {
    size_t layer;
    Side side;
    int head;
  };
  std::vector<Slot> slots;
  std::vector<SlotRef> refs;
  std::vector<std::vector<double>> slotErrors;
  for (size_t i = 0; i < layers.size(); ++i)
    for (Side side : {Side::Key, Side::Value}) {
      const LayerSide &ls = sideOf(i, side);
      const LayerSpec &l = layers[i];
      const bool perHead = options.granularity == Granularity::Head;
      const int numSlots = perHead ? int(l.kvHeads) : 1;
      for (int h = 0; h < numSlots; ++h) {
        Slot slot;
        slot.weight = double(perHead ? 1 : l.kvHeads) * l.headDim;
        std::vector<double> errs;
        for (size_t c = 0; c < ls.candidates.size(); ++c) {
          double error, loss;
          if (ls.measured.empty()) {
            error = analyticError(ls.candidates[c], side);
            loss = error / numSlots;
          } else {
            const CandidateError &m = ls.measured[c];
            double den = 0.0;
            for (double d : m.denominator)
              den += d;
            error = perHead ? m.headError(h) : m.layerError();
            loss = ls.alpha * (perHead ? m.numerator[h] / den : error);
          }
          slot.options.push_back(
              {ls.candidates[c].bitsPerElement(l.headDim), loss});
          errs.push_back(error);
        }
        slots.push_back(std::move(slot));
        refs.push_back({i, side, perHead ? h : -1});
        slotErrors.push_back(std::move(errs));
      }
    }

  const auto solveStart = std::chrono::steady_clock::now();
  llvm::Expected<Solution> solution =
      solve(slots, options.budget, options.solver);
  result.solveSeconds = secondsSince(solveStart);
  if (!solution)
    return solution.takeError();

  result.solverMethod = solution->method;
  result.exact = solution->exact;
  result.totalPredictedLoss = solution->totalLoss;
  result.lowerBound = solution->lowerBound;
  result.averageBits = solution->averageCost;
  for (size_t s = 0; s < slots.size(); ++s) {
    const SlotRef &ref = refs[s];
    const LayerSpec &l = layers[ref.layer];
    const size_t c = solution->choice[s];
    SlotChoice choice;
    choice.layer = l.layer;
    choice.head = ref.head;
    choice.side = ref.side;
    choice.heads = ref.head < 0 ? l.kvHeads : 1;
    choice.headDim = l.headDim;
    choice.candidate = sideOf(ref.layer, ref.side).candidates[c];
    choice.bits = slots[s].options[c].cost;
    choice.bytesPerToken = choice.bits * choice.heads * l.headDim / 8.0;
    choice.error = slotErrors[s][c];
    choice.predictedLoss = slots[s].options[c].loss;
    result.bytesPerToken += choice.bytesPerToken;
    result.fp16BytesPerToken += 2.0 * choice.heads * l.headDim;
    result.slots.push_back(choice);
  }
  return result;
}

void printReport(const SelectionResult &r, llvm::raw_ostream &os) {
  os << llvm::formatv("kvc-select-bitwidths: budget {0:F3} bits/element, "
                      "granularity {1}, {2} slots\n",
                      r.budget, granularityName(r.granularity),
                      r.slots.size());
  os << "cost model: " << modelKindName(r.model);
  if (r.model == ModelKind::Calibrated)
    os << " (predicted loss = alpha * E, alpha = dloss / E_ref from "
       << r.statsPath << ")";
  else if (!r.note.empty())
    os << " (" << r.note << ")";
  os << "\n";
  os << llvm::formatv("{0,5} {1,5}  {2,-5}  {3,-22} {4,6} {5,9}  {6,11}  "
                      "{7,11}\n",
                      "layer", "head", "side", "encoding", "bits", "B/token",
                      "error E", "pred. loss");
  for (const SlotChoice &s : r.slots)
    os << llvm::formatv("{0,5} {1,5}  {2,-5}  {3,-22} {4,6:F3} {5,9:F1}  "
                        "{6,11:e}  {7,11:e}\n",
                        s.layer,
                        s.head < 0 ? std::string("all") : std::to_string(s.head),
                        sideName(s.side), s.candidate.toString(), s.bits,
                        s.bytesPerToken, s.error, s.predictedLoss);
  for (const SideAlpha &a : r.alphas)
    os << llvm::formatv("alpha layer {0} {1}: {2:e} (dloss {3:e} at {4}, "
                        "E_ref {5:e})\n",
                        a.layer, sideName(a.side), a.alpha, a.dloss,
                        a.reference.toString(), a.referenceError);
  os << llvm::formatv("total: {0:F3} bits/element (budget {1:F3}), "
                      "{2:F1} B/token vs fp16 {3:F1} ({4:F2}x smaller)\n",
                      r.averageBits, r.budget, r.bytesPerToken,
                      r.fp16BytesPerToken,
                      r.bytesPerToken > 0 ? r.fp16BytesPerToken /
                                                r.bytesPerToken
                                          : 0.0);
  os << llvm::formatv("predicted loss: {0:e} (lower bound {1:e}; solver {2}, "
                      "{3})\n",
                      r.totalPredictedLoss, r.lowerBound, r.solverMethod,
                      r.exact ? "optimal" : "within the bound");
  if (r.model != ModelKind::Analytic)
    os << llvm::formatv("errors: {0} candidate evaluations (per KV head) in "
                        "{1:F2} s on {2} threads; solve {3:F3} s\n",
                        r.candidatesEvaluated, r.errorSeconds, r.threads,
                        r.solveSeconds);
}

llvm::json::Value reportToJSON(const SelectionResult &r) {
  llvm::json::Array slots;
  for (const SlotChoice &s : r.slots)
    slots.push_back(llvm::json::Object{
        {"layer", s.layer},
        {"head", s.head < 0 ? llvm::json::Value("all")
                            : llvm::json::Value(s.head)},
        {"side", sideName(s.side)},
        {"encoding", s.candidate.toString()},
        {"bits_per_element", s.bits},
        {"bytes_per_token", s.bytesPerToken},
        {"error", s.error},
        {"predicted_loss", s.predictedLoss}});
  llvm::json::Array alphas;
  for (const SideAlpha &a : r.alphas)
    alphas.push_back(llvm::json::Object{{"layer", a.layer},
                                        {"side", sideName(a.side)},
                                        {"alpha", a.alpha},
                                        {"reference", a.reference.toString()},
                                        {"reference_error", a.referenceError},
                                        {"dloss", a.dloss}});
  return llvm::json::Object{
      {"budget", r.budget},
      {"granularity", granularityName(r.granularity)},
      {"model", modelKindName(r.model)},
      {"stats", r.statsPath},
      {"note", r.note},
      {"slots", std::move(slots)},
      {"alphas", std::move(alphas)},
      {"average_bits", r.averageBits},
      {"bytes_per_token", r.bytesPerToken},
      {"fp16_bytes_per_token", r.fp16BytesPerToken},
      {"predicted_loss", r.totalPredictedLoss},
      {"lower_bound", r.lowerBound},
      {"solver", r.solverMethod},
      {"optimal", r.exact},
      {"candidate_evaluations", int64_t(r.candidatesEvaluated)},
      {"error_seconds", r.errorSeconds},
      {"solve_seconds", r.solveSeconds}};
}

} // namespace cost
} // namespace kvc
