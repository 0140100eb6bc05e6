//===- BenchVariant.h - The benchmark's variants, from its manifest -------===//
//
// attention_bench.cpp's rows: a manifest line of bench_variants.py
// (attention_variants.py's format) parsed into a Variant, the numerics
// library's form of its side encodings, and the name for its
// encoding.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_BENCHMARKS_GPU_BENCHVARIANT_H
#define KVC_BENCHMARKS_GPU_BENCHVARIANT_H

#include "CheckSupport.h"

#include "kvc/Numerics/Encoding.h"

#include <sstream>
#include <string>

namespace kvc::gpucheck {

struct Variant : PipelineFields {
  std::string name, keySpec, valueSpec;
  uint32_t batch = 0, queryHeads = 0, kvHeads = 0, headDim = 0;
  kvc_rt_encoding encoding{};
  uint32_t residual = 0, pageTokens = 0, splitTokens = 0;
};

/// A manifest line (attention_variants.py's format, one encoding for all
/// heads, no window or softcap, key_product, value_product, l2_prefetch,
/// key_stages, value_stages and combine allowed); an
/// error message on failure.
inline std::string parseVariant(const std::string &line, Variant &v) {
  std::istringstream in(line);
  if (!(in >> v.name >> v.batch >> v.queryHeads >> v.kvHeads >> v.headDim >>
        v.keySpec >> v.valueSpec >> v.residual >> v.pageTokens >>
        v.splitTokens))
    return "expected: name B Hq Hkv D key value residual page_tokens split";
  for (std::string extra; in >> extra;)
    if (!pipelineField(extra, v))
      return "the benchmark takes no extra field but key_product, "
             "value_product, l2_prefetch, key_stages, value_stages and "
             "combine ('" +
             extra + "')";
  if (!v.batch || !v.kvHeads || !v.headDim || !v.pageTokens || !v.queryHeads ||
      v.queryHeads % v.kvHeads)
    return "bad shape (B, Hq a positive multiple of Hkv, D, page_tokens)";
  if (!parseSide(v.keySpec, v.encoding.key) ||
      !parseSide(v.valueSpec, v.encoding.value))
    return "bad side spec '" + v.keySpec + "' / '" + v.valueSpec + "'";
  v.encoding.residual = v.residual;
  return "";
}

/// The numerics library's form of a runtime side encoding.
inline kvc::numerics::SideEncoding toNumerics(const kvc_rt_side_encoding &side) {
  if (side.kind == KVC_RT_SIDE_FP16)
    return kvc::numerics::SideEncoding::plain();
  if (side.kind == KVC_RT_SIDE_FP8)
    return kvc::numerics::SideEncoding::fp8Format(side.fp8_format == KVC_RT_FP8_E4M3
                                            ? kvc::numerics::FP8Format::E4M3
                                            : kvc::numerics::FP8Format::E5M2);
  return kvc::numerics::SideEncoding::quantized(side.bits,
                                      side.axis == KVC_RT_AXIS_CHANNEL
                                          ? kvc::numerics::QuantAxis::Channel
                                          : kvc::numerics::QuantAxis::Token,
                                      side.group);
}

/// "fp16", "K2/V2 g32", "K4/V2 g32", "K4 g128/V2 g32": the names.
inline std::string encodingLabel(const kvc_rt_encoding &e) {
  auto bits = [](const kvc_rt_side_encoding &s) -> std::string {
    if (s.kind == KVC_RT_SIDE_FP16)
      return "16";
    if (s.kind == KVC_RT_SIDE_FP8)
      return s.fp8_format == KVC_RT_FP8_E4M3 ? "e4m3" : "e5m2";
    return std::to_string(s.bits);
  };
  if (e.key.kind == KVC_RT_SIDE_FP16 && e.value.kind == KVC_RT_SIDE_FP16)
    return "fp16";
  auto group = [](uint32_t g) {
    return g ? " g" + std::to_string(g) : std::string();
  };
  const std::string k = "K" + bits(e.key), v = "V" + bits(e.value);
  if (e.key.group == e.value.group)
    return k + "/" + v + group(e.key.group);
  return k + group(e.key.group) + "/" + v + group(e.value.group);
}

} // namespace kvc::gpucheck

#endif // KVC_BENCHMARKS_GPU_BENCHVARIANT_H
