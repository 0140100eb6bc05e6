//===- Evict.cpp - kvc._kvc: token eviction semantics ---------------------===//
//
// select_kept_tokens applies an eviction policy to rows of per-token scores
// with the numerics library's selectKeptTokens (the one definition), so the
// accuracy harness evicts exactly what the runtime evicts.
//
//===----------------------------------------------------------------------===//

#include "Bindings.h"

#include "kvc/Numerics/Evict.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>

namespace py = pybind11;
namespace num = ::kvc::numerics;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using ByteArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

num::EvictPolicy parsePolicy(const std::string &spec) {
  num::EvictPolicy policy;
  std::string err = num::parseEvictPolicy(spec, policy);
  if (!err.empty())
    throw py::value_error("eviction spec '" + spec + "': " + err);
  return policy;
}

std::vector<py::ssize_t> shapeOf(const py::array &a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

/// keep [..., n] after applying the policy to each row.
py::array_t<uint8_t> selectKeptTokens(const std::string &spec,
                                      std::optional<FloatArray> scores,
                                      std::optional<ByteArray> keep,
                                      std::optional<size_t> numTokens) {
  num::EvictPolicy policy = parsePolicy(spec);
  bool needsScores = policy.kind != num::EvictKind::Streaming;
  if (needsScores && !scores)
    throw py::value_error("policy '" + spec +
                          "' ranks tokens by score: pass scores");
  std::vector<py::ssize_t> shape;
  if (scores)
    shape = shapeOf(*scores);
  else if (keep)
    shape = shapeOf(*keep);
  else if (numTokens)
    shape = {py::ssize_t(*numTokens)};
  else
    throw py::value_error("pass scores, keep or num_tokens");
  if (shape.empty())
    throw py::value_error("expected an array [..., tokens], got a scalar");
  if (scores && keep && shapeOf(*keep) != shape)
    throw py::value_error("keep and scores must have the same shape");
  if (numTokens && size_t(shape.back()) != *numTokens)
    throw py::value_error("num_tokens disagrees with the arrays' last axis");
  const size_t heads = policy.headBudgets.size();
  if (heads && (shape.size() < 2 || size_t(shape[shape.size() - 2]) != heads))
    throw py::value_error("policy '" + spec + "' has " +
                          std::to_string(heads) +
                          " per-head budgets: the arrays must be [..., " +
                          std::to_string(heads) + " kv_heads, tokens]");
  size_t n = size_t(shape.back());
  size_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i)
    rows *= size_t(shape[i]);
  py::array_t<uint8_t> out(shape);
  uint8_t *o = out.mutable_data();
  if (keep)
    std::copy(keep->data(), keep->data() + rows * n, o);
  else
    std::fill(o, o + rows * n, uint8_t(1));
  const float *s = scores ? scores->data() : nullptr;
  if (s)
    for (size_t i = 0; i < rows * n; ++i)
      if (std::isnan(s[i]))
        throw py::value_error("scores contain NaN");
  py::gil_scoped_release release;
  // Row r belongs to KV head r % heads when the budgets are per head.
  for (size_t r = 0; r < rows; ++r)
    num::selectKeptTokens(policy.forHead(heads ? r % heads : 0),
                          s ? s + r * n : nullptr, n, o + r * n);
  return out;
}

} // namespace

namespace kvc::python {
void bindEviction(py::module_ &m) {
  m.def("select_kept_tokens", &selectKeptTokens, py::arg("policy"),
        py::arg("scores") = std::nullopt, py::arg("keep") = std::nullopt,
        py::arg("num_tokens") = std::nullopt,
        "Apply an eviction policy ('streaming:sink=4:window=60', "
        "'h2o:sink=4:window=64:budget=256', 'snapkv:...') to each row of "
        "scores [..., tokens] (float32; None for streaming). keep (uint8, "
        "same shape) marks tokens evicted earlier with 0. Returns the uint8 "
        "keep mask after eviction: at most `budget` live tokens per row. "
        "With per-head budgets ('h2o:sink=4:window=64:heads=256,128') the "
        "arrays are [..., kv_heads, tokens] and each head keeps its own.");
  m.def("check_evict_policy",
        [](const std::string &spec) {
          return num::formatEvictPolicy(parsePolicy(spec));
        },
        py::arg("policy"),
        "The normalized spec of an eviction policy; ValueError when invalid.");
}
} // namespace kvc::python
