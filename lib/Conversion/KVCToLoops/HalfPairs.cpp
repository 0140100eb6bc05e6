//===- HalfPairs.cpp - dequantize packed codes straight into fp16 pairs ---===//
//
// PageReader's fp16-pair reads (the tensor-core value pass's, and the CPU
// loops' with value-reads=f16): two token-axis codes ORed into the
// mantissas of an fp16 pair with exponent 1024, 1024 subtracted, one fma
// with the group's scale and zero. The bit layout is unitCodes' (codes in
// order, 32 / b a word, code i at bit (i % (32 / b)) * b).
//
//===----------------------------------------------------------------------===//

#include "PageReader.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

static Value indexConstant(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantIndexOp::create(b, loc, value);
}

static Value i32Constant(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantIntOp::create(b, loc, value, 32);
}

/// `x` and `y` (LLVM-compatible vectors) shuffled into a pair: elements
/// `first` and `second` of their concatenation.
static Value pairOf(OpBuilder &b, Location loc, Value x, Value y, int64_t first,
                    int64_t second) {
  return LLVM::ShuffleVectorOp::create(
      b, loc, x, y, ArrayRef<int32_t>{int32_t(first), int32_t(second)});
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
  const int64_t d = headDim, group = side.quant.group, count = span.count;
  const int64_t rowBytes = d * bits / 8, bytes = count * bits / 8;
  const int64_t perWord = codesPerWord(bits, count);
  auto add = [&](Value x, Value y) -> Value {
    return arith::AddIOp::create(b, loc, x, y);
  };
  auto mul = [&](Value x, int64_t y) -> Value {
    return arith::MulIOp::create(b, loc, x, indexConstant(b, loc, y));
  };
  auto div = [&](Value x, int64_t y) -> Value {
    return arith::DivUIOp::create(b, loc, x, indexConstant(b, loc, y));
  };
  Type i32 = b.getI32Type();
  auto pairType = VectorType::get({2}, b.getF16Type());

  // The span's codes: one load of count * b / 8 bytes (a multiple of them
  // from the row's start; rows and blocks are 16-byte aligned).
  Value at =
      add(add(blockBase, mul(slot, rowBytes)), div(mul(span.first, bits), 8));
  SmallVector<Value> words;
  if (bytes == 2) {
    // Eight 2-bit codes: the half word's high byte moves to bits 16-23, so
    // that code i + 4 sits 16 bits above code i.
    Value half = arith::ExtUIOp::create(b, loc, i32,
                                        pool.load(b, loc, b.getI16Type(), at));
    Value low = arith::AndIOp::create(b, loc, half, i32Constant(b, loc, 0xFF));
    Value high = arith::ShLIOp::create(
        b, loc,
        arith::AndIOp::create(b, loc, half, i32Constant(b, loc, 0xFF00)),
        i32Constant(b, loc, 8));
    words.push_back(arith::OrIOp::create(b, loc, low, high));
  } else if (bytes == 4) {
    words.push_back(pool.load(b, loc, i32, at));
  } else {
    Value vector = pool.loadVector(b, loc, i32, bytes / 4, at, bytes);
    for (int64_t w = 0; w < bytes / 4; ++w)
      words.push_back(LLVM::ExtractElementOp::create(b, loc, vector,
                                                     i32Constant(b, loc, w)));
  }

  // The group's (scale, zero), each in both halves of a pair (spans never
  // cross a group).
  Value pairRow =
      add(add(blockBase, indexConstant(b, loc, layout.paramsOffset)),
          mul(slot, d / group * 4));
  Value params =
      pool.loadVector(b, loc, b.getF16Type(), 2,
                      add(pairRow, mul(div(span.first, group), 4)), 4);
  Value scale = pairOf(b, loc, params, params, 0, 0);
  Value zero = pairOf(b, loc, params, params, 1, 1);
  Value exponent = arith::ConstantOp::create(
      b, loc, pairType,
      DenseElementsAttr::get(pairType, b.getF16FloatAttr(1024.0)));

  const int64_t mask = ((1 << bits) - 1) * 0x00010001;
  SmallVector<Value> pairs;
  for (Value word : words)
    for (int64_t i = 0; i < perWord / 2; ++i) {
      Value codes = word;
      if (i)
        codes = arith::ShRUIOp::create(b, loc, codes,
                                       i32Constant(b, loc, i * bits));
      codes = arith::AndIOp::create(b, loc, codes, i32Constant(b, loc, mask));
      codes =
          arith::OrIOp::create(b, loc, codes, i32Constant(b, loc, 0x64006400));
      // 1024 + code in each half; minus 1024 is exact.
      Value value = arith::SubFOp::create(
          b, loc, LLVM::BitcastOp::create(b, loc, pairType, codes), exponent);
      // llvm.intr.fma, not math.fma: the NVVM lowering would send the
      // latter to libdevice's f32 fmaf (fma.rn.f16x2 is the point).
      pairs.push_back(LLVM::FMAOp::create(b, loc, value, scale, zero));
    }
  return pairs;
}

SmallVector<Value> PageReader::residualHalfPairs(OpBuilder &b, Location loc,
                                                 const ByteViews &residual,
                                                 Value headBase, Value row,
                                                 ChannelSpan span) const {
  // Eight fp16 values (16 bytes) a load.
  auto mul = [&](Value x, int64_t y) -> Value {
    return arith::MulIOp::create(b, loc, x, indexConstant(b, loc, y));
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
                                      indexConstant(b, loc, first)),
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
  Value headBase = arith::MulIOp::create(
      b, loc, head, indexConstant(b, loc, residualHeadBytes));
  scf::YieldOp::create(
      b, loc, reader->residualHalfPairs(b, loc, residual, headBase, row, span));
  return SmallVector<Value>(ifOp.getResults());
}
