//===- Candidates.h - Candidate side encodings and their cost ---*- C++ -*-===//
//
// A candidate is what one slot (a layer's or a head's keys or values) may be
// stored as: an element encoding (fp16, group quantization, fp8), optionally
// after key channel pruning. Its cost is in bits per element of the slot,
// metadata included:
//   fp16                16
//   q<b>, group G       b + 32/G      (fp16 scale and zero per group)
//   fp8                 8 + 16/D      (one fp16 scale per token of D values)
//   prune keep N + e    (N/D) * cost(e at dimension N)  (the kept channel
//                       indices are per head, not per token: 0 per element)
//
//===----------------------------------------------------------------------===//

#ifndef KVC_COSTMODEL_CANDIDATES_H
#define KVC_COSTMODEL_CANDIDATES_H

#include "kvc/Numerics/Encoding.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace kvc {
namespace cost {

enum class Side { Key, Value };
/// "key" / "value".
const char *sideName(Side side);

/// One way to store a slot.
struct Candidate {
  numerics::SideEncoding element;
  unsigned pruneKeep = 0; ///< key channels kept; 0 = no pruning

  bool isPruned() const { return pruneKeep != 0; }
  /// Dimension the element encoding sees: pruneKeep or headDim.
  unsigned encodedDim(unsigned headDim) const {
    return isPruned() ? pruneKeep : headDim;
  }
  /// Bits per element of the slot, metadata included (file comment).
  double bitsPerElement(unsigned headDim) const;
  /// The spec language: "fp16", "q2:channel:g32", "fp8:e4m3", with a
  /// "prune<N>+" prefix when pruned.
  std::string toString() const;

  bool operator==(const Candidate &o) const {
    return element == o.element && pruneKeep == o.pruneKeep;
  }
};

/// Parses the spec language of Candidate::toString (the side specs of
/// kvc-decouple-compression plus the prune prefix).
llvm::Expected<Candidate> parseCandidate(llvm::StringRef text);

/// "" if `c` is valid for `side` at head_dim D under residual R.
std::string validateCandidate(const Candidate &c, Side side, unsigned headDim,
                              unsigned residual);

/// Which candidates to consider.
struct CandidateOptions {
  std::vector<unsigned> bits = {2, 3, 4, 8};
  std::vector<unsigned> groups = {32, 64, 128};
  bool channelAxis = true;
  bool tokenAxis = true;
  bool fp16 = true;
  bool fp8 = true;
  /// Key channel pruning (keep 3D/4 and D/2, with fp16 or channel-axis
  /// quantized elements, groups of 32). Off by default: the CPU lowering
  /// does not implement reductions yet.
  bool prune = false;
  /// Tokens per runtime page: channel-axis groups must divide it (the page
  /// layout stores whole groups). 0: no page constraint.
  unsigned pageTokens = 64;
};

/// Every valid candidate of `side` for head_dim D, residual R and the page
/// size, in a fixed order (fp16 first).
std::vector<Candidate> enumerateCandidates(Side side, unsigned headDim,
                                           unsigned residual,
                                           const CandidateOptions &options);

} // namespace cost
} // namespace kvc

#endif // KVC_COSTMODEL_CANDIDATES_H
