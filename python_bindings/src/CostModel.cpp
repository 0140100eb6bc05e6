//===- CostModel.cpp - kvc._kvc: the cost model ---------------------------===//
//
// select_bitwidths runs the same selection as kvc-select-bitwidths (without
// IR: the caller names the layers) and returns its JSON report as Python
// objects (with context > 0 also each layer's token budget, per KV head
// with granularity "head");
// candidate_errors exposes the measured attention-output error E
// of encodings on calibration statistics.
//
//===----------------------------------------------------------------------===//

#include "Bindings.h"

#include "kvc/CostModel/AttentionError.h"
#include "kvc/CostModel/Selection.h"
#include "kvc/CostModel/Stats.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <pybind11/stl.h>

namespace py = pybind11;

namespace kvc::python {
namespace {

template <typename T> T unwrap(llvm::Expected<T> value) {
  if (!value)
    throw py::value_error(llvm::toString(value.takeError()));
  return std::move(*value);
}

cost::Side parseSideName(const std::string &side) {
  if (side == "key")
    return cost::Side::Key;
  if (side == "value")
    return cost::Side::Value;
  throw py::value_error("side must be 'key' or 'value', not '" + side + "'");
}

py::object toPython(const llvm::json::Value &value) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << value;
  os.flush();
  return py::module_::import("json").attr("loads")(text);
}

py::object selectBitwidths(unsigned numLayers, unsigned kvHeads,
                           unsigned headDim, double budget,
                           const std::optional<std::string> &statsPath,
                           const std::string &granularity, unsigned residual,
                           unsigned pageTokens, bool prune, int64_t context,
                           const std::optional<std::vector<double>>
                               &evictFractions) {
  if (context < 0)
    throw py::value_error("context (tokens the token budgets are planned "
                          "for) must be >= 0, got " +
                          std::to_string(context));
  if (evictFractions && context == 0)
    throw py::value_error("evict_fractions needs context (the context length "
                          "the token budgets are fractions of)");
  std::optional<cost::CalibrationStats> stats;
  if (statsPath)
    stats = unwrap(cost::loadStats(*statsPath));
  std::vector<cost::LayerSpec> layers;
  for (unsigned l = 0; l < numLayers; ++l)
    layers.push_back({l, kvHeads, headDim, residual});
  cost::SelectionOptions options;
  options.budget = budget;
  options.candidates.pageTokens = pageTokens;
  options.candidates.prune = prune;
  options.context = size_t(context);
  if (evictFractions)
    options.evictFractions = *evictFractions;
  if (granularity == "head")
    options.granularity = cost::Granularity::Head;
  else if (granularity != "layer")
    throw py::value_error("granularity must be 'layer' or 'head'");
  llvm::Expected<cost::SelectionResult> result = [&] {
    py::gil_scoped_release release;
    return cost::selectBitwidths(layers, stats ? &*stats : nullptr, options);
  }();
  if (!result)
    throw py::value_error(llvm::toString(result.takeError()));
  return toPython(cost::reportToJSON(*result));
}

/// E of each candidate on one layer side: the layer's and each KV head's.
py::list candidateErrors(const std::string &statsPath, unsigned layer,
                         const std::string &side,
                         const std::vector<std::string> &candidates,
                         unsigned residual) {
  cost::CalibrationStats stats = unwrap(cost::loadStats(statsPath));
  const cost::LayerStats *layerStats = stats.find(layer);
  if (!layerStats)
    throw py::value_error(statsPath + ": no layer " + std::to_string(layer));
  cost::Side s = parseSideName(side);
  std::vector<cost::Candidate> parsed;
  for (const std::string &text : candidates) {
    cost::Candidate c = unwrap(cost::parseCandidate(text));
    std::string problem =
        cost::validateCandidate(c, s, layerStats->headDim, residual);
    if (!problem.empty())
      throw py::value_error(text + ": " + problem);
    parsed.push_back(c);
  }
  cost::ErrorOptions options;
  options.residual = residual;
  options.scoreFrom = stats.scoreFrom;
  std::vector<cost::CandidateError> errors;
  {
    py::gil_scoped_release release;
    errors = cost::candidateErrors(*layerStats, s, parsed, options);
  }
  py::list result;
  for (size_t i = 0; i < errors.size(); ++i) {
    py::dict entry;
    entry["candidate"] = parsed[i].toString();
    entry["bits"] = parsed[i].bitsPerElement(layerStats->headDim);
    entry["error"] = errors[i].layerError();
    std::vector<double> heads;
    for (size_t h = 0; h < layerStats->numKVHeads; ++h)
      heads.push_back(errors[i].headError(h));
    entry["head_errors"] = heads;
    result.append(entry);
  }
  return result;
}

} // namespace

void bindCostModel(py::module_ &m) {
  m.def("select_bitwidths", &selectBitwidths, py::arg("num_layers"),
        py::arg("kv_heads"), py::arg("head_dim"), py::arg("budget"),
        py::arg("stats") = std::nullopt, py::arg("granularity") = "layer",
        py::arg("residual") = 128, py::arg("page_tokens") = 64,
        py::arg("prune") = false, py::arg("context") = 0,
        py::arg("evict_fractions") = std::nullopt,
        "Choose key and value encodings per layer (or KV head) under a budget "
        "of average bits per element; returns the cost model's report (the "
        "JSON kvc-select-bitwidths writes) as Python objects. Without stats "
        "the analytic proxy is used. page_tokens: channel-axis groups must "
        "divide the runtime page; prune: consider key channel pruning. "
        "context > 0 (needs stats): each layer may also keep only a token "
        "budget of fraction * context tokens (H2O, sink 4, window = "
        "residual), fractions from evict_fractions (default 1, 0.75, 0.5, "
        "0.25; 1 keeps every token); the report's slots then carry 'evict' "
        "(the layer's policy), 'keep_fraction' and 'token_budget' (the "
        "slot's own), and 'evictions' lists each layer's budget. With "
        "granularity='head' every KV head chooses its own budget: a layer "
        "whose heads differ gets a policy with per-head budgets "
        "('h2o:sink=4:window=128:budget=2048:heads=1024,2048', also as "
        "'head_budgets'; a head keeping every token keeps `context`).");
  m.def("candidate_errors", &candidateErrors, py::arg("stats"),
        py::arg("layer"), py::arg("side"), py::arg("candidates"),
        py::arg("residual") = 128,
        "The relative attention-output error E of each candidate encoding "
        "(spec language) on one layer side of a statistics file.");
}

} // namespace kvc::python
