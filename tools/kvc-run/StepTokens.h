//===- StepTokens.h - kvc-run: each decode step's tokens -------*- C++ -*-===//
//
// Where a decode step's query and new key and value rows come from: fresh
// random ones (the default), or the real q, k, v of a model layer recorded
// in a safetensors file (--qkv), so that the compiled kernels are checked on
// the distributions they will see: outlier key channels, peaked softmaxes.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_TOOLS_KVC_RUN_STEPTOKENS_H
#define KVC_TOOLS_KVC_RUN_STEPTOKENS_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kvc::run {

/// The step's tensor shapes: q [batch][queryHeads][headDim], k and v
/// [batch][kvHeads][headDim].
struct StepTokenShape {
  int64_t batch, queryHeads, kvHeads, headDim;
};

class StepTokens {
public:
  virtual ~StepTokens() = default;

  /// Normal(0, 1) queries and values; keys too, but every 16th channel 8x
  /// larger, as real keys have a few outlier channels.
  static std::unique_ptr<StepTokens> random(const StepTokenShape &shape,
                                            unsigned seed);

  /// `<prefix>q` [queryHeads][T][headDim], `<prefix>k` and `<prefix>v`
  /// [kvHeads][T][headDim] of `path` (F16, BF16 or F32), e.g. the tiny-lm's
  /// post-RoPE rows with prefix "layer3.". Batch entry b takes tokens
  /// [b * T / batch, (b + 1) * T / batch) in order, so `steps` may be at
  /// most T / batch. A missing tensor, a shape that does not match the step,
  /// or too few tokens is an error naming the file.
  static llvm::Expected<std::unique_ptr<StepTokens>>
  recorded(llvm::StringRef path, llvm::StringRef prefix,
           const StepTokenShape &shape, unsigned steps);

  /// kvc-run's choice: recorded tokens from `qkvPath` (errors prefixed
  /// "--qkv: "), else random ones from `seed` (none or 0: a random seed).
  /// A prefix without a path, or a seed with one, is an error.
  static llvm::Expected<std::unique_ptr<StepTokens>>
  create(llvm::StringRef qkvPath, llvm::StringRef prefix,
         std::optional<unsigned> seed, const StepTokenShape &shape,
         unsigned steps);

  /// Fills step `step`'s q, k, v (row-major, as StepTokenShape says).
  virtual void fill(unsigned step, float *q, float *k, float *v) = 0;

  /// Where the tokens come from, for kvc-run's summary.
  virtual std::string describe() const = 0;
};

} // namespace kvc::run

#endif // KVC_TOOLS_KVC_RUN_STEPTOKENS_H
