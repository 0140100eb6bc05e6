//===- Candidates.cpp - Candidate side encodings and their cost -----------===//

#include "kvc/CostModel/Candidates.h"

#include "kvc/Numerics/Layout.h"
#include "kvc/Numerics/Prune.h"

#include "llvm/ADT/StringExtras.h"

namespace kvc {
namespace cost {

using numerics::QuantAxis;
using numerics::SideEncoding;

const char *sideName(Side side) { return side == Side::Key ? "key" : "value"; }

/// Bits per element of an element encoding at dimension `dim`.
static double elementBits(const SideEncoding &e, unsigned dim) {
  switch (e.kind) {
  case SideEncoding::Kind::Plain:
    return 16.0;
  case SideEncoding::Kind::Quant:
    return e.quant.bits + 32.0 / e.quant.group;
  case SideEncoding::Kind::FP8:
    return 8.0 + 16.0 / dim;
  }
  return 16.0;
}

double Candidate::bitsPerElement(unsigned headDim) const {
  const unsigned dim = encodedDim(headDim);
  return elementBits(element, dim) * dim / headDim;
}

std::string Candidate::toString() const {
  std::string elem;
  switch (element.kind) {
  case SideEncoding::Kind::Plain:
    elem = "fp16";
    break;
  case SideEncoding::Kind::Quant:
    elem = "q" + std::to_string(element.quant.bits) + ":" +
           numerics::quantAxisName(element.quant.axis) + ":g" +
           std::to_string(element.quant.group);
    break;
  case SideEncoding::Kind::FP8:
    elem = std::string("fp8:") + numerics::fp8FormatName(element.fp8);
    break;
  }
  return isPruned() ? "prune" + std::to_string(pruneKeep) + "+" + elem : elem;
}

llvm::Expected<Candidate> parseCandidate(llvm::StringRef text) {
  auto bad = [&](const llvm::Twine &why) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "bad encoding '" + text + "': " + why);
  };
  Candidate c;
  llvm::StringRef rest = text.trim();
  if (rest.consume_front("prune")) {
    auto [keep, elem] = rest.split('+');
    if (elem.empty() || keep.getAsInteger(10, c.pruneKeep) || c.pruneKeep == 0)
      return bad("expected prune<N>+<encoding> with N > 0");
    rest = elem;
  }
  if (rest == "fp16")
    return c;
  llvm::SmallVector<llvm::StringRef> parts;
  rest.split(parts, ':');
  if (parts.size() == 2 && parts[0] == "fp8") {
    if (parts[1] == "e4m3")
      c.element = SideEncoding::fp8Format(numerics::FP8Format::E4M3);
    else if (parts[1] == "e5m2")
      c.element = SideEncoding::fp8Format(numerics::FP8Format::E5M2);
    else
      return bad("fp8 format must be e4m3 or e5m2");
    return c;
  }
  unsigned bits = 0, group = 0;
  if (parts.size() != 3 || !parts[0].consume_front("q") ||
      parts[0].getAsInteger(10, bits) || !parts[2].consume_front("g") ||
      parts[2].getAsInteger(10, group) ||
      (parts[1] != "channel" && parts[1] != "token"))
    return bad("expected fp16, fp8:<e4m3|e5m2> or "
               "q<bits>:<channel|token>:g<group>");
  c.element = SideEncoding::quantized(
      bits, parts[1] == "channel" ? QuantAxis::Channel : QuantAxis::Token,
      group);
  std::string problem = numerics::validateQuantSpec(c.element.quant);
  if (!problem.empty())
    return bad(problem);
  return c;
}

std::string validateCandidate(const Candidate &c, Side side, unsigned headDim,
                              unsigned residual) {
  if (!c.isPruned())
    return numerics::validateSideEncoding(c.element, headDim, residual);
  if (side != Side::Key)
    return "channel pruning applies to keys only";
  return numerics::validatePrune(c.pruneKeep, headDim, c.element, residual);
}

std::vector<Candidate> enumerateCandidates(Side side, unsigned headDim,
                                           unsigned residual,
                                           const CandidateOptions &options) {
  std::vector<Candidate> out;
  auto add = [&](Candidate c) {
    if (!validateCandidate(c, side, headDim, residual).empty())
      return;
    if (options.pageTokens &&
        !numerics::validatePageConfig(c.element, c.encodedDim(headDim),
                                      options.pageTokens)
             .empty())
      return;
    out.push_back(c);
  };
  if (options.fp16)
    add(Candidate{});
  std::vector<QuantAxis> axes;
  if (options.channelAxis)
    axes.push_back(QuantAxis::Channel);
  if (options.tokenAxis)
    axes.push_back(QuantAxis::Token);
  for (unsigned bits : options.bits)
    for (QuantAxis axis : axes)
      for (unsigned group : options.groups)
        add(Candidate{SideEncoding::quantized(bits, axis, group), 0});
  if (options.fp8) {
    add(Candidate{SideEncoding::fp8Format(numerics::FP8Format::E4M3), 0});
    add(Candidate{SideEncoding::fp8Format(numerics::FP8Format::E5M2), 0});
  }
  if (options.prune && side == Side::Key) {
    for (unsigned keep : {headDim * 3 / 4, headDim / 2}) {
      if (keep == 0 || keep == headDim)
        continue;
      add(Candidate{SideEncoding::plain(), keep});
      for (unsigned bits : options.bits)
        add(Candidate{SideEncoding::quantized(bits, QuantAxis::Channel, 32),
                      keep});
    }
  }
  return out;
}

} // namespace cost
} // namespace kvc
