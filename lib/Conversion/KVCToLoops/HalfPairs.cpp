//===- HalfPairs.cpp - dequantizing reads into fp16 pairs -----------------===//
//
// The tensor-core passes' reads (and the CPU loops' twins of them): codes
// ORed into the mantissas of an fp16 pair whose exponent makes their lowest
// bit the units digit (1024 for codes at bit 0), that power subtracted, one
// fma.rn.f16x2 with the group's scale and zero. Token-axis codes give two
// channels of one token (the value pass), channel-axis codes two tokens of
// one channel (the key pass, which takes them before the fma: it folds the
// scales and zeros into its products).
//
//===----------------------------------------------------------------------===//

#include "IndexOps.h"
#include "PageReader.h"

#include "kvc/Numerics/FoldedScales.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <cmath>

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

//===----------------------------------------------------------------------===//
// fp16-pair reads (the tensor-core value pass's, and the CPU loops' with
// value-reads=f16): two token-axis codes ORed into the mantissas of an
// fp16 pair, the pair's power of two subtracted, one fma with the group's
// scale and zero. The bit layout is unitCodes' (codes in order, 32 / b a
// word, code i at bit (i % (32 / b)) * b).
//===----------------------------------------------------------------------===//

/// `x` and `y` (LLVM-compatible vectors) shuffled into a pair: elements
/// `first` and `second` of their concatenation.
static Value pairOf(OpBuilder &b, Location loc, Value x, Value y, int64_t first,
                    int64_t second) {
  return LLVM::ShuffleVectorOp::create(
      b, loc, x, y, ArrayRef<int32_t>{int32_t(first), int32_t(second)});
}

Value PageReader::permuteBytes(OpBuilder &b, Location loc, Value low,
                               Value high, uint32_t selector) const {
  if (inlinePTX)
    return NVVM::PermuteOp::create(b, loc, b.getI32Type(), low, high,
                                   i32Const(b, loc, selector),
                                   NVVM::PermuteMode::DEFAULT);
  // Byte i of the result is byte (selector >> 4i) & 7 of high:low.
  auto bytes = VectorType::get({4}, b.getI8Type());
  SmallVector<int32_t> picks;
  for (int i = 0; i < 4; ++i)
    picks.push_back(int32_t(selector >> (4 * i) & 7));
  Value permuted = LLVM::ShuffleVectorOp::create(
      b, loc, LLVM::BitcastOp::create(b, loc, bytes, low),
      LLVM::BitcastOp::create(b, loc, bytes, high), picks);
  return LLVM::BitcastOp::create(b, loc, b.getI32Type(), permuted);
}

/// Whether the code pair at bit `position` of a word (and 16 bits above) is
/// read where it is: below bit 10, or any byte of 8-bit codes (a PRMT).
static bool readsInPlace(unsigned bits, unsigned position) {
  return bits == 8 ? position % 8 == 0 && position < 16
                   : position + bits <= 10;
}

/// The bit of its half that codePair moves the code at bit `position` to:
/// bit 0 for 8-bit codes (PRMT), else `position`.
static unsigned mantissaBit(unsigned bits, unsigned position) {
  return bits == 8 ? 0 : position;
}

double PageReader::foldedCodeWeight(unsigned bits, unsigned position) const {
  if (!foldsSubnormalCodes())
    return 1.0;
  return std::ldexp(1.0, int(mantissaBit(bits, position)) - 24);
}

Value PageReader::codePair(OpBuilder &b, Location loc, Value word,
                           unsigned bits, unsigned position,
                           bool subnormal) const {
  assert(readsInPlace(bits, position) && "the codes must lie in the mantissa");
  Value codes;
  if (bits == 8) {
    // Bytes position / 8 and position / 8 + 2 under the fp16 exponent
    // byte 0x64 (1024.0), or 0 (subnormal): one PRMT, which also takes the
    // place of a shift.
    const uint32_t byte = position / 8, exponentByte = 4;
    codes = permuteBytes(b, loc, word,
                         i32Const(b, loc, subnormal ? 0 : 0x64646464),
                         byte | exponentByte << 4 | (byte + 2) << 8 |
                             exponentByte << 12);
  } else {
    const int64_t mask = (((1 << bits) - 1) << position) * 0x00010001;
    // fp16 2^(10 - position): biased exponent 25 - position, mantissa 0.
    const int64_t magic = ((25 - position) << 10) * 0x00010001;
    if (subnormal) {
      codes = arith::AndIOp::create(b, loc, word, i32Const(b, loc, mask));
    } else if (inlinePTX) {
      // One lop3.b32 computing (a & b) | c (truth table 0xEA): with both
      // constants immediates ptxas issues the AND and the OR as two LOP3s.
      codes = LLVM::InlineAsmOp::create(
                  b, loc, b.getI32Type(),
                  ValueRange{word, i32Const(b, loc, mask),
                             i32Const(b, loc, magic)},
                  "lop3.b32 $0, $1, $2, $3, 0xEA;", "=r,r,n,n",
                  /*has_side_effects=*/false, /*is_align_stack=*/false,
                  LLVM::TailCallKind::None, LLVM::AsmDialectAttr(),
                  /*operand_attrs=*/ArrayAttr())
                  .getResult(0);
    } else {
      codes = arith::AndIOp::create(b, loc, word, i32Const(b, loc, mask));
      codes = arith::OrIOp::create(b, loc, codes, i32Const(b, loc, magic));
    }
  }
  auto pairType = VectorType::get({2}, b.getF16Type());
  Value pair = LLVM::BitcastOp::create(b, loc, pairType, codes);
  if (subnormal) // code * 2^(bit - 24) in each half, exact.
    return pair;
  // 2^(10 - bit) + code in each half; the power subtracted is exact.
  const double power = double(1 << (10 - mantissaBit(bits, position)));
  return arith::SubFOp::create(
      b, loc, pair,
      arith::ConstantOp::create(
          b, loc, pairType,
          DenseElementsAttr::get(pairType, b.getF16FloatAttr(power))));
}

bool PageReader::readsHalfPairs() const {
  return side.isQuant() && side.quant.axis == num::QuantAxis::Token &&
         (side.quant.bits == 2 || side.quant.bits == 4 || side.quant.bits == 8);
}

bool PageReader::foldsValueScales() const {
  return num::foldsValueScales(side, headDim);
}

/// Codes of a span that one 32-bit word (or a 16-bit half word spread over
/// one) holds.
static int64_t codesPerWord(unsigned bits, int64_t count) {
  return std::min<int64_t>(32 / bits, count);
}

SmallVector<std::pair<int64_t, int64_t>>
PageReader::halfPairOrder(int64_t count) const {
  const int64_t perWord = codesPerWord(side.quant.bits, count);
  SmallVector<std::pair<int64_t, int64_t>> order;
  for (int64_t word = 0; word < count / perWord; ++word)
    for (int64_t i = 0; i < perWord / 2; ++i)
      order.push_back({word * perWord + i, word * perWord + i + perWord / 2});
  return order;
}

PageReader::HalfPairWords PageReader::halfPairWords(OpBuilder &b,
                                                   Location loc,
                                                   Value blockBase, Value slot,
                                                   ChannelSpan span) const {
  auto [rowBase, pairRow] = tokenAxisRows(b, loc, blockBase, slot);
  return halfPairWordsAt(b, loc, pool, rowBase, pairRow, span);
}

PageReader::HalfPairWords
PageReader::halfPairWordsAt(OpBuilder &b, Location loc, const ByteViews &views,
                            Value rowBase, Value pairRow,
                            ChannelSpan span) const {
  const unsigned bits = side.quant.bits;
  const int64_t group = side.quant.group, count = span.count;
  const int64_t bytes = count * bits / 8;
  // base + (span.first / divisor) * scale.
  auto offset = [&](Value base, int64_t divisor, int64_t scale) -> Value {
    Value quotient =
        arith::DivUIOp::create(b, loc, span.first, indexConst(b, loc, divisor));
    return arith::AddIOp::create(
        b, loc, base,
        arith::MulIOp::create(b, loc, quotient, indexConst(b, loc, scale)));
  };
  Type i32 = b.getI32Type();

  // The span's codes: one load of count * b / 8 bytes (span.first is a
  // multiple of count >= 8; rows and blocks are 16-byte aligned).
  Value at = offset(rowBase, 8, bits);
  HalfPairWords read;
  if (bytes == 2) {
    // Eight 2-bit codes: the half word's high byte moves to bits 16-23, so
    // that code i + 4 sits 16 bits above code i.
    Value half = arith::ExtUIOp::create(b, loc, i32,
                                        views.load(b, loc, b.getI16Type(), at));
    Value low = arith::AndIOp::create(b, loc, half, i32Const(b, loc, 0xFF));
    Value high = arith::ShLIOp::create(
        b, loc, arith::AndIOp::create(b, loc, half, i32Const(b, loc, 0xFF00)),
        i32Const(b, loc, 8));
    read.words.push_back(arith::OrIOp::create(b, loc, low, high));
  } else if (bytes == 4) {
    read.words.push_back(views.load(b, loc, i32, at));
  } else {
    Value vector = views.loadVector(b, loc, i32, bytes / 4, at, bytes);
    for (int64_t w = 0; w < bytes / 4; ++w)
      read.words.push_back(
          LLVM::ExtractElementOp::create(b, loc, vector, i32Const(b, loc, w)));
  }
  // The group's (scale, zero) (spans never cross a group).
  read.params =
      views.loadVector(b, loc, b.getF16Type(), 2, offset(pairRow, group, 4), 4);
  return read;
}

SmallVector<Value> PageReader::dequantizeWordPairs(OpBuilder &b, Location loc,
                                                   Value word, int64_t count,
                                                   Value scale,
                                                   Value zero) const {
  // llvm.intr.fma, not math.fma: the NVVM lowering would send the latter to
  // libdevice's f32 fmaf (fma.rn.f16x2 is the point).
  return wordCodePairs(b, loc, word, count, [&](Value pair) -> Value {
    return LLVM::FMAOp::create(b, loc, pair, scale, zero);
  });
}

/// Where wordCodePairs reads pair i of a word: at bit i * b of each half,
/// in place below bit 10, the others from the word shifted by 8 (the
/// second: true), 8 bits lower.
static std::pair<unsigned, bool> wordPairPlace(unsigned bits, int64_t i) {
  const unsigned position = unsigned(i) * bits;
  if (readsInPlace(bits, position))
    return {position, false};
  return {position - 8, true};
}

double PageReader::halfPairCodeWeight(int64_t pair, int64_t count) const {
  const unsigned bits = side.quant.bits;
  const int64_t i = pair % (codesPerWord(bits, count) / 2);
  return foldedCodeWeight(bits, wordPairPlace(bits, i).first);
}

SmallVector<Value>
PageReader::wordCodePairs(OpBuilder &b, Location loc, Value word, int64_t count,
                          function_ref<Value(Value)> finish,
                          bool subnormal) const {
  const unsigned bits = side.quant.bits;
  // One shift a word for the pairs at bit 10 and above.
  SmallVector<Value> pairs;
  Value high;
  for (int64_t i = 0; i < codesPerWord(bits, count) / 2; ++i) {
    auto [position, shifted] = wordPairPlace(bits, i);
    Value codes = word;
    if (shifted) {
      if (!high)
        high = arith::ShRUIOp::create(b, loc, word, i32Const(b, loc, 8));
      codes = high;
    }
    Value pair = codePair(b, loc, codes, bits, position, subnormal);
    pairs.push_back(finish ? finish(pair) : pair);
  }
  return pairs;
}

HalfPairTerms PageReader::halfPairTerms(OpBuilder &b, Location loc,
                                        Value blockBase, Value slot,
                                        ChannelSpan span,
                                        bool dequantize) const {
  HalfPairWords read = halfPairWords(b, loc, blockBase, slot, span);
  // The group's scale and zero, each in both halves of a pair.
  Value scale = pairOf(b, loc, read.params, read.params, 0, 0);
  Value zero = pairOf(b, loc, read.params, read.params, 1, 1);
  HalfPairTerms terms;
  for (Value word : read.words)
    llvm::append_range(terms.pairs,
                       dequantize ? dequantizeWordPairs(b, loc, word,
                                                        span.count, scale, zero)
                                  : wordCodePairs(b, loc, word, span.count));
  terms.scales = scale;
  terms.zeros = zero;
  return terms;
}

SmallVector<Value> PageReader::compressedHalfPairs(OpBuilder &b, Location loc,
                                                   Value blockBase, Value slot,
                                                   ChannelSpan span) const {
  return halfPairTerms(b, loc, blockBase, slot, span, /*dequantize=*/true)
      .pairs;
}

HalfPairTerms PageReader::compressedHalfPairTerms(OpBuilder &b, Location loc,
                                                  Value blockBase, Value slot,
                                                  ChannelSpan span) const {
  return halfPairTerms(b, loc, blockBase, slot, span, /*dequantize=*/false);
}

HalfPairTerms PageReader::halfPairColumnTerms(OpBuilder &b, Location loc,
                                              Value blockBase, Value firstSlot,
                                              Value secondSlot,
                                              ChannelSpan span,
                                              bool dequantize) const {
  // In order: the first token's loads before the second's.
  HalfPairWords first = halfPairWords(b, loc, blockBase, firstSlot, span);
  HalfPairWords second = halfPairWords(b, loc, blockBase, secondSlot, span);
  return halfPairColumnTermsOf(b, loc, first, second, span, dequantize);
}

HalfPairTerms PageReader::halfPairColumnTermsOf(OpBuilder &b, Location loc,
                                                const HalfPairWords &first,
                                                const HalfPairWords &second,
                                                ChannelSpan span,
                                                bool dequantize) const {
  // Low halves of x and y in one word, high halves in another (byte
  // selectors of permuteBytes: PRMTs, which ptxas does not split into
  // 16-bit moves to repeat at every use).
  constexpr uint32_t kLowHalves = 0x5410, kHighHalves = 0x7632;
  auto word = [&](Value pair) {
    return LLVM::BitcastOp::create(b, loc, b.getI32Type(), pair);
  };
  auto pairType = VectorType::get({2}, b.getF16Type());
  // The two tokens' scales in one pair, their zeros in another.
  HalfPairTerms terms;
  terms.scales = LLVM::BitcastOp::create(
      b, loc, pairType,
      permuteBytes(b, loc, word(first.params), word(second.params),
                   kLowHalves));
  terms.zeros = LLVM::BitcastOp::create(
      b, loc, pairType,
      permuteBytes(b, loc, word(first.params), word(second.params),
                   kHighHalves));
  for (auto [x, y] : llvm::zip_equal(first.words, second.words)) {
    // The words' low halves (codes i < 16 / b, at bit i * b) in one word,
    // their high halves (codes i + 16 / b) in another: the same bit
    // positions, a channel of both tokens each.
    Value lows = permuteBytes(b, loc, x, y, kLowHalves);
    Value highs = permuteBytes(b, loc, x, y, kHighHalves);
    auto pairs = [&](Value codes) {
      return dequantize ? dequantizeWordPairs(b, loc, codes, span.count,
                                              terms.scales, terms.zeros)
                        : wordCodePairs(b, loc, codes, span.count, {},
                                        foldsSubnormalCodes());
    };
    SmallVector<Value> upper = pairs(lows);
    SmallVector<Value> lower = pairs(highs);
    for (auto [u, l] : llvm::zip_equal(upper, lower)) {
      terms.pairs.push_back(u);
      terms.pairs.push_back(l);
    }
  }
  return terms;
}

SmallVector<Value> PageReader::compressedHalfPairColumns(
    OpBuilder &b, Location loc, Value blockBase, Value firstSlot,
    Value secondSlot, ChannelSpan span) const {
  return halfPairColumnTerms(b, loc, blockBase, firstSlot, secondSlot, span,
                             /*dequantize=*/true)
      .pairs;
}

HalfPairTerms PageReader::compressedHalfPairColumnTerms(
    OpBuilder &b, Location loc, Value blockBase, Value firstSlot,
    Value secondSlot, ChannelSpan span) const {
  return halfPairColumnTerms(b, loc, blockBase, firstSlot, secondSlot, span,
                             /*dequantize=*/false);
}

SmallVector<Value> PageReader::residualHalfPairs(OpBuilder &b, Location loc,
                                                 const ByteViews &residual,
                                                 Value headBase, Value row,
                                                 ChannelSpan span) const {
  // Eight fp16 values (16 bytes) a load.
  auto mul = [&](Value x, int64_t y) -> Value {
    return arith::MulIOp::create(b, loc, x, indexConst(b, loc, y));
  };
  Value rowBase =
      arith::AddIOp::create(b, loc, headBase, mul(row, 2 * headDim));
  SmallVector<Value> loads;
  for (int64_t first = 0; first < span.count; first += 8)
    loads.push_back(residual.loadVector(
        b, loc, b.getF16Type(), 8,
        arith::AddIOp::create(
            b, loc, rowBase,
            mul(arith::AddIOp::create(b, loc, span.first,
                                      indexConst(b, loc, first)),
                2)),
        16));
  Value second = loads.size() > 1 ? loads[1] : loads[0];
  SmallVector<Value> pairs;
  for (auto [x, y] : halfPairOrder(span.count))
    pairs.push_back(pairOf(b, loc, loads[0], second, x, y));
  return pairs;
}

SmallVector<Value> SequenceSideView::halfPairs(OpBuilder &b, Location loc,
                                               Value head, Value token,
                                               ChannelSpan span) const {
  Value isCompressed = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                             token, compressed);
  SmallVector<Type> types(span.count / 2, VectorType::get({2}, b.getF16Type()));
  auto ifOp = scf::IfOp::create(b, loc, types, isCompressed,
                                /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  auto [blockBase, slot] = locate(b, loc, head, token);
  scf::YieldOp::create(
      b, loc, reader->compressedHalfPairs(b, loc, blockBase, slot, span));
  b.setInsertionPointToStart(ifOp.elseBlock());
  Value row = arith::SubIOp::create(b, loc, token, compressed);
  Value headBase = arith::MulIOp::create(b, loc, head,
                                         indexConst(b, loc, residualHeadBytes));
  scf::YieldOp::create(
      b, loc, reader->residualHalfPairs(b, loc, residual, headBase, row, span));
  return SmallVector<Value>(ifOp.getResults());
}

HalfPairTerms SequenceSideView::halfPairTerms(OpBuilder &b, Location loc,
                                              Value head, Value token,
                                              ChannelSpan span) const {
  Value isCompressed = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                             token, compressed);
  auto pairType = VectorType::get({2}, b.getF16Type());
  SmallVector<Type> types(span.count / 2 + 2, pairType);
  auto ifOp = scf::IfOp::create(b, loc, types, isCompressed,
                                /*withElseRegion=*/true);
  auto yield = [&](const HalfPairTerms &terms) {
    scf::YieldOp::create(b, loc, terms.flatten());
  };
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    auto [blockBase, slot] = locate(b, loc, head, token);
    yield(reader->compressedHalfPairTerms(b, loc, blockBase, slot, span));
    // Residual rows as stored: scale 1, zero 0.
    b.setInsertionPointToStart(ifOp.elseBlock());
    Value row = arith::SubIOp::create(b, loc, token, compressed);
    Value headBase = arith::MulIOp::create(
        b, loc, head, indexConst(b, loc, residualHeadBytes));
    auto splat = [&](double value) -> Value {
      return arith::ConstantOp::create(
          b, loc, pairType,
          DenseElementsAttr::get(pairType, b.getF16FloatAttr(value)));
    };
    yield(HalfPairTerms{reader->residualHalfPairs(b, loc, residual, headBase,
                                                  row, span),
                        splat(1.0), splat(0.0)});
  }
  return HalfPairTerms::unflatten(ifOp.getResults());
}

HalfPairTerms SequenceSideView::halfPairColumnTermsInPage(
    OpBuilder &b, Location loc, Value blockBase, Value slot, Value firstOffset,
    Value secondOffset, ChannelSpan span) const {
  return reader->compressedHalfPairColumnTerms(
      b, loc, blockBase, arith::AddIOp::create(b, loc, slot, firstOffset),
      arith::AddIOp::create(b, loc, slot, secondOffset), span);
}

SmallVector<Value> SequenceSideView::halfPairColumnsInPage(
    OpBuilder &b, Location loc, Value blockBase, Value slot, Value firstOffset,
    Value secondOffset, ChannelSpan span) const {
  return reader->compressedHalfPairColumns(
      b, loc, blockBase, arith::AddIOp::create(b, loc, slot, firstOffset),
      arith::AddIOp::create(b, loc, slot, secondOffset), span);
}

//===----------------------------------------------------------------------===//
// Token pairs of channel-axis codes (the tensor-core key pass's, and the
// CPU loops' with key-reads=parts). Lane group g (0..7) reads the four
// consecutive tokens 4g .. 4g + 3 of a 32-token unit, token 4g + 2m + r as
// row r (g or g + 8) of tile m. The page pairs channels (docs/layout.md
// version 2): word k of channels c and c + 1 is stored as a word of their
// low halves and one of their high halves, so the unit's stored words hold
// its tokens in order, 16 / b of both channels each, and under one mask a
// stored word gives one token of both channels, the two channels of one
// token that a tensor-core A register takes. A lane's four tokens are the
// bits [b * (4g mod 16 / b), + 4b) of each half of stored word 4g / (16 /
// b) (8-bit: two words), read a channel pair at a time by one 4-byte load
// (8-bit: 8 bytes) and at most one shift (2-bit: by 8 for odd g; 4-bit: by
// 8 for tokens 2 and 3; 8-bit: none, PRMT picks the bytes); no transposes.
//===----------------------------------------------------------------------===//

bool PageReader::readsTokenPairs() const {
  return side.isQuant() && side.quant.axis == num::QuantAxis::Channel &&
         (side.quant.bits == 2 || side.quant.bits == 4 || side.quant.bits == 8);
}

double PageReader::foldedQueryScale() const {
  assert(readsTokenPairs() && "folded queries need token-pair reads");
  return num::foldedKeyQueryScale(side);
}

int64_t PageReader::tokenPairStride() const { return 1; }

/// Code pairs a lane group takes from one stored word: its four tokens'
/// (2- and 4-bit), two (8-bit).
static int64_t tokenPairsPerWord(unsigned bits) {
  return std::min<int64_t>(4, 16 / bits);
}

double PageReader::tokenPairCodeWeight(int64_t tile, int64_t row) const {
  const unsigned bits = side.quant.bits;
  // Token 2 * tile + row is pair i of its word (after the lane's shift)
  // and read where wordCodePairs reads pair i.
  const int64_t i = (2 * tile + row) % tokenPairsPerWord(bits);
  return foldedCodeWeight(bits, wordPairPlace(bits, i).first);
}

Value PageReader::tokenPairFirst(OpBuilder &b, Location loc, Value lane,
                                 int64_t tile) const {
  IndexOps x{b, loc};
  return x.add(x.mul(lane, 4), 2 * tile);
}

TokenPairSlot PageReader::tokenPairSlot(OpBuilder &b, Location loc,
                                        Value within) const {
  IndexOps x{b, loc};
  auto isOne = [&](Value value) -> Value {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, value,
                                 indexConst(b, loc, 1));
  };
  return {x.div(within, 4), isOne(x.rem(x.div(within, 2), 2)),
          isOne(x.rem(within, 2))};
}

SmallVector<Value> PageReader::compressedTokenPairs(OpBuilder &b, Location loc,
                                                    Value blockBase,
                                                    Value unitSlot, Value lane,
                                                    ChannelSpan span) const {
  TokenPairTerms terms =
      compressedTokenPairTerms(b, loc, blockBase, unitSlot, lane, span);
  // Element (2 * tile + row) * count / 2 + j: channel pair j's scales and
  // zeros.
  const int64_t perRow = span.count / 2;
  for (size_t i = 0; i < terms.codes.size(); ++i)
    terms.codes[i] = LLVM::FMAOp::create(b, loc, terms.codes[i],
                                         terms.scales[i % perRow],
                                         terms.zeros[i % perRow]);
  return terms.codes;
}

TokenPairTerms PageReader::compressedTokenPairTerms(OpBuilder &b, Location loc,
                                                    Value blockBase,
                                                    Value unitSlot, Value lane,
                                                    ChannelSpan span,
                                                    bool subnormal) const {
  const int64_t group = side.quant.group;
  const int64_t groupBytes = group * side.quant.bits / 8;
  IndexOps x{b, loc};
  // The channel pair (c, c + 1)'s codes of the unit: groups (slot / G, c)
  // and (slot / G, c + 1) share 2 * groupBytes from (tb * D + c) *
  // groupBytes (docs/layout.md, channel pairs), the unit's 2b stored words
  // from 8b * ((slot % G) / 32). Four channels' scales and zeros in one
  // 16-byte load: (scale c, scale c + 1, zero c, zero c + 1) a pair, each
  // an fp16 pair as HFMA2 takes it.
  Value firstGroup = x.add(x.mul(x.div(unitSlot, group), headDim), span.first);
  Value codes =
      x.add(x.add(blockBase, x.mul(firstGroup, groupBytes)),
            x.mul(x.div(x.rem(unitSlot, group), 32), 8 * side.quant.bits));
  Value params =
      x.add(x.add(blockBase, layout.paramsOffset), x.mul(firstGroup, 4));
  return tokenPairTermsAt(b, loc, pool, codes, 2 * groupBytes, params, lane,
                          span, subnormal);
}

TokenPairTerms PageReader::tokenPairTermsAt(OpBuilder &b, Location loc,
                                            const ByteViews &views, Value codes,
                                            int64_t pairStride, Value params,
                                            Value lane, ChannelSpan span,
                                            bool subnormal) const {
  const unsigned bits = side.quant.bits;
  const int64_t count = span.count;
  IndexOps x{b, loc};
  Type i32 = b.getI32Type();

  // A channel pair's stored words of a unit hold its tokens in order, 16 /
  // b a word. The lane's first token 4g is in word 4g / (16 / b), at bit b
  // * (4g mod 16 / b) of each half.
  const int64_t perHalf = 16 / bits, pairsPerWord = tokenPairsPerWord(bits);
  const int64_t words = 4 / pairsPerWord; // a lane's, a channel pair
  Value tokens = x.mul(lane, 4);
  Value codesBase = x.add(codes, x.mul(x.div(tokens, perHalf), 4));
  // 2-bit: odd lane groups' tokens in each half's high byte, moved down.
  Value shift;
  if (perHalf > 4)
    shift = arith::IndexCastOp::create(
        b, loc, i32, x.mul(x.rem(tokens, perHalf), bits));

  const int64_t perRow = count / 2;
  TokenPairTerms terms;
  terms.codes.resize(4 * perRow);
  Value loadedParams;
  for (int64_t j = 0; j < perRow; ++j) {
    if (j % 2 == 0)
      loadedParams =
          views.loadVector(b, loc, b.getF16Type(), 8, x.add(params, 8 * j), 16);
    terms.scales.push_back(pairOf(b, loc, loadedParams, loadedParams,
                                  4 * (j % 2), 4 * (j % 2) + 1));
    terms.zeros.push_back(pairOf(b, loc, loadedParams, loadedParams,
                                 4 * (j % 2) + 2, 4 * (j % 2) + 3));
    Value at = x.add(codesBase, j * pairStride);
    SmallVector<Value> loaded;
    if (words == 1) {
      loaded.push_back(views.load(b, loc, i32, at));
    } else {
      Value both = views.loadVector(b, loc, i32, words, at, 4 * words);
      for (int64_t w = 0; w < words; ++w)
        loaded.push_back(
            LLVM::ExtractElementOp::create(b, loc, both, i32Const(b, loc, w)));
    }
    // Token i = 2 * tile + row of the lane's four: pair i of its words'.
    int64_t i = 0;
    for (Value word : loaded) {
      if (shift)
        word = arith::ShRUIOp::create(b, loc, word, shift);
      for (Value pair : wordCodePairs(b, loc, word, 2 * pairsPerWord, {},
                                      subnormal))
        terms.codes[i++ * perRow + j] = pair;
    }
  }
  return terms;
}

SmallVector<Value> PageReader::residualTokenPairs(OpBuilder &b, Location loc,
                                                  const ByteViews &residual,
                                                  Value headBase, Value unitRow,
                                                  Value lane,
                                                  ChannelSpan span) const {
  IndexOps x{b, loc};
  SmallVector<Value> pairs;
  for (int64_t m = 0; m < 2; ++m) {
    Value first = x.add(unitRow, tokenPairFirst(b, loc, lane, m));
    for (int64_t row = 0; row < 2; ++row) {
      Value rowBase =
          x.add(x.add(headBase, x.mul(first, 2 * headDim)),
                x.add(x.mul(span.first, 2),
                      row * tokenPairStride() * 2 * int64_t(headDim)));
      // Eight fp16 values (16 bytes) a load, channels 2j and 2j + 1 a pair.
      for (int64_t c = 0; c < span.count; c += 8) {
        Value load = residual.loadVector(b, loc, b.getF16Type(), 8,
                                         x.add(rowBase, 2 * c), 16);
        for (int64_t j = 0; j < 4; ++j)
          pairs.push_back(pairOf(b, loc, load, load, 2 * j, 2 * j + 1));
      }
    }
  }
  return pairs;
}

SmallVector<Value> SequenceSideView::tokenPairs(OpBuilder &b, Location loc,
                                                Value head, Value unitToken,
                                                Value lane,
                                                ChannelSpan span) const {
  Value isCompressed = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                             unitToken, compressed);
  SmallVector<Type> types(2 * span.count, VectorType::get({2}, b.getF16Type()));
  auto ifOp = scf::IfOp::create(b, loc, types, isCompressed,
                                /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  auto [blockBase, slot] = locate(b, loc, head, unitToken);
  scf::YieldOp::create(b, loc,
                       reader->compressedTokenPairs(b, loc, blockBase, slot,
                                                    lane, span));
  b.setInsertionPointToStart(ifOp.elseBlock());
  scf::YieldOp::create(
      b, loc, residualTokenPairs(b, loc, head, unitToken, lane, span));
  return SmallVector<Value>(ifOp.getResults());
}

SmallVector<Value> SequenceSideView::residualTokenPairs(OpBuilder &b,
                                                        Location loc,
                                                        Value head,
                                                        Value unitToken,
                                                        Value lane,
                                                        ChannelSpan span) const {
  Value row = arith::SubIOp::create(b, loc, unitToken, compressed);
  Value headBase = arith::MulIOp::create(b, loc, head,
                                         indexConst(b, loc, residualHeadBytes));
  return reader->residualTokenPairs(b, loc, residual, headBase, row, lane,
                                    span);
}

TokenPairTerms SequenceSideView::tokenPairTermsInPages(
    OpBuilder &b, Location loc, Value head, Value unitToken, Value lane,
    ChannelSpan span) const {
  auto [blockBase, slot] = locate(b, loc, head, unitToken);
  return reader->compressedTokenPairTerms(b, loc, blockBase, slot, lane, span,
                                          reader->foldsSubnormalCodes());
}

SmallVector<Value> SequenceSideView::foldTokenPairChannels(
    OpBuilder &b, Location loc, Value head, Value token, ChannelSpan span,
    ValueRange inits, ChannelChunkFn fn) const {
  IndexOps x{b, loc};
  Value within = x.rem(token, 32);
  TokenPairSlot at = reader->tokenPairSlot(b, loc, within);
  SmallVector<Value> pairs =
      tokenPairs(b, loc, head, arith::SubIOp::create(b, loc, token, within),
                 at.lane, span);
  // The token's row of its tile: pairs (2 * tile + row) * count / 2 + j.
  const int64_t perRow = span.count / 2;
  auto pick = [&](Value condition, Value ifTrue, Value ifFalse) -> Value {
    return arith::SelectOp::create(b, loc, condition, ifTrue, ifFalse);
  };
  SmallVector<Value> values;
  for (int64_t j = 0; j < perRow; ++j) {
    Value pair =
        pick(at.secondTile,
             pick(at.secondRow, pairs[3 * perRow + j], pairs[2 * perRow + j]),
             pick(at.secondRow, pairs[perRow + j], pairs[j]));
    for (int64_t i = 0; i < 2; ++i) {
      Value half =
          LLVM::ExtractElementOp::create(b, loc, pair, i32Const(b, loc, i));
      values.push_back(arith::ExtFOp::create(b, loc, b.getF32Type(), half));
    }
  }
  return fn(span.first, 0, values, inits);
}
