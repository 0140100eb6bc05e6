//===- HalfPairs.cpp - dequantizing reads into fp16 pairs -----------------===//
//
// The tensor-core passes' reads (and the CPU loops' twins of them): codes
// ORed into the mantissas of an fp16 pair whose exponent makes their lowest
// bit the units digit (1024 for codes at bit 0), that power subtracted, one
// fma.rn.f16x2 with the group's scale and zero. Token-axis
// codes give two channels of one token (the value pass), channel-axis codes
// two tokens of one channel (the key pass).
//
//===----------------------------------------------------------------------===//

#include "PageReader.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

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

Value PageReader::dequantizeCodePair(OpBuilder &b, Location loc, Value word,
                                     unsigned bits, unsigned position,
                                     Value scale, Value zero) const {
  assert(position + bits <= 10 && "the codes must lie in the mantissa");
  const int64_t mask = (((1 << bits) - 1) << position) * 0x00010001;
  // fp16 2^(10 - position): biased exponent 25 - position, mantissa 0.
  const int64_t magic = ((25 - position) << 10) * 0x00010001;
  Value codes;
  if (inlinePTX) {
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
  // 2^(10 - position) + code in each half; the power subtracted is exact.
  auto pairType = VectorType::get({2}, b.getF16Type());
  Value power = arith::ConstantOp::create(
      b, loc, pairType,
      DenseElementsAttr::get(
          pairType, b.getF16FloatAttr(double(1 << (10 - position)))));
  Value value = arith::SubFOp::create(
      b, loc, LLVM::BitcastOp::create(b, loc, pairType, codes), power);
  // llvm.intr.fma, not math.fma: the NVVM lowering would send the latter to
  // libdevice's f32 fmaf (fma.rn.f16x2 is the point).
  return LLVM::FMAOp::create(b, loc, value, scale, zero);
}

bool PageReader::readsHalfPairs() const {
  return side.isQuant() && side.quant.axis == num::QuantAxis::Token &&
         (side.quant.bits == 2 || side.quant.bits == 4 || side.quant.bits == 8);
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

SmallVector<Value> PageReader::compressedHalfPairs(OpBuilder &b, Location loc,
                                                   Value blockBase, Value slot,
                                                   ChannelSpan span) const {
  const unsigned bits = side.quant.bits;
  const int64_t group = side.quant.group, count = span.count;
  const int64_t bytes = count * bits / 8;
  const int64_t perWord = codesPerWord(bits, count);
  // base + (span.first / divisor) * scale.
  auto offset = [&](Value base, int64_t divisor, int64_t scale) -> Value {
    Value quotient =
        arith::DivUIOp::create(b, loc, span.first, indexConst(b, loc, divisor));
    return arith::AddIOp::create(
        b, loc, base,
        arith::MulIOp::create(b, loc, quotient, indexConst(b, loc, scale)));
  };
  Type i32 = b.getI32Type();
  auto [rowBase, pairRow] = tokenAxisRows(b, loc, blockBase, slot);

  // The span's codes: one load of count * b / 8 bytes (span.first is a
  // multiple of count >= 8; rows and blocks are 16-byte aligned).
  Value at = offset(rowBase, 8, bits);
  SmallVector<Value> words;
  if (bytes == 2) {
    // Eight 2-bit codes: the half word's high byte moves to bits 16-23, so
    // that code i + 4 sits 16 bits above code i.
    Value half = arith::ExtUIOp::create(b, loc, i32,
                                        pool.load(b, loc, b.getI16Type(), at));
    Value low = arith::AndIOp::create(b, loc, half, i32Const(b, loc, 0xFF));
    Value high = arith::ShLIOp::create(
        b, loc, arith::AndIOp::create(b, loc, half, i32Const(b, loc, 0xFF00)),
        i32Const(b, loc, 8));
    words.push_back(arith::OrIOp::create(b, loc, low, high));
  } else if (bytes == 4) {
    words.push_back(pool.load(b, loc, i32, at));
  } else {
    Value vector = pool.loadVector(b, loc, i32, bytes / 4, at, bytes);
    for (int64_t w = 0; w < bytes / 4; ++w)
      words.push_back(
          LLVM::ExtractElementOp::create(b, loc, vector, i32Const(b, loc, w)));
  }

  // The group's (scale, zero), each in both halves of a pair (spans never
  // cross a group).
  Value params = pool.loadVector(b, loc, b.getF16Type(), 2,
                                 offset(pairRow, group, 4), 4);
  Value scale = pairOf(b, loc, params, params, 0, 0);
  Value zero = pairOf(b, loc, params, params, 1, 1);

  // Pair i sits at bit i * b of each half. Below bit 10 it is read in
  // place; the others from the word shifted by 8, one shift a word.
  SmallVector<Value> pairs;
  for (Value word : words) {
    Value high;
    for (int64_t i = 0; i < perWord / 2; ++i) {
      unsigned position = i * bits;
      Value codes = word;
      if (position + bits > 10) {
        if (!high)
          high = arith::ShRUIOp::create(b, loc, word, i32Const(b, loc, 8));
        codes = high;
        position -= 8;
      }
      pairs.push_back(
          dequantizeCodePair(b, loc, codes, bits, position, scale, zero));
    }
  }
  return pairs;
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

SmallVector<Value> SequenceSideView::halfPairsInPage(OpBuilder &b, Location loc,
                                                     Value blockBase,
                                                     Value slot,
                                                     ArrayRef<Value> offsets,
                                                     ChannelSpan span) const {
  SmallVector<Value> pairs;
  for (Value offset : offsets)
    llvm::append_range(pairs,
                       reader->compressedHalfPairs(
                           b, loc, blockBase,
                           arith::AddIOp::create(b, loc, slot, offset), span));
  return pairs;
}

//===----------------------------------------------------------------------===//
// Token pairs of channel-axis codes (the tensor-core key pass's, and the
// CPU loops' with key-reads=parts). A 32-token packing unit of one channel
// holds 32 / b codes a word, so codes i and i + p of a word (p = 16 / b)
// sit 16 bits apart: the two halves of a pair. Lane group g (0..7) takes,
// for tile m (0 or 1), word 2 * (g / p) + m of the unit and its pair g % p:
// a lane's two words are adjacent (one 8-byte load a channel), and the 16
// (lane group, tile) pairs cover the unit's 32 tokens once. The tensor-core
// key pass wants two channels of one token in a register, so the
// dequantized pairs of each two channels are transposed (a PRMT each).
//===----------------------------------------------------------------------===//

namespace {
/// Index arithmetic with constants folded.
struct IndexOps {
  OpBuilder &b;
  Location loc;
  Value add(Value x, Value y) {
    return b.createOrFold<arith::AddIOp>(loc, x, y);
  }
  Value add(Value x, int64_t y) { return add(x, indexConst(b, loc, y)); }
  Value mul(Value x, int64_t y) {
    return b.createOrFold<arith::MulIOp>(loc, x, indexConst(b, loc, y));
  }
  Value div(Value x, int64_t y) {
    return b.createOrFold<arith::DivUIOp>(loc, x, indexConst(b, loc, y));
  }
  Value rem(Value x, int64_t y) {
    return b.createOrFold<arith::RemUIOp>(loc, x, indexConst(b, loc, y));
  }
};
} // namespace

bool PageReader::readsTokenPairs() const {
  return side.isQuant() && side.quant.axis == num::QuantAxis::Channel &&
         (side.quant.bits == 2 || side.quant.bits == 4 || side.quant.bits == 8);
}

int64_t PageReader::tokenPairStride() const { return 16 / side.quant.bits; }

Value PageReader::tokenPairFirst(OpBuilder &b, Location loc, Value lane,
                                 int64_t tile) const {
  const int64_t stride = tokenPairStride();
  IndexOps x{b, loc};
  Value word = x.add(x.mul(x.div(lane, stride), 2), tile);
  return x.add(x.mul(word, 2 * stride), x.rem(lane, stride));
}

TokenPairSlot PageReader::tokenPairSlot(OpBuilder &b, Location loc,
                                        Value within) const {
  const int64_t stride = tokenPairStride();
  IndexOps x{b, loc};
  Value word = x.div(within, 2 * stride);
  Value position = x.rem(within, 2 * stride);
  auto isOne = [&](Value value) -> Value {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, value,
                                 indexConst(b, loc, 1));
  };
  return {x.add(x.mul(x.div(word, 2), stride), x.rem(position, stride)),
          isOne(x.rem(word, 2)), isOne(x.div(position, stride))};
}

SmallVector<Value> PageReader::compressedTokenPairs(OpBuilder &b, Location loc,
                                                    Value blockBase,
                                                    Value unitSlot, Value lane,
                                                    ChannelSpan span) const {
  const unsigned bits = side.quant.bits;
  const int64_t group = side.quant.group, count = span.count;
  const int64_t groupBytes = group * bits / 8, stride = tokenPairStride();
  IndexOps x{b, loc};
  Type i32 = b.getI32Type();

  // Channel c's codes of the unit: group (slot / G, c) at (tb * D + c) *
  // groupBytes, the unit (slot % G) / 32 units into it, the lane's two words
  // 8 * (lane / stride) bytes further (8-byte aligned). Its (scale, zero)
  // at P + 4 * (tb * D + c): four channels' in one 16-byte load.
  Value firstGroup = x.add(x.mul(x.div(unitSlot, group), headDim), span.first);
  Value codesBase =
      x.add(x.add(blockBase, x.mul(firstGroup, groupBytes)),
            x.add(x.mul(x.div(x.rem(unitSlot, group), 32), 4 * bits),
                  x.mul(x.div(lane, stride), 8)));
  Value paramsBase =
      x.add(x.add(blockBase, layout.paramsOffset), x.mul(firstGroup, 4));
  // The lane's pair to bits 0 and 16.
  Value shift =
      arith::IndexCastOp::create(b, loc, i32, x.mul(x.rem(lane, stride), bits));
  SmallVector<std::array<Value, 2>> words;
  for (int64_t c = 0; c < count; ++c) {
    Value both =
        pool.loadVector(b, loc, i32, 2, x.add(codesBase, c * groupBytes), 8);
    std::array<Value, 2> shifted;
    for (int64_t m = 0; m < 2; ++m)
      shifted[m] = arith::ShRUIOp::create(
          b, loc,
          LLVM::ExtractElementOp::create(b, loc, both, i32Const(b, loc, m)),
          shift);
    words.push_back(shifted);
  }

  const int64_t perRow = count / 2;
  SmallVector<Value> pairs(4 * perRow);
  for (int64_t c0 = 0; c0 < count; c0 += 4) {
    Value params = pool.loadVector(b, loc, b.getF16Type(), 8,
                                   x.add(paramsBase, 4 * c0), 16);
    // Channel c's token pair of tile m, dequantized with the channel's
    // scale and zero in both halves (ptxas reads them as HFMA2 operand
    // halves: no moves).
    Value tokens[4][2];
    for (int64_t c = 0; c < 4; ++c) {
      Value scale = pairOf(b, loc, params, params, 2 * c, 2 * c);
      Value zero = pairOf(b, loc, params, params, 2 * c + 1, 2 * c + 1);
      for (int64_t m = 0; m < 2; ++m)
        tokens[c][m] =
            dequantizeCodePair(b, loc, words[c0 + c][m], bits, 0, scale, zero);
    }
    // The transpose: row `row`'s token in channels c and c + 1.
    for (int64_t c = 0; c < 4; c += 2)
      for (int64_t m = 0; m < 2; ++m)
        for (int64_t row = 0; row < 2; ++row)
          pairs[(2 * m + row) * perRow + (c0 + c) / 2] =
              pairOf(b, loc, tokens[c][m], tokens[c + 1][m], row, row + 2);
  }
  return pairs;
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
  scf::YieldOp::create(b, loc,
                       tokenPairsInPages(b, loc, head, unitToken, lane, span));
  b.setInsertionPointToStart(ifOp.elseBlock());
  Value row = arith::SubIOp::create(b, loc, unitToken, compressed);
  Value headBase = arith::MulIOp::create(b, loc, head,
                                         indexConst(b, loc, residualHeadBytes));
  scf::YieldOp::create(
      b, loc,
      reader->residualTokenPairs(b, loc, residual, headBase, row, lane, span));
  return SmallVector<Value>(ifOp.getResults());
}

SmallVector<Value> SequenceSideView::tokenPairsInPages(OpBuilder &b,
                                                       Location loc, Value head,
                                                       Value unitToken,
                                                       Value lane,
                                                       ChannelSpan span) const {
  auto [blockBase, slot] = locate(b, loc, head, unitToken);
  return reader->compressedTokenPairs(b, loc, blockBase, slot, lane, span);
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
