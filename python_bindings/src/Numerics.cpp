//===- Numerics.cpp - kvc._kvc: the numerics library on numpy arrays ------===//
//
// quantize / dequantize / round_trip / simulate_cache_side over the last two
// axes ([..., tokens, channels]) of float32 arrays, with the encodings of the
// spec language (`q2:channel:g32`, `fp8:e4m3`, `fp16`). Everything calls the
// one numerics library, so Python sees the bytes compiled code sees.
//
//===----------------------------------------------------------------------===//

#include "Bindings.h"

#include "kvc/CostModel/Candidates.h"
#include "kvc/Numerics/Cache.h"
#include "kvc/Numerics/Encoding.h"
#include "kvc/Numerics/Prune.h"
#include "kvc/Numerics/Quantize.h"
#include "kvc/Numerics/Rotation.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

namespace py = pybind11;
namespace num = ::kvc::numerics;
namespace cost = ::kvc::cost;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

/// [..., T, D] -> (batch, T, D), with the shape checked.
struct Matrices {
  size_t batch = 1, tokens = 0, channels = 0;
  std::vector<py::ssize_t> shape;
};

Matrices matricesOf(const py::array &x) {
  if (x.ndim() < 2)
    throw py::value_error("expected an array of at least 2 dimensions "
                          "[..., tokens, channels], got " +
                          std::to_string(x.ndim()));
  Matrices m;
  m.shape.assign(x.shape(), x.shape() + x.ndim());
  m.tokens = size_t(x.shape(x.ndim() - 2));
  m.channels = size_t(x.shape(x.ndim() - 1));
  for (py::ssize_t i = 0; i + 2 < x.ndim(); ++i)
    m.batch *= size_t(x.shape(i));
  return m;
}

void checkShape(const num::SideEncoding &side, const Matrices &m) {
  if (side.isQuant()) {
    std::string problem =
        num::validateQuantShape(side.quant, m.tokens, m.channels);
    if (!problem.empty())
      throw py::value_error(problem);
  }
}

/// quantize(x, spec) -> dict(codes=uint8 [..., bytes], scales/zeros=float16
/// [..., groups]) for quant; codes=[..., T, D] uint8 and scales=[..., T]
/// float16 for fp8; the fp16 array itself for fp16.
py::dict quantize(const FloatArray &x, const std::string &spec) {
  num::SideEncoding side = kvc::python::parseSide(spec);
  Matrices m = matricesOf(x);
  checkShape(side, m);
  py::dict result;
  std::vector<py::ssize_t> lead(m.shape.begin(), m.shape.end() - 2);
  auto with = [&](std::vector<py::ssize_t> tail) {
    std::vector<py::ssize_t> s = lead;
    s.insert(s.end(), tail.begin(), tail.end());
    return s;
  };
  const float *in = x.data();
  size_t matrix = m.tokens * m.channels;
  if (side.isQuant()) {
    size_t codeBytes = num::quantCodesBytes(side.quant, m.tokens, m.channels);
    size_t groups = num::quantNumGroups(side.quant, m.tokens, m.channels);
    py::array_t<uint8_t> codes(with({py::ssize_t(codeBytes)}));
    py::array_t<uint16_t> scales(with({py::ssize_t(groups)}));
    py::array_t<uint16_t> zeros(with({py::ssize_t(groups)}));
    {
      py::gil_scoped_release release;
      for (size_t b = 0; b < m.batch; ++b)
        num::quantizeMatrix(in + b * matrix, m.tokens, m.channels, side.quant,
                            codes.mutable_data() + b * codeBytes,
                            scales.mutable_data() + b * groups,
                            zeros.mutable_data() + b * groups);
    }
    result["codes"] = codes;
    result["scales"] = scales.attr("view")("float16");
    result["zeros"] = zeros.attr("view")("float16");
  } else if (side.isFP8()) {
    py::array_t<uint8_t> codes(with({py::ssize_t(m.tokens),
                                     py::ssize_t(m.channels)}));
    py::array_t<uint16_t> scales(with({py::ssize_t(m.tokens)}));
    {
      py::gil_scoped_release release;
      for (size_t b = 0; b < m.batch; ++b)
        num::quantizeFP8Matrix(in + b * matrix, m.tokens, m.channels, side.fp8,
                               codes.mutable_data() + b * matrix,
                               scales.mutable_data() + b * m.tokens);
    }
    result["codes"] = codes;
    result["scales"] = scales.attr("view")("float16");
  } else {
    result["values"] = x.attr("astype")("float16");
  }
  result["encoding"] = side.toString();
  return result;
}

/// The inverse of quantize: float32 [..., T, D].
FloatArray dequantize(const py::dict &q, const std::string &spec,
                      size_t tokens, size_t channels) {
  num::SideEncoding side = kvc::python::parseSide(spec);
  if (side.isPlain())
    return FloatArray(q["values"].attr("astype")("float32"));
  using U8 = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;
  using U16 = py::array_t<uint16_t, py::array::c_style | py::array::forcecast>;
  U8 codes(q["codes"]);
  U16 scales(q["scales"].attr("view")("uint16"));
  Matrices m;
  m.tokens = tokens;
  m.channels = channels;
  checkShape(side, m);
  size_t matrix = tokens * channels;
  // Everything before the per-matrix axes of `codes` is the batch.
  py::ssize_t codeAxes = side.isQuant() ? 1 : 2;
  if (codes.ndim() < codeAxes)
    throw py::value_error("codes have too few dimensions");
  std::vector<py::ssize_t> shape(codes.shape(),
                                 codes.shape() + codes.ndim() - codeAxes);
  for (py::ssize_t d : shape)
    m.batch *= size_t(d);
  shape.push_back(py::ssize_t(tokens));
  shape.push_back(py::ssize_t(channels));
  FloatArray out(shape);
  if (side.isQuant()) {
    U16 zeros(q["zeros"].attr("view")("uint16"));
    size_t codeBytes = num::quantCodesBytes(side.quant, tokens, channels);
    size_t groups = num::quantNumGroups(side.quant, tokens, channels);
    if (size_t(codes.size()) != m.batch * codeBytes ||
        size_t(scales.size()) != m.batch * groups ||
        size_t(zeros.size()) != m.batch * groups)
      throw py::value_error("codes/scales/zeros sizes do not match " +
                            side.toString() + " for [" +
                            std::to_string(tokens) + ", " +
                            std::to_string(channels) + "] matrices");
    py::gil_scoped_release release;
    for (size_t b = 0; b < m.batch; ++b)
      num::dequantizeMatrix(codes.data() + b * codeBytes,
                            scales.data() + b * groups,
                            zeros.data() + b * groups, tokens, channels,
                            side.quant, out.mutable_data() + b * matrix);
  } else {
    if (size_t(codes.size()) != m.batch * matrix ||
        size_t(scales.size()) != m.batch * tokens)
      throw py::value_error("codes/scales sizes do not match fp8 [" +
                            std::to_string(tokens) + ", " +
                            std::to_string(channels) + "] matrices");
    py::gil_scoped_release release;
    for (size_t b = 0; b < m.batch; ++b)
      num::dequantizeFP8Matrix(codes.data() + b * matrix,
                               scales.data() + b * tokens, tokens, channels,
                               side.fp8, out.mutable_data() + b * matrix);
  }
  return out;
}

/// Compress and decompress every [T, D] matrix (what a reader of the
/// compressed cache sees); fp16 rounds.
FloatArray roundTrip(const FloatArray &x, const std::string &spec) {
  num::SideEncoding side = kvc::python::parseSide(spec);
  Matrices m = matricesOf(x);
  checkShape(side, m);
  FloatArray out(m.shape);
  size_t matrix = m.tokens * m.channels;
  const float *in = x.data();
  float *o = out.mutable_data();
  py::gil_scoped_release release;
  for (size_t b = 0; b < m.batch; ++b)
    num::compressRoundTrip(in + b * matrix, m.tokens, m.channels, side,
                           o + b * matrix);
  return out;
}

/// One side of a cache holding all T tokens of each [T, D] matrix: the first
/// floor(T / R) * R compressed, the rest the fp16 residual.
FloatArray simulateCacheSide(const FloatArray &x, const std::string &spec,
                             unsigned residual) {
  num::SideEncoding side = kvc::python::parseSide(spec);
  Matrices m = matricesOf(x);
  std::string problem = num::validateSideEncoding(side, m.channels, residual);
  if (!problem.empty())
    throw py::value_error(problem);
  FloatArray out(m.shape);
  size_t matrix = m.tokens * m.channels;
  const float *in = x.data();
  float *o = out.mutable_data();
  py::gil_scoped_release release;
  for (size_t b = 0; b < m.batch; ++b) {
    std::vector<float> s = num::simulateCacheSide(in + b * matrix, m.tokens,
                                                  m.channels, side, residual);
    std::copy(s.begin(), s.end(), o + b * matrix);
  }
  return out;
}

/// x · H over the last axis (kvc-rotate-keys' rotation), as a new array.
FloatArray hadamardRotate(const FloatArray &x) {
  if (x.ndim() < 1)
    throw py::value_error("expected an array with a last axis to rotate");
  size_t d = size_t(x.shape(x.ndim() - 1));
  if (!num::isHadamardOrder(d))
    throw py::value_error("the last axis (" + std::to_string(d) +
                          ") is not a power of two");
  FloatArray out(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  std::copy(x.data(), x.data() + x.size(), out.mutable_data());
  py::gil_scoped_release release;
  num::hadamardRotate(out.mutable_data(), size_t(x.size()) / d, d);
  return out;
}

/// Key channel pruning (#kvc.prune): keep the `keep` channels of x [T, D]
/// that matter most to `queries` [N, D], round-trip them with `spec`, zero
/// the rest.
FloatArray pruneRoundTrip(const FloatArray &x, const FloatArray &queries,
                          unsigned keep, const std::string &spec) {
  num::SideEncoding side = kvc::python::parseSide(spec);
  if (x.ndim() != 2 || queries.ndim() != 2 ||
      queries.shape(1) != x.shape(1))
    throw py::value_error("expected x [tokens, head_dim] and queries "
                          "[n, head_dim]");
  size_t tokens = size_t(x.shape(0)), dim = size_t(x.shape(1));
  std::string problem = num::validatePrune(keep, dim, side, 0);
  if (!problem.empty())
    throw py::value_error(problem);
  Matrices m;
  m.tokens = tokens;
  m.channels = keep;
  checkShape(side, m);
  FloatArray out({py::ssize_t(tokens), py::ssize_t(dim)});
  py::gil_scoped_release release;
  std::vector<unsigned> kept = num::selectKeyChannels(
      queries.data(), size_t(queries.shape(0)), x.data(), tokens, dim, keep);
  std::vector<float> y = num::pruneRoundTrip(x.data(), tokens, dim, kept, side);
  std::copy(y.begin(), y.end(), out.mutable_data());
  return out;
}

/// Bits per element a side's encoding stores, metadata included: the cost
/// model's definition (`prune<N>+` specs allowed).
double bitsPerElement(const std::string &spec, unsigned headDim) {
  llvm::Expected<cost::Candidate> candidate = cost::parseCandidate(spec);
  if (!candidate)
    throw py::value_error(llvm::toString(candidate.takeError()));
  return candidate->bitsPerElement(headDim);
}

} // namespace

namespace kvc::python {
void bindNumerics(py::module_ &m) {
  m.def("quantize", &quantize, py::arg("x"), py::arg("encoding"),
        "Compress float32 [..., tokens, channels] with a side encoding "
        "('q2:channel:g32', 'fp8:e4m3', 'fp16'); returns a dict of codes and "
        "fp16 scales/zeros in the numerics library's matrix form.");
  m.def("dequantize", &dequantize, py::arg("q"), py::arg("encoding"),
        py::arg("tokens"), py::arg("channels"),
        "The inverse of quantize: float32 [..., tokens, channels].");
  m.def("round_trip", &roundTrip, py::arg("x"), py::arg("encoding"),
        "dequantize(quantize(x)) in one call.");
  m.def("simulate_cache_side", &simulateCacheSide, py::arg("x"),
        py::arg("encoding"), py::arg("residual"),
        "What a cache holding all tokens of x reads back: the first "
        "floor(T/R)*R tokens compressed, the rest fp16.");
  m.def("hadamard_rotate", &hadamardRotate, py::arg("x"),
        "x @ H over the last axis, H the orthonormal Sylvester-Hadamard "
        "matrix (symmetric, H @ H = I): the rotation kvc-rotate-keys applies "
        "to keys and queries.");
  m.def("prune_round_trip", &pruneRoundTrip, py::arg("x"), py::arg("queries"),
        py::arg("keep"), py::arg("encoding"),
        "Key channel pruning: the `keep` channels of x [T, D] most important "
        "to `queries` [N, D] (||Q[:,c]|| * ||K[:,c]||), round-tripped with "
        "the encoding; the others read as zero.");
  m.def("bits_per_element", &bitsPerElement, py::arg("encoding"),
        py::arg("head_dim"),
        "Stored bits per element, scales and zeros included.");
  m.def("canonical_encoding",
        [](const std::string &spec) { return parseSide(spec).toString(); },
        py::arg("encoding"),
        "The numerics library's name of a side encoding, e.g. "
        "'quant<bits=2, axis=channel, group=32>'.");
}
} // namespace kvc::python
