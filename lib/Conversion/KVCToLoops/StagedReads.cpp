//===- StagedReads.cpp - PageReader's reads of copies in shared memory ----===//
//
// The GPU split kernel's stages (kvc-lower-to-gpu key-stages and
// value-stages): which bytes of a block a stage copies, in 16-byte
// segments, and the reads of the copy, which are the pages' reads
// (HalfPairs.cpp) from other addresses.
//
//===----------------------------------------------------------------------===//

#include "IndexOps.h"
#include "PageReader.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::kvc;

int64_t PageReader::tokenRowsBytes(int64_t tokens, int64_t headDim,
                                   unsigned bits, unsigned group) {
  return tokens * (headDim * bits / 8 + headDim / group * 4);
}

int64_t PageReader::tokenRowsBytes(int64_t tokens) const {
  return tokenRowsBytes(tokens, headDim, side.quant.bits, side.quant.group);
}

Value PageReader::tokenRowsSegment(OpBuilder &b, Location loc, Value blockBase,
                                   Value firstSlot, int64_t tokens,
                                   Value segment) const {
  IndexOps x{b, loc};
  auto [rowBase, pairRow] = tokenAxisRows(b, loc, blockBase, firstSlot);
  const int64_t codeBytes = tokens * int64_t(headDim) * side.quant.bits / 8;
  // The rows' codes lie together, and so do their (scale, zero) pairs.
  Value byte = x.mul(segment, 16);
  Value isCode = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, byte,
                                       indexConst(b, loc, codeBytes));
  return arith::SelectOp::create(b, loc, isCode, x.add(rowBase, byte),
                                 x.add(pairRow, x.add(byte, -codeBytes)));
}

HalfPairTerms PageReader::stagedHalfPairColumnTerms(
    OpBuilder &b, Location loc, const ByteViews &stage, Value stageBase,
    int64_t tokens, Value firstRow, Value secondRow, ChannelSpan span,
    bool dequantize) const {
  IndexOps x{b, loc};
  const int64_t rowBytes = int64_t(headDim) * side.quant.bits / 8;
  const int64_t pairBytes = int64_t(headDim) / side.quant.group * 4;
  // tokenRowsSegment's order: the rows' codes, then their pairs.
  auto words = [&](Value row) {
    return halfPairWordsAt(
        b, loc, stage, x.add(stageBase, x.mul(row, rowBytes)),
        x.add(x.add(stageBase, tokens * rowBytes), x.mul(row, pairBytes)),
        span);
  };
  HalfPairWords first = words(firstRow);
  HalfPairWords second = words(secondRow);
  return halfPairColumnTermsOf(b, loc, first, second, span, dequantize);
}

int64_t PageReader::tokenPairUnitCodeBytes() const {
  return 4 * int64_t(headDim) * side.quant.bits;
}

int64_t PageReader::tokenPairUnitBytes(int64_t headDim, unsigned bits) {
  return 4 * headDim * (bits + 1);
}

int64_t PageReader::tokenPairUnitBytes() const {
  return tokenPairUnitBytes(headDim, side.quant.bits);
}

Value PageReader::tokenPairUnitSegment(OpBuilder &b, Location loc,
                                       Value blockBase, Value unitSlot,
                                       Value segment, bool code) const {
  const unsigned bits = side.quant.bits;
  const int64_t group = side.quant.group, groupBytes = group * bits / 8;
  const int64_t pairBytes = 8 * bits;
  IndexOps x{b, loc};
  Value groupRow = x.mul(x.div(unitSlot, group), headDim);
  Value byte = x.mul(segment, 16);
  // The group row's (scale, zero) of every channel lie together.
  if (!code)
    return x.add(
        x.add(blockBase, x.mul(groupRow, 4)),
        x.add(byte, int64_t(layout.paramsOffset) - tokenPairUnitCodeBytes()));
  // A channel pair's 8b code bytes of the unit (compressedTokenPairTerms'
  // addresses), pair after pair.
  return x.add(x.add(x.add(blockBase, x.mul(groupRow, groupBytes)),
                     x.mul(x.div(x.rem(unitSlot, group), 32), pairBytes)),
               x.add(x.mul(x.div(byte, pairBytes), 2 * groupBytes),
                     x.rem(byte, pairBytes)));
}

TokenPairTerms PageReader::stagedTokenPairTerms(OpBuilder &b, Location loc,
                                                const ByteViews &stage,
                                                Value stageBase, Value lane,
                                                ChannelSpan span,
                                                bool subnormal) const {
  const int64_t pairBytes = 8 * side.quant.bits;
  IndexOps x{b, loc};
  // tokenPairUnitSegment's order: channel pair p's codes at p * 8b, the
  // (scale, zero) of channel c at 4 * D * b + 4c.
  Value codes = x.add(stageBase, x.mul(x.div(span.first, 2), pairBytes));
  Value params =
      x.add(x.add(stageBase, tokenPairUnitCodeBytes()), x.mul(span.first, 4));
  return tokenPairTermsAt(b, loc, stage, codes, pairBytes, params, lane, span,
                          subnormal);
}
