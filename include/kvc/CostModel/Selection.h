//===- Selection.h - Bit-width selection under a memory budget --*- C++ -*-===//
//
// The cost model end to end: enumerate the candidates of every slot (a
// layer's, or one KV head's, keys or values), predict each one's loss
// (measured attention error on calibration data, scaled by the calibrated
// loss sensitivity, or the analytic proxy without data), solve the
// multiple-choice knapsack under the average-bits budget, and report.
// With a context length, each layer (granularity=layer) or each KV head
// (granularity=head) may also choose a token budget (an H2O eviction
// policy, Eviction.h) that scales the cost of its K and V slots by the share
// of tokens kept and adds the measured eviction error.
// No MLIR: the kvc-select-bitwidths pass and the Python bindings share it.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_COSTMODEL_SELECTION_H
#define KVC_COSTMODEL_SELECTION_H

#include "kvc/CostModel/AttentionError.h"
#include "kvc/CostModel/Candidates.h"
#include "kvc/CostModel/Eviction.h"
#include "kvc/CostModel/Solver.h"
#include "kvc/CostModel/Stats.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>
#include <vector>

namespace kvc {
namespace cost {

enum class Granularity { Layer, Head };
/// "layer" / "head".
const char *granularityName(Granularity g);

/// One cache (layer) to allocate bits for.
struct LayerSpec {
  unsigned layer = 0;
  unsigned kvHeads = 1;
  unsigned headDim = 128;
  unsigned residual = 128;
};

struct SelectionOptions {
  double budget = 4.0; ///< average bits per element, metadata included
  Granularity granularity = Granularity::Layer;
  CandidateOptions candidates;
  double scale = 0.0;   ///< softmax scale; 0 = 1/sqrt(head_dim)
  unsigned threads = 0; ///< 0 = hardware concurrency
  SolveOptions solver;
  /// Token budgets: the context length (tokens) they are planned for;
  /// 0 = no eviction candidates. Needs statistics.
  size_t context = 0;
  /// Budget candidates as fractions of `context` (1: keep every token).
  std::vector<double> evictFractions = defaultEvictFractions();
};

/// How a slot's loss is predicted.
enum class ModelKind {
  Calibrated,     ///< alpha * E, alpha from measured dloss
  AttentionError, ///< E (stats without calibration entries)
  Analytic,       ///< the analytic proxy (no stats)
};
const char *modelKindName(ModelKind kind);

/// The choice made for one slot.
struct SlotChoice {
  unsigned layer = 0;
  int head = -1; ///< KV head, or -1 for the whole layer
  Side side = Side::Key;
  unsigned heads = 1; ///< KV heads the slot covers
  unsigned headDim = 0;
  Candidate candidate;
  double bits = 0.0;          ///< per element, metadata included
  double bytesPerToken = 0.0; ///< bits * heads * head_dim / 8
  double error = 0.0;         ///< E of this slot (or the analytic proxy)
  double predictedLoss = 0.0; ///< alpha * its share of the layer's E
  /// The layer's token budget, if it evicts (with per-head budgets, those
  /// of every head: forHead(head) is this slot's); bytesPerToken is then
  /// averaged over the context (bits * heads * head_dim / 8 * keepFraction).
  std::optional<numerics::EvictPolicy> evict;
  double keepFraction = 1.0; ///< the share of the context this slot keeps
};

/// The token budget chosen for one layer (context > 0 only). With
/// granularity=head every KV head chooses its own: when they differ, the
/// policy has head budgets (a head that keeps every token keeps `context`)
/// and its budget is their maximum.
struct LayerEviction {
  unsigned layer = 0;
  std::optional<numerics::EvictPolicy> policy; ///< none: every token kept
  numerics::EvictPolicy calibration; ///< the policy measured (if any)
  double keepFraction = 1.0;  ///< averaged over the KV heads
  double error = 0.0;         ///< E of eviction alone (fp16 kept tokens)
  double predictedLoss = 0.0; ///< alpha_key * error
};

/// Loss sensitivity of one layer side.
struct SideAlpha {
  unsigned layer = 0;
  Side side = Side::Key;
  double alpha = 1.0;
  Candidate reference; ///< calibration encoding (calibrated only)
  double referenceError = 0.0;
  double dloss = 0.0;
};

struct SelectionResult {
  std::vector<SlotChoice> slots;
  std::vector<LayerEviction> evictions; ///< per layer, when context > 0
  size_t context = 0;
  std::vector<double> evictFractions; ///< considered (context > 0)
  std::vector<std::string> skippedBudgets; ///< budgets not possible, why
  std::vector<SideAlpha> alphas; ///< calibrated model only
  ModelKind model = ModelKind::Analytic;
  std::string statsPath;
  std::string note; ///< why the model is not calibrated, if it is not
  Granularity granularity = Granularity::Layer;
  double budget = 0.0;
  double averageBits = 0.0;
  double totalPredictedLoss = 0.0;
  double lowerBound = 0.0;
  std::string solverMethod;
  bool exact = false;
  size_t candidatesEvaluated = 0;
  unsigned threads = 1;
  double errorSeconds = 0.0, solveSeconds = 0.0;
  double bytesPerToken = 0.0, fp16BytesPerToken = 0.0;
};

/// Selects encodings for `layers`. With `stats` (not null) errors are
/// measured on its layers, which must cover every layer with the same KV
/// heads and head_dim; without, the analytic proxy is used. Errors: a layer
/// missing from the stats, shape mismatches, invalid calibration encodings,
/// an infeasible budget, context > 0 without stats, bad evict fractions.
llvm::Expected<SelectionResult>
selectBitwidths(const std::vector<LayerSpec> &layers,
                const CalibrationStats *stats,
                const SelectionOptions &options);

/// The report as a table, and as JSON.
void printReport(const SelectionResult &result, llvm::raw_ostream &os);
llvm::json::Value reportToJSON(const SelectionResult &result);

} // namespace cost
} // namespace kvc

#endif // KVC_COSTMODEL_SELECTION_H
