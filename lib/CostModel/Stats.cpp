//===- Stats.cpp - Calibration statistics for the cost model --------------===//

#include "kvc/CostModel/Stats.h"

#include "kvc/Support/SafeTensors.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Regex.h"

#include <cmath>
#include <set>

namespace kvc {
namespace cost {

const LayerStats *CalibrationStats::find(unsigned layer) const {
  auto it = layers.find(layer);
  return it == layers.end() ? nullptr : &it->second;
}

bool CalibrationStats::isFullyCalibrated() const {
  for (const auto &entry : layers)
    if (!entry.second.keyCalibration || !entry.second.valueCalibration)
      return false;
  return !layers.empty();
}

namespace {
llvm::Error fileError(llvm::StringRef path, const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 (path + ": " + msg).str());
}

/// Reads one side's calibration entries of `layer` from the metadata.
llvm::Expected<std::optional<SideCalibration>>
readCalibration(llvm::StringRef path,
                const std::map<std::string, std::string> &meta,
                unsigned layer, Side side) {
  const std::string prefix = "kvc.calib.layer" + std::to_string(layer) + "." +
                             sideName(side) + ".";
  auto enc = meta.find(prefix + "encoding");
  auto dloss = meta.find(prefix + "dloss");
  if (enc == meta.end() && dloss == meta.end())
    return std::nullopt;
  if (enc == meta.end() || dloss == meta.end())
    return fileError(path, "metadata '" + prefix +
                               "encoding' and '" + prefix +
                               "dloss' must be given together");
  llvm::Expected<Candidate> candidate = parseCandidate(enc->second);
  if (!candidate)
    return fileError(path, "metadata '" + enc->first +
                               "': " + llvm::toString(candidate.takeError()));
  SideCalibration calib;
  calib.encoding = *candidate;
  if (!llvm::to_float(dloss->second, calib.dloss) ||
      !std::isfinite(calib.dloss) || calib.dloss < 0.0)
    return fileError(path, "metadata '" + dloss->first + "' = '" +
                               dloss->second +
                               "' is not a finite number >= 0 (calibrate "
                               "with a lossy encoding such as q2)");
  return calib;
}
} // namespace

llvm::Expected<CalibrationStats> loadStats(llvm::StringRef path) {
  llvm::Expected<SafeTensorsFile> file = SafeTensorsFile::open(path);
  if (!file)
    return file.takeError(); // already names the file
  CalibrationStats stats;
  stats.path = path.str();
  const auto &meta = file->metadata();

  if (auto it = meta.find("kvc.stats.version"); it != meta.end()) {
    if (it->second != std::to_string(kStatsVersion))
      return fileError(path, "unsupported kvc.stats.version '" + it->second +
                                 "' (this kvc reads version " +
                                 llvm::Twine(kStatsVersion) + ")");
  }
  if (auto it = meta.find("kvc.stats.score_from"); it != meta.end()) {
    unsigned long long v = 0;
    if (llvm::StringRef(it->second).trim().getAsInteger(10, v))
      return fileError(path, "kvc.stats.score_from = '" + it->second +
                                 "' is not a non-negative integer");
    stats.scoreFrom = v;
  }

  // Layers are the indices of layer{L}.{q,k,v} tensors.
  llvm::Regex tensorName("^layer([0-9]+)\\.(q|k|v)$");
  std::set<unsigned> layerIds;
  for (const SafeTensorInfo &info : file->tensors()) {
    llvm::SmallVector<llvm::StringRef> m;
    if (!tensorName.match(info.name, &m))
      continue;
    unsigned id = 0;
    if (m[1].getAsInteger(10, id))
      return fileError(path, "bad layer index in tensor '" + info.name + "'");
    layerIds.insert(id);
  }
  if (layerIds.empty())
    return fileError(path, "no layer{L}.q/k/v tensors: not a kvc "
                           "calibration statistics file");

  for (unsigned id : layerIds) {
    LayerStats layer;
    layer.layer = id;
    const std::string prefix = "layer" + std::to_string(id) + ".";
    const SafeTensorInfo *infos[3];
    const char *names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; ++i) {
      infos[i] = file->find(prefix + names[i]);
      if (!infos[i])
        return fileError(path, "layer " + llvm::Twine(id) + " has no tensor '" +
                                   prefix + names[i] + "'");
      if (infos[i]->shape.size() != 3)
        return fileError(path, "tensor '" + prefix + names[i] +
                                   "' must have rank 3 [heads, tokens, "
                                   "head_dim]");
    }
    const auto &qs = infos[0]->shape, &ks = infos[1]->shape,
               &vs = infos[2]->shape;
    if (ks != vs)
      return fileError(path, "layer " + llvm::Twine(id) +
                                 ": k and v shapes differ");
    if (qs[1] != ks[1] || qs[2] != ks[2])
      return fileError(path, "layer " + llvm::Twine(id) +
                                 ": q and k disagree on tokens or head_dim");
    if (ks[0] <= 0 || qs[0] <= 0 || qs[0] % ks[0] != 0)
      return fileError(path, "layer " + llvm::Twine(id) + ": query heads (" +
                                 llvm::Twine(qs[0]) +
                                 ") must be a positive multiple of kv heads (" +
                                 llvm::Twine(ks[0]) + ")");
    if (ks[1] <= 0 || ks[2] <= 0)
      return fileError(path, "layer " + llvm::Twine(id) +
                                 ": empty token or head_dim extent");
    layer.numQueryHeads = qs[0];
    layer.numKVHeads = ks[0];
    layer.numTokens = ks[1];
    layer.headDim = ks[2];
    std::vector<float> *dest[3] = {&layer.queries, &layer.keys,
                                   &layer.values};
    for (int i = 0; i < 3; ++i) {
      llvm::Expected<std::vector<float>> data =
          file->readFloats(prefix + names[i]);
      if (!data)
        return data.takeError();
      for (float x : *data)
        if (!std::isfinite(x))
          return fileError(path, "tensor '" + prefix + names[i] +
                                     "' holds NaN or Inf");
      *dest[i] = std::move(*data);
    }
    for (Side side : {Side::Key, Side::Value}) {
      auto calib = readCalibration(path, meta, id, side);
      if (!calib)
        return calib.takeError();
      (side == Side::Key ? layer.keyCalibration : layer.valueCalibration) =
          *calib;
    }
    if (stats.scoreFrom >= layer.numTokens)
      return fileError(path, "kvc.stats.score_from (" +
                                 llvm::Twine(stats.scoreFrom) +
                                 ") leaves no scored query in layer " +
                                 llvm::Twine(id) + " of " +
                                 llvm::Twine(layer.numTokens) + " tokens");
    stats.layers.emplace(id, std::move(layer));
  }
  return stats;
}

} // namespace cost
} // namespace kvc
