//===- Selection.cpp - Bit-width selection under a memory budget ----------===//

#include "kvc/CostModel/Selection.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cmath>
#include <functional>
#include <set>
#include <sstream>
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

/// Shortest form of a user-given number ("0.75").
std::string formatNumber(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
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
  if (options.context > 0) {
    if (!stats)
      return selectionError("token budgets (context > 0) need statistics: "
                            "eviction has no analytic proxy");
    std::string problem = checkEvictFractions(options.evictFractions);
    if (!problem.empty())
      return selectionError(problem);
  }
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

  // Token budgets: per layer, one variant per fraction (1: no eviction);
  // an evicting variant has its eviction run and every candidate measured
  // again on the kept tokens.
  struct Variant {
    std::optional<TokenBudget> budget; ///< none: every token kept
    CandidateError evictError;         ///< per KV head (evicting only)
    LayerErrors kept;                  ///< candidates on the kept tokens
  };
  std::vector<std::vector<Variant>> variants(layers.size());
  if (options.context == 0) {
    for (auto &v : variants)
      v.emplace_back();
  } else {
    result.context = options.context;
    result.evictFractions = options.evictFractions;
    std::sort(result.evictFractions.begin(), result.evictFractions.end(),
              std::greater<double>());
    std::vector<EvictionRequest> evictRequests;
    std::vector<std::pair<size_t, size_t>> evictOwner; // (layer, variant)
    for (size_t i = 0; i < layers.size(); ++i) {
      const LayerStats *s = stats->find(layers[i].layer);
      std::string lastProblem;
      for (double f : result.evictFractions) {
        Variant v;
        if (f < 1.0) {
          TokenBudget b;
          std::string problem = makeTokenBudget(
              f, options.context, layers[i].residual, s->numTokens, b);
          if (!problem.empty()) {
            result.skippedBudgets.push_back(
                llvm::formatv("layer {0}: {1}", layers[i].layer, problem));
            lastProblem = problem;
            continue;
          }
          v.budget = b;
          evictRequests.push_back({s, b.calibration});
          evictOwner.push_back({i, variants[i].size()});
        }
        variants[i].push_back(std::move(v));
      }
      if (variants[i].empty())
        return selectionError(llvm::formatv(
            "layer {0}: none of the token budgets is possible ({1})",
            layers[i].layer, lastProblem));
    }
    ErrorOptions errorOptions;
    errorOptions.scoreFrom = stats->scoreFrom;
    errorOptions.scale = options.scale;
    errorOptions.threads = options.threads;
    const auto start = std::chrono::steady_clock::now();
    std::vector<EvictionErrors> evicted =
        simulateEvictions(evictRequests, errorOptions);
    std::vector<LayerErrorRequest> keptRequests;
    for (size_t r = 0; r < evictRequests.size(); ++r) {
      const size_t i = evictOwner[r].first;
      LayerErrorRequest request;
      request.layer = evictRequests[r].layer;
      request.residual = layers[i].residual;
      request.keyCandidates = sideOf(i, Side::Key).candidates;
      request.valueCandidates = sideOf(i, Side::Value).candidates;
      request.liveUntil = &evicted[r].liveUntil;
      result.candidatesEvaluated += (request.keyCandidates.size() +
                                     request.valueCandidates.size()) *
                                    layers[i].kvHeads;
      keptRequests.push_back(std::move(request));
    }
    std::vector<LayerErrors> kept = computeErrors(keptRequests, errorOptions);
    result.errorSeconds += secondsSince(start);
    for (size_t r = 0; r < evictRequests.size(); ++r) {
      Variant &v = variants[evictOwner[r].first][evictOwner[r].second];
      v.evictError = std::move(evicted[r].error);
      v.kept = std::move(kept[r]);
    }
  }

  // The slots of a layer under one variant, and each option's error E.
  struct SubSlotRef {
    Side side;
    int head;
  };
  const bool perHead = options.granularity == Granularity::Head;
  auto layerSlots = [&](size_t i, const Variant &var, std::vector<Slot> &out,
                        std::vector<std::vector<double>> &outErrors,
                        std::vector<SubSlotRef> &refs) {
    const LayerSpec &l = layers[i];
    const double keep = var.budget ? var.budget->keepFraction : 1.0;
    for (Side side : {Side::Key, Side::Value}) {
      const LayerSide &ls = sideOf(i, side);
      const std::vector<CandidateError> *numerators = &ls.measured;
      if (var.budget)
        numerators = side == Side::Key ? &var.kept.key : &var.kept.value;
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
            // Normalized by the unevicted output (the base run's
            // denominators), like the eviction error itself.
            const CandidateError &base = ls.measured[c];
            const CandidateError &m = (*numerators)[c];
            double num = 0.0, den = 0.0;
            for (size_t k = 0; k < base.denominator.size(); ++k) {
              num += m.numerator[k];
              den += base.denominator[k];
            }
            error = perHead ? (base.denominator[h] > 0.0
                                   ? m.numerator[h] / base.denominator[h]
                                   : 0.0)
                            : (den > 0.0 ? num / den : 0.0);
            loss = ls.alpha * (perHead ? m.numerator[h] / den : error);
          }
          slot.options.push_back(
              {ls.candidates[c].bitsPerElement(l.headDim) * keep, loss});
          errs.push_back(error);
        }
        out.push_back(std::move(slot));
        outErrors.push_back(std::move(errs));
        refs.push_back({side, perHead ? h : -1});
      }
    }
  };
  // E of eviction alone: the layer's (head < 0), or one KV head's share of
  // it (its numerator over the layer's denominator, so that the heads'
  // shares add up to the layer's E, like the per-head candidate losses).
  auto evictionError = [](const Variant &var, int head) {
    if (!var.budget)
      return 0.0;
    const CandidateError &e = var.evictError;
    if (head < 0)
      return e.layerError();
    double den = 0.0;
    for (double d : e.denominator)
      den += d;
    return den > 0.0 ? e.numerator[head] / den : 0.0;
  };
  auto evictionLoss = [&](size_t i, const Variant &var, int head) {
    // Eviction, like key error, perturbs the attention weights: alpha_key.
    return sideOf(i, Side::Key).alpha * evictionError(var, head);
  };

  // Every layer's sub-slots under each of its variants, in the layer's
  // order (keys, then values; by head within a side).
  struct LayerSlots {
    std::vector<SubSlotRef> subRefs;
    std::vector<std::vector<Slot>> slots;                 // [variant][sub]
    std::vector<std::vector<std::vector<double>>> errors; // [variant][sub][c]
  };
  std::vector<LayerSlots> layerData(layers.size());
  for (size_t i = 0; i < layers.size(); ++i)
    for (const Variant &var : variants[i]) {
      std::vector<Slot> subSlots;
      std::vector<std::vector<double>> errors;
      layerData[i].subRefs.clear();
      layerSlots(i, var, subSlots, errors, layerData[i].subRefs);
      layerData[i].slots.push_back(std::move(subSlots));
      layerData[i].errors.push_back(std::move(errors));
    }

  // Top-level slots: without token budgets each sub-slot as it is; with
  // them one combined slot per group that shares a token budget: a layer
  // (granularity=layer), or one KV head's K and V (granularity=head: every
  // head chooses its own budget, as its eviction error is its own).
  struct SlotRef {
    size_t layer;
    int head = -1;            ///< the group's KV head, or -1
    std::vector<size_t> subs; ///< the layer's sub-slots it covers
    std::optional<CombinedSlot> combined;
  };
  std::vector<Slot> slots;
  std::vector<SlotRef> refs;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerSlots &data = layerData[i];
    if (options.context == 0) {
      for (size_t k = 0; k < data.subRefs.size(); ++k) {
        slots.push_back(data.slots[0][k]);
        refs.push_back({i, -1, {k}, std::nullopt});
      }
      continue;
    }
    const int numGroups = perHead ? int(layers[i].kvHeads) : 1;
    for (int g = 0; g < numGroups; ++g) {
      SlotRef ref{i, perHead ? g : -1, {}, std::nullopt};
      for (size_t k = 0; k < data.subRefs.size(); ++k)
        if (ref.head < 0 || data.subRefs[k].head == ref.head)
          ref.subs.push_back(k);
      std::vector<GroupVariant> group;
      for (size_t v = 0; v < variants[i].size(); ++v) {
        GroupVariant variant;
        variant.fixedLoss = evictionLoss(i, variants[i][v], ref.head);
        for (size_t k : ref.subs)
          variant.slots.push_back(data.slots[v][k]);
        group.push_back(std::move(variant));
      }
      llvm::Expected<CombinedSlot> combined = combineGroup(group);
      if (!combined)
        return combined.takeError();
      slots.push_back(combined->slot);
      ref.combined = std::move(*combined);
      refs.push_back(std::move(ref));
    }
  }

  // A combined slot's cost is the average of its two sub-slots' (K and V,
  // scaled) costs: a finer grid keeps the DP exact for the usual encodings.
  SolveOptions solveOptions = options.solver;
  if (options.context > 0)
    solveOptions.resolution *= 2.0;
  const auto solveStart = std::chrono::steady_clock::now();
  llvm::Expected<Solution> solution =
      solve(slots, options.budget, solveOptions);
  result.solveSeconds = secondsSince(solveStart);
  if (!solution)
    return solution.takeError();

  result.solverMethod = solution->method;
  result.exact = solution->exact;
  result.totalPredictedLoss = solution->totalLoss;
  result.lowerBound = solution->lowerBound;
  result.averageBits = solution->averageCost;

  // Per layer and sub-slot: the variant and the option chosen.
  struct Pick {
    size_t variant = 0, option = 0;
  };
  std::vector<std::vector<Pick>> picked(layers.size());
  for (size_t i = 0; i < layers.size(); ++i)
    picked[i].resize(layerData[i].subRefs.size());
  for (size_t s = 0; s < slots.size(); ++s) {
    const SlotRef &ref = refs[s];
    const size_t c = solution->choice[s];
    if (!ref.combined) {
      picked[ref.layer][ref.subs.front()] = {0, c};
      continue;
    }
    const GroupChoice &g = ref.combined->choices[c];
    for (size_t k = 0; k < ref.subs.size(); ++k)
      picked[ref.layer][ref.subs[k]] = {g.variant, g.choice[k]};
  }

  // The layer's eviction from each KV head's variant: none when every head
  // keeps every token, one budget when they agree, else per-head budgets
  // (a head that keeps every token keeps the whole planned context).
  auto layerEviction = [&](size_t i, const std::vector<size_t> &headVariant) {
    const LayerSpec &l = layers[i];
    LayerEviction e;
    e.layer = l.layer;
    const Variant *evicting = nullptr;
    bool uniform = true;
    for (size_t v : headVariant) {
      if (!evicting && variants[i][v].budget)
        evicting = &variants[i][v];
      uniform &= v == headVariant.front();
    }
    if (!evicting)
      return e;
    e.policy = evicting->budget->policy;
    e.calibration = evicting->budget->calibration;
    if (uniform) {
      e.keepFraction = evicting->budget->keepFraction;
      e.error = evictionError(*evicting, -1);
      e.predictedLoss = evictionLoss(i, *evicting, -1);
      return e;
    }
    const size_t calibrationTokens =
        std::min(options.context, stats->find(l.layer)->numTokens);
    double keep = 0.0;
    for (size_t h = 0; h < headVariant.size(); ++h) {
      const Variant &var = variants[i][headVariant[h]];
      e.policy->headBudgets.push_back(var.budget ? var.budget->policy.budget
                                                 : options.context);
      e.calibration.headBudgets.push_back(
          var.budget ? var.budget->calibration.budget : calibrationTokens);
      keep += var.budget ? var.budget->keepFraction : 1.0;
      e.error += evictionError(var, int(h));
      e.predictedLoss += evictionLoss(i, var, int(h));
    }
    e.policy->budget = *std::max_element(e.policy->headBudgets.begin(),
                                         e.policy->headBudgets.end());
    e.calibration.budget = *std::max_element(
        e.calibration.headBudgets.begin(), e.calibration.headBudgets.end());
    e.keepFraction = keep / double(headVariant.size());
    assert(numerics::checkEvictPolicy(*e.policy).empty() &&
           numerics::checkEvictPolicy(e.calibration).empty());
    return e;
  };

  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec &l = layers[i];
    const LayerSlots &data = layerData[i];
    std::vector<size_t> headVariant(l.kvHeads, 0);
    for (size_t k = 0; k < data.subRefs.size(); ++k) {
      const int head = data.subRefs[k].head;
      for (unsigned h = 0; h < l.kvHeads; ++h)
        if (head < 0 || head == int(h))
          headVariant[h] = picked[i][k].variant;
    }
    LayerEviction eviction;
    if (options.context > 0) {
      eviction = layerEviction(i, headVariant);
      result.evictions.push_back(eviction);
    }
    for (size_t k = 0; k < data.subRefs.size(); ++k) {
      const auto [v, c] = picked[i][k];
      const Variant &var = variants[i][v];
      const SubSlotRef &subRef = data.subRefs[k];
      const LayerSide &ls = sideOf(i, subRef.side);
      SlotChoice choice;
      choice.layer = l.layer;
      choice.head = subRef.head;
      choice.side = subRef.side;
      choice.heads = subRef.head < 0 ? l.kvHeads : 1;
      choice.headDim = l.headDim;
      choice.candidate = ls.candidates[c];
      choice.bits = choice.candidate.bitsPerElement(l.headDim);
      choice.evict = eviction.policy;
      if (var.budget)
        choice.keepFraction = var.budget->keepFraction;
      choice.bytesPerToken =
          choice.bits * choice.heads * l.headDim / 8.0 * choice.keepFraction;
      choice.error = data.errors[v][k][c];
      choice.predictedLoss = data.slots[v][k].options[c].loss;
      result.bytesPerToken += choice.bytesPerToken;
      result.fp16BytesPerToken += 2.0 * choice.heads * l.headDim;
      result.slots.push_back(choice);
    }
  }
  return result;
}

namespace {
/// The policy a slot's tokens follow: its KV head's, if the layer's budgets
/// are per head.
numerics::EvictPolicy slotPolicy(const SlotChoice &s) {
  return s.head < 0 ? *s.evict : s.evict->forHead(size_t(s.head));
}

/// "budget 192", or "budgets 192,96" per KV head.
std::string calibrationBudgets(const numerics::EvictPolicy &p) {
  if (p.headBudgets.empty())
    return "budget " + std::to_string(p.budget);
  std::string text = "budgets ";
  for (size_t h = 0; h < p.headBudgets.size(); ++h)
    text += (h ? "," : "") + std::to_string(p.headBudgets[h]);
  return text;
}

llvm::json::Array toJSONArray(const std::vector<size_t> &values) {
  llvm::json::Array array;
  for (size_t v : values)
    array.push_back(int64_t(v));
  return array;
}
} // namespace

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
  // With token budgets every row also shows its layer's budget.
  const bool budgets = r.context > 0;
  os << llvm::formatv("{0,5} {1,5}  {2,-5}  {3,-22} {4,6} {5,9}  {6,11}  "
                      "{7,11}",
                      "layer", "head", "side", "encoding", "bits", "B/token",
                      "error E", "pred. loss");
  os << (budgets ? llvm::formatv("  {0,5}  {1}\n", "keep", "evict").str()
                 : std::string("\n"));
  for (const SlotChoice &s : r.slots) {
    os << llvm::formatv("{0,5} {1,5}  {2,-5}  {3,-22} {4,6:F3} {5,9:F1}  "
                        "{6,11:e}  {7,11:e}",
                        s.layer,
                        s.head < 0 ? std::string("all") : std::to_string(s.head),
                        sideName(s.side), s.candidate.toString(), s.bits,
                        s.bytesPerToken, s.error, s.predictedLoss);
    if (budgets)
      os << llvm::formatv("  {0,5:F3}  {1}", s.keepFraction,
                          s.evict ? numerics::formatEvictPolicy(slotPolicy(s))
                                  : std::string("-"));
    os << "\n";
  }
  if (budgets) {
    os << "token budgets: context " << r.context << " tokens, fractions";
    for (double f : r.evictFractions)
      os << " " << formatNumber(f);
    os << " (H2O, sink " << kEvictSink << ", window R"
       << (r.granularity == Granularity::Head ? ", per KV head" : "")
       << ")\n";
    for (const LayerEviction &e : r.evictions) {
      if (!e.policy) {
        os << llvm::formatv("evict layer {0}: none (keep 1.000)\n", e.layer);
        continue;
      }
      os << llvm::formatv("evict layer {0}: {1} (keep {2:F3}; measured with "
                          "{3} on the calibration tokens: E {4:e}, "
                          "pred. loss {5:e})\n",
                          e.layer, numerics::formatEvictPolicy(*e.policy),
                          e.keepFraction, calibrationBudgets(e.calibration),
                          e.error, e.predictedLoss);
    }
    for (const std::string &skipped : r.skippedBudgets)
      os << "skipped " << skipped << "\n";
  }
  for (const SideAlpha &a : r.alphas)
    os << llvm::formatv("alpha layer {0} {1}: {2:e} (dloss {3:e} at {4}, "
                        "E_ref {5:e})\n",
                        a.layer, sideName(a.side), a.alpha, a.dloss,
                        a.reference.toString(), a.referenceError);
  os << llvm::formatv("total: {0:F3} bits/element (budget {1:F3}), "
                      "{2:F1} B/token vs fp16 {3:F1} ({4:F2}x smaller){5}\n",
                      r.averageBits, r.budget, r.bytesPerToken,
                      r.fp16BytesPerToken,
                      r.bytesPerToken > 0 ? r.fp16BytesPerToken /
                                                r.bytesPerToken
                                          : 0.0,
                      budgets ? ", averaged over the context" : "");
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
  const bool budgets = r.context > 0;
  auto policyValue = [](const std::optional<numerics::EvictPolicy> &p) {
    return p ? llvm::json::Value(numerics::formatEvictPolicy(*p))
             : llvm::json::Value(nullptr);
  };
  llvm::json::Array slots;
  for (const SlotChoice &s : r.slots) {
    llvm::json::Object slot{
        {"layer", s.layer},
        {"head", s.head < 0 ? llvm::json::Value("all")
                            : llvm::json::Value(s.head)},
        {"side", sideName(s.side)},
        {"encoding", s.candidate.toString()},
        {"bits_per_element", s.bits},
        {"bytes_per_token", s.bytesPerToken},
        {"error", s.error},
        {"predicted_loss", s.predictedLoss}};
    // Only with token budgets, so that reports without them stay as they
    // were.
    if (budgets) {
      slot["evict"] = policyValue(s.evict);
      slot["keep_fraction"] = s.keepFraction;
      slot["token_budget"] = s.evict ? llvm::json::Value(int64_t(
                                           slotPolicy(s).budget))
                                     : llvm::json::Value(nullptr);
    }
    slots.push_back(std::move(slot));
  }
  llvm::json::Array alphas;
  for (const SideAlpha &a : r.alphas)
    alphas.push_back(llvm::json::Object{{"layer", a.layer},
                                        {"side", sideName(a.side)},
                                        {"alpha", a.alpha},
                                        {"reference", a.reference.toString()},
                                        {"reference_error", a.referenceError},
                                        {"dloss", a.dloss}});
  llvm::json::Object report{
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
  if (budgets) {
    llvm::json::Array evictions;
    for (const LayerEviction &e : r.evictions) {
      llvm::json::Object entry{{"layer", e.layer},
                               {"evict", policyValue(e.policy)},
                               {"keep_fraction", e.keepFraction},
                               {"error", e.error},
                               {"predicted_loss", e.predictedLoss}};
      if (e.policy)
        entry["calibration_budget"] = int64_t(e.calibration.budget);
      if (e.policy && !e.policy->headBudgets.empty()) {
        entry["head_budgets"] = toJSONArray(e.policy->headBudgets);
        entry["calibration_head_budgets"] =
            toJSONArray(e.calibration.headBudgets);
      }
      evictions.push_back(std::move(entry));
    }
    llvm::json::Array fractions;
    for (double f : r.evictFractions)
      fractions.push_back(f);
    llvm::json::Array skipped;
    for (const std::string &text : r.skippedBudgets)
      skipped.push_back(text);
    report["context"] = int64_t(r.context);
    report["evict_fractions"] = std::move(fractions);
    report["evictions"] = std::move(evictions);
    report["skipped_budgets"] = std::move(skipped);
  }
  return report;
}

} // namespace cost
} // namespace kvc
