//===- Stats.h - Calibration statistics for the cost model ------*- C++ -*-===//
//
// A calibration statistics file is a safetensors file holding, per layer L,
// the post-RoPE attention inputs of T calibration tokens:
//   layer{L}.q [Hq, T, D], layer{L}.k [Hkv, T, D], layer{L}.v [Hkv, T, D]
// (F16, BF16 or F32), and optional `__metadata__` strings:
//   kvc.stats.version = "1"
//   kvc.stats.score_from = first query position scored (default 256)
//   kvc.calib.layer{L}.{key,value}.encoding = a side spec ("q2:channel:g32")
//   kvc.calib.layer{L}.{key,value}.dloss = the model's loss increase
//       (bits/byte) when only that layer's keys (values) use that encoding.
// docs/cost-model.md is the normative description.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_COSTMODEL_STATS_H
#define KVC_COSTMODEL_STATS_H

#include "kvc/CostModel/Candidates.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kvc {
namespace cost {

/// Version of the statistics format described above.
constexpr unsigned kStatsVersion = 1;
/// Default first scored query position: earlier queries see too few keys.
constexpr size_t kDefaultScoreFrom = 256;

/// A measured loss increase for one side of one layer.
struct SideCalibration {
  Candidate encoding; ///< the encoding the loss was measured with
  double dloss = 0.0; ///< loss increase (bits/byte), >= 0
};

/// The calibration data of one layer.
struct LayerStats {
  unsigned layer = 0;
  size_t numQueryHeads = 0, numKVHeads = 0, numTokens = 0, headDim = 0;
  std::vector<float> queries; ///< [Hq][T][D]
  std::vector<float> keys;    ///< [Hkv][T][D]
  std::vector<float> values;  ///< [Hkv][T][D]
  std::optional<SideCalibration> keyCalibration, valueCalibration;

  const std::optional<SideCalibration> &calibration(Side side) const {
    return side == Side::Key ? keyCalibration : valueCalibration;
  }
};

/// A loaded statistics file.
struct CalibrationStats {
  std::string path;
  unsigned version = kStatsVersion;
  size_t scoreFrom = kDefaultScoreFrom;
  std::map<unsigned, LayerStats> layers;

  /// The layer's statistics, or null.
  const LayerStats *find(unsigned layer) const;
  /// True if every layer has key and value calibration entries.
  bool isFullyCalibrated() const;
};

/// Reads and validates a statistics file. Errors name the file and the
/// problem (missing or misshapen tensors, bad metadata values, ...).
llvm::Expected<CalibrationStats> loadStats(llvm::StringRef path);

} // namespace cost
} // namespace kvc

#endif // KVC_COSTMODEL_STATS_H
