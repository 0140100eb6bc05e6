//===- PageReader.cpp - emit dequantizing reads of packed pages -----------===//

#include "PageReader.h"

#include "kvc/Numerics/Pack.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

Value mlir::kvc::indexConst(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantIndexOp::create(b, loc, value);
}

Value mlir::kvc::i32Const(OpBuilder &b, Location loc, int32_t value) {
  return arith::ConstantIntOp::create(b, loc, value, 32);
}

Value ByteViews::address(OpBuilder &b, Location loc, Value byteOffset) const {
  Value offset = arith::IndexCastOp::create(b, loc, b.getI64Type(), byteOffset);
  return LLVM::GEPOp::create(b, loc, base.getType(), b.getI8Type(), base,
                             ValueRange{offset});
}

Value ByteViews::load(OpBuilder &b, Location loc, Type type,
                      Value byteOffset) const {
  return LLVM::LoadOp::create(b, loc, type, address(b, loc, byteOffset),
                              type.getIntOrFloatBitWidth() / 8);
}

void ByteViews::store(OpBuilder &b, Location loc, Value value,
                      Value byteOffset) const {
  LLVM::StoreOp::create(b, loc, value, address(b, loc, byteOffset),
                        value.getType().getIntOrFloatBitWidth() / 8);
}

Value ByteViews::loadVector(OpBuilder &b, Location loc, Type element,
                            int64_t count, Value byteOffset,
                            unsigned alignment) const {
  return LLVM::LoadOp::create(b, loc, VectorType::get({count}, element),
                              address(b, loc, byteOffset), alignment);
}

/// Element `position` of an LLVM-compatible vector.
static Value extract(OpBuilder &b, Location loc, Value vector,
                     int64_t position) {
  Value index = LLVM::ConstantOp::create(b, loc, b.getI32Type(),
                                         b.getI32IntegerAttr(position));
  return LLVM::ExtractElementOp::create(b, loc, vector, index);
}

/// for c0 in span step chunk, carrying `inits`; `body` builds the yields
/// with `b` placed in the loop body. Spans of up to `unrolledSpan` channels
/// are unrolled, in channel order.
static SmallVector<Value> forEachChunk(
    OpBuilder &b, Location loc, ChannelSpan span, int64_t chunk,
    int64_t unrolledSpan, ValueRange inits,
    function_ref<SmallVector<Value>(Value, std::optional<int64_t>, ValueRange)>
        body) {
  if (span.count <= unrolledSpan || span.count == chunk) {
    SmallVector<Value> carried(inits);
    for (int64_t c = 0; c < span.count; c += chunk) {
      Value first = c == 0 ? span.first
                           : b.createOrFold<arith::AddIOp>(
                                 loc, span.first, indexConst(b, loc, c));
      carried = body(first, c, carried);
    }
    return carried;
  }
  Value end = b.createOrFold<arith::AddIOp>(loc, span.first,
                                            indexConst(b, loc, span.count));
  auto loop = scf::ForOp::create(
      b, loc, span.first, end, indexConst(b, loc, chunk), inits,
      [&](OpBuilder &nb, Location, Value firstChannel, ValueRange carried) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        scf::YieldOp::create(b, loc, body(firstChannel, std::nullopt, carried));
      });
  return SmallVector<Value>(loop.getResults());
}

/// The largest of `candidates` (descending) that divides every one of
/// `sizes`: how many consecutive channels one load may take.
static int64_t widestDividing(ArrayRef<int64_t> candidates,
                              ArrayRef<int64_t> sizes) {
  for (int64_t c : candidates)
    if (llvm::all_of(sizes, [&](int64_t s) { return s % c == 0; }))
      return c;
  return 1;
}

namespace {
/// Whether `channel` has a partner: always but for an odd D's last channel
/// (null when D is even).
Value pairedChannel(OpBuilder &b, Location loc, Value channel,
                    int64_t headDim) {
  if (headDim % 2 == 0)
    return {};
  return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, channel,
                               indexConst(b, loc, headDim - 1));
}
} // namespace

Value mlir::kvc::channelPairHalf(OpBuilder &b, Location loc,
                                 Value pairFirstGroup, Value side,
                                 Value byteInGroup, int64_t groupBytes) {
  auto add = [&](Value x, Value y) -> Value {
    return b.createOrFold<arith::AddIOp>(loc, x, y);
  };
  auto mul = [&](Value x, int64_t y) -> Value {
    return b.createOrFold<arith::MulIOp>(loc, x, indexConst(b, loc, y));
  };
  auto div = [&](Value x, int64_t y) -> Value {
    return b.createOrFold<arith::DivUIOp>(loc, x, indexConst(b, loc, y));
  };
  // Word k's low halves at 8k, its high halves at 8k + 4, channel 2p's
  // before 2p + 1's.
  Value half = b.createOrFold<arith::RemUIOp>(loc, div(byteInGroup, 2),
                                              indexConst(b, loc, 2));
  return add(add(mul(pairFirstGroup, groupBytes), mul(div(byteInGroup, 4), 8)),
             add(mul(half, 4), mul(side, 2)));
}

Value mlir::kvc::channelAxisHalf(OpBuilder &b, Location loc, Value groupIndex,
                                 Value channel, Value byteInGroup,
                                 int64_t groupBytes, int64_t headDim) {
  Value side = b.createOrFold<arith::RemUIOp>(loc, channel,
                                              indexConst(b, loc, 2));
  Value paired = channelPairHalf(
      b, loc, b.createOrFold<arith::SubIOp>(loc, groupIndex, side), side,
      byteInGroup, groupBytes);
  Value isPaired = pairedChannel(b, loc, channel, headDim);
  if (!isPaired)
    return paired;
  // An odd D's last channel: where the matrix form has it.
  Value alone = b.createOrFold<arith::AddIOp>(
      loc,
      b.createOrFold<arith::MulIOp>(loc, groupIndex,
                                    indexConst(b, loc, groupBytes)),
      byteInGroup);
  return arith::SelectOp::create(b, loc, isPaired, paired, alone);
}

std::pair<Value, Value> mlir::kvc::channelAxisParams(OpBuilder &b,
                                                     Location loc,
                                                     Value groupIndex,
                                                     Value channel,
                                                     int64_t headDim) {
  auto add = [&](Value x, int64_t y) -> Value {
    return b.createOrFold<arith::AddIOp>(loc, x, indexConst(b, loc, y));
  };
  auto mul = [&](Value x, int64_t y) -> Value {
    return b.createOrFold<arith::MulIOp>(loc, x, indexConst(b, loc, y));
  };
  // A pair's (scale 2p, scale 2p + 1, zero 2p, zero 2p + 1).
  Value side = b.createOrFold<arith::RemUIOp>(loc, channel,
                                              indexConst(b, loc, 2));
  Value scale = b.createOrFold<arith::AddIOp>(
      loc, mul(b.createOrFold<arith::SubIOp>(loc, groupIndex, side), 4),
      mul(side, 2));
  Value zero = add(scale, 4);
  if (Value isPaired = pairedChannel(b, loc, channel, headDim)) {
    Value alone = mul(groupIndex, 4);
    scale = arith::SelectOp::create(b, loc, isPaired, scale, alone);
    zero = arith::SelectOp::create(b, loc, isPaired, zero, add(alone, 2));
  }
  return {scale, zero};
}

int64_t mlir::kvc::widestSpan(int64_t headDim, int64_t maxChannels) {
  int64_t span = 1;
  while (span * 2 <= maxChannels && headDim % (span * 2) == 0)
    span *= 2;
  return span;
}

int64_t mlir::kvc::valueSpanChannels(int64_t headDim,
                                     int64_t queryHeadsPerKVHead) {
  int64_t group = std::max<int64_t>(queryHeadsPerKVHead, 1);
  return widestSpan(headDim, std::clamp<int64_t>(kMaxValueAccumulators / group,
                                                 1, kMaxUnrolledSpan));
}

/// float(code), exactly, as `mode` says (CodeToFloat). Bits relies on
/// codes below 2^23: every code here has at most 8 bits.
static Value codeToFloat(OpBuilder &b, Location loc, Value code,
                         CodeToFloat mode) {
  if (mode == CodeToFloat::Convert)
    return arith::UIToFPOp::create(b, loc, b.getF32Type(), code);
  Type i32 = b.getI32Type();
  if (code.getType() != i32)
    code = arith::ExtUIOp::create(b, loc, i32, code);
  Value biased = arith::OrIOp::create(
      b, loc, code, arith::ConstantIntOp::create(b, loc, 0x4B000000, 32));
  return arith::SubFOp::create(
      b, loc, arith::BitcastOp::create(b, loc, b.getF32Type(), biased),
      arith::ConstantFloatOp::create(b, loc, b.getF32Type(),
                                     APFloat(8388608.0f)));
}

/// float(code) * scale + zero: two roundings, never fused (the numerics
/// library's dequantization).
static Value dequantize(OpBuilder &b, Location loc, Value code, Value scale,
                        Value zero, CodeToFloat mode) {
  Value value = codeToFloat(b, loc, code, mode);
  return arith::AddFOp::create(
      b, loc, arith::MulFOp::create(b, loc, value, scale), zero);
}

static Value halfToF32(OpBuilder &b, Location loc, Value half) {
  return arith::ExtFOp::create(b, loc, b.getF32Type(), half);
}

/// `count` elements of `element` at byte `at`, each extracted: one load of
/// count * size bytes (aligned to that: callers keep `at` a multiple).
static SmallVector<Value> loadElements(OpBuilder &b, Location loc,
                                       const ByteViews &views, Type element,
                                       int64_t count, Value at) {
  if (count == 1)
    return {views.load(b, loc, element, at)};
  unsigned bytes = count * element.getIntOrFloatBitWidth() / 8;
  Value vector = views.loadVector(b, loc, element, count, at, bytes);
  SmallVector<Value> elements;
  for (int64_t i = 0; i < count; ++i)
    elements.push_back(extract(b, loc, vector, i));
  return elements;
}

/// Folds over `span` of a row of D fp16 values at byte `rowBase` of
/// `views`: up to 8 channels (16 bytes) a load, as D and the span allow.
static SmallVector<Value> foldHalfRow(OpBuilder &b, Location loc,
                                      const ByteViews &views, Value rowBase,
                                      int64_t headDim, ChannelSpan span,
                                      int64_t unrolledSpan, ValueRange inits,
                                      ChannelChunkFn fn) {
  int64_t chunk = widestDividing({8, 4, 2}, {headDim, span.count});
  return forEachChunk(
      b, loc, span, chunk, unrolledSpan, inits,
      [&](Value firstChannel, std::optional<int64_t> offset,
          ValueRange carried) {
        Value at = arith::AddIOp::create(
            b, loc, rowBase,
            arith::MulIOp::create(b, loc, firstChannel,
                                  indexConst(b, loc, 2)));
        SmallVector<Value> values;
        for (Value half :
             loadElements(b, loc, views, b.getF16Type(), chunk, at))
          values.push_back(halfToF32(b, loc, half));
        return fn(firstChannel, offset, values, carried);
      });
}

ChannelSpan PageReader::wholeRow(OpBuilder &b, Location loc) const {
  return ChannelSpan{indexConst(b, loc, 0), int64_t(headDim)};
}

SmallVector<Value> PageReader::foldCompressedRow(OpBuilder &b, Location loc,
                                                 Value blockBase, Value slot,
                                                 ChannelSpan span,
                                                 ValueRange inits,
                                                 ChannelChunkFn fn) const {
  auto add = [&](Value x, Value y) -> Value {
    return arith::AddIOp::create(b, loc, x, y);
  };
  auto mul = [&](Value x, int64_t y) -> Value {
    return arith::MulIOp::create(b, loc, x, indexConst(b, loc, y));
  };
  int64_t d = headDim;
  switch (side.kind) {
  case num::SideEncoding::Kind::Plain:
    return foldHalfRow(b, loc, pool, add(blockBase, mul(slot, 2 * d)), d, span,
                       unrolledSpan, inits, fn);
  case num::SideEncoding::Kind::FP8: {
    // Codes [T][D] bytes (up to 16 a load), the row's fp16 scale.
    Value rowBase = add(blockBase, mul(slot, d));
    Value scale = halfToF32(
        b, loc,
        pool.load(b, loc, b.getF16Type(),
                  add(add(blockBase, indexConst(b, loc, layout.paramsOffset)),
                      mul(slot, 2))));
    int64_t chunk = widestDividing({16, 8, 4, 2}, {d, span.count});
    return forEachChunk(
        b, loc, span, chunk, unrolledSpan, inits,
        [&](Value firstChannel, std::optional<int64_t> offset,
            ValueRange carried) {
          SmallVector<Value> values;
          for (Value code : loadElements(b, loc, pool, b.getI8Type(), chunk,
                                         add(rowBase, firstChannel))) {
            Value tableIndex =
                arith::IndexCastUIOp::create(b, loc, b.getIndexType(), code);
            Value value = memref::LoadOp::create(b, loc, fp8Table, tableIndex);
            values.push_back(arith::MulFOp::create(b, loc, value, scale));
          }
          return fn(firstChannel, offset, values, carried);
        });
  }
  case num::SideEncoding::Kind::Quant:
    break;
  }
  if (side.quant.axis == num::QuantAxis::Channel)
    return foldChannelAxisRow(b, loc, blockBase, slot, span, inits, fn);
  return foldTokenAxisRow(b, loc, blockBase, slot, span, inits, fn);
}

std::pair<Value, Value> PageReader::tokenAxisRows(OpBuilder &b, Location loc,
                                                  Value blockBase,
                                                  Value slot) const {
  const int64_t d = headDim, bits = side.quant.bits, group = side.quant.group;
  auto at = [&](int64_t base, int64_t stride) -> Value {
    return arith::AddIOp::create(
        b, loc, blockBase,
        arith::AddIOp::create(
            b, loc, indexConst(b, loc, base),
            arith::MulIOp::create(b, loc, slot, indexConst(b, loc, stride))));
  };
  return {at(0, d * bits / 8), at(layout.paramsOffset, d / group * 4)};
}

SmallVector<Value> PageReader::foldTokenAxisRow(OpBuilder &b, Location loc,
                                                Value blockBase, Value slot,
                                                ChannelSpan span,
                                                ValueRange inits,
                                                ChannelChunkFn fn) const {
  // Codes [T][D*b/8]: a token's codes are one run of packing units in
  // channel order. A chunk is at most one unit (32 channels, 4*b bytes):
  // 16 channels for 8 bits (a 16-byte load), and no more than the span. At
  // most 32 values a chunk: more (a 16-byte load of 2-bit codes) made ptxas
  // spill once the query heads' products were unrolled. The groups'
  // (scale, zero) pairs are 4-byte loads, [T][D/G].
  const num::QuantSpec &spec = side.quant;
  const int64_t d = headDim, group = spec.group, bits = spec.bits;
  const int64_t rowBytes = d * bits / 8, unitBytes = 4 * bits;
  const int64_t chunk =
      std::min<int64_t>(bits == 8 ? 16 : num::kPackUnitCodes, span.count);
  // Blocks are 16-byte aligned, rows rowBytes apart, units unitBytes apart.
  const unsigned alignment = widestDividing({16, 8, 4}, {rowBytes, unitBytes});
  auto add = [&](Value x, Value y) -> Value {
    return arith::AddIOp::create(b, loc, x, y);
  };
  auto mul = [&](Value x, int64_t y) -> Value {
    return arith::MulIOp::create(b, loc, x, indexConst(b, loc, y));
  };
  auto div = [&](Value x, int64_t y) -> Value {
    return arith::DivUIOp::create(b, loc, x, indexConst(b, loc, y));
  };
  auto rem = [&](Value x, int64_t y) -> Value {
    return arith::RemUIOp::create(b, loc, x, indexConst(b, loc, y));
  };
  auto [rowBase, pairRow] = tokenAxisRows(b, loc, blockBase, slot);
  return forEachChunk(
      b, loc, span, chunk, unrolledSpan, inits,
      [&](Value firstChannel, std::optional<int64_t> offset,
          ValueRange carried) {
        Value unitBase = add(
            rowBase, mul(div(firstChannel, num::kPackUnitCodes), unitBytes));
        SmallVector<Value> codes =
            unitCodes(b, loc, unitBase, rem(firstChannel, num::kPackUnitCodes),
                      chunk, alignment);
        // Chunks never cross a group (G is a multiple of 32): one pair.
        Value pair =
            pool.loadVector(b, loc, b.getF16Type(), 2,
                            add(pairRow, mul(div(firstChannel, group), 4)), 4);
        Value scale = halfToF32(b, loc, extract(b, loc, pair, 0));
        Value zero = halfToF32(b, loc, extract(b, loc, pair, 1));
        SmallVector<Value> values;
        for (Value code : codes)
          values.push_back(dequantize(b, loc, code, scale, zero, codeToFloat));
        return fn(firstChannel, offset, values, carried);
      });
}

SmallVector<Value> PageReader::foldChannelAxisRow(OpBuilder &b, Location loc,
                                                  Value blockBase, Value slot,
                                                  ChannelSpan span,
                                                  ValueRange inits,
                                                  ChannelChunkFn fn) const {
  // Codes [T/G][D][G*b/8], channels paired: the token's code of channel c
  // is in group (slot / G, c), at the same unit and position for every c,
  // in the 16-bit half the pairing gives it. Scales and zeros [T/G][D]
  // are adjacent for adjacent channel pairs: up to two pairs' are one
  // 16-byte load.
  const num::QuantSpec &spec = side.quant;
  const int64_t d = headDim, group = spec.group;
  const int64_t groupBytes = group * spec.bits / 8;
  const int64_t chunk = widestDividing({4, 2}, {d, span.count});
  auto add = [&](Value x, Value y) -> Value {
    return arith::AddIOp::create(b, loc, x, y);
  };
  auto mul = [&](Value x, int64_t y) -> Value {
    return arith::MulIOp::create(b, loc, x, indexConst(b, loc, y));
  };
  Value tokenBlock = arith::DivUIOp::create(b, loc, slot,
                                            indexConst(b, loc, group));
  Value inGroup = arith::RemUIOp::create(b, loc, slot,
                                         indexConst(b, loc, group));
  Value firstPair = mul(tokenBlock, d);
  Value unitInGroup = mul(arith::DivUIOp::create(
                              b, loc, inGroup,
                              indexConst(b, loc, num::kPackUnitCodes)),
                          4 * spec.bits);
  Value indexInUnit = arith::RemUIOp::create(
      b, loc, inGroup, indexConst(b, loc, num::kPackUnitCodes));
  Value paramsBase = add(blockBase, indexConst(b, loc, layout.paramsOffset));
  Type f16 = b.getF16Type();
  return forEachChunk(
      b, loc, span, chunk, unrolledSpan, inits,
      [&](Value firstChannel, std::optional<int64_t> offset,
          ValueRange carried) {
        Value firstGroup = add(firstPair, firstChannel);
        // The chunk's codes (a channel pair's from one 4-byte load), then
        // its scales and zeros.
        SmallVector<Value> codes;
        if (chunk > 1) {
          for (int64_t i = 0; i < chunk; i += 2) {
            Value pairFirst = add(firstGroup, indexConst(b, loc, i));
            llvm::append_range(
                codes, channelAxisCodes(b, loc, blockBase, unitInGroup,
                                        indexInUnit, 2, [&](Value byteInGroup) {
                                          return channelPairHalf(
                                              b, loc, pairFirst,
                                              indexConst(b, loc, 0),
                                              byteInGroup, groupBytes);
                                        }));
          }
        } else {
          codes = channelAxisCodes(b, loc, blockBase, unitInGroup, indexInUnit,
                                   1, [&](Value byteInGroup) {
                                     return channelAxisHalf(
                                         b, loc, firstGroup, firstChannel,
                                         byteInGroup, groupBytes, d);
                                   });
        }
        // Chunks of 2 or 4 start at an even channel: their pairs' (scale,
        // scale, zero, zero) are one load. Single channels (an odd D) read
        // their own.
        Value params;
        if (chunk > 1)
          params = pool.loadVector(b, loc, f16, 2 * chunk,
                                   add(paramsBase, mul(firstGroup, 4)),
                                   4 * chunk);
        SmallVector<Value> values;
        for (int64_t i = 0; i < chunk; ++i) {
          Value scale, zero;
          if (chunk > 1) {
            scale = extract(b, loc, params, 4 * (i / 2) + i % 2);
            zero = extract(b, loc, params, 4 * (i / 2) + 2 + i % 2);
          } else {
            auto [scaleAt, zeroAt] =
                channelAxisParams(b, loc, firstGroup, firstChannel, d);
            scale = pool.load(b, loc, f16, add(paramsBase, scaleAt));
            zero = pool.load(b, loc, f16, add(paramsBase, zeroAt));
          }
          values.push_back(dequantize(b, loc, codes[i],
                                      halfToF32(b, loc, scale),
                                      halfToF32(b, loc, zero), codeToFloat));
        }
        return fn(firstChannel, offset, values, carried);
      });
}

SmallVector<Value> PageReader::channelAxisCodes(
    OpBuilder &b, Location loc, Value blockBase, Value unitInGroup,
    Value index, int64_t channels,
    function_ref<Value(Value)> halfOffset) const {
  // unitCodes' bit layout (b = 3: low bits in words 0-1, bit 2 of code i
  // at bit i of word 2), each field read from the 16-bit half that the
  // channel pairing put it in; a pair's two halves are one 4-byte load.
  const unsigned bits = side.quant.bits;
  const int64_t lowBits = bits == 3 ? 2 : bits, perWord = 32 / lowBits;
  Type i32 = b.getI32Type();
  auto idx = [&](int64_t v) { return indexConst(b, loc, v); };
  auto fields = [&](Value word, Value bit, int64_t width) {
    Value byteInGroup = arith::AddIOp::create(
        b, loc, arith::AddIOp::create(
                    b, loc, unitInGroup,
                    arith::MulIOp::create(b, loc, word, idx(4))),
        arith::MulIOp::create(
            b, loc, arith::DivUIOp::create(b, loc, bit, idx(16)), idx(2)));
    Value at = arith::AddIOp::create(b, loc, blockBase,
                                     halfOffset(byteInGroup));
    Value halves = channels == 2
                       ? pool.load(b, loc, i32, at)
                       : arith::ExtUIOp::create(
                             b, loc, i32, pool.load(b, loc, b.getI16Type(), at));
    Value shift = arith::IndexCastOp::create(
        b, loc, i32, arith::RemUIOp::create(b, loc, bit, idx(16)));
    Value shifted = arith::ShRUIOp::create(b, loc, halves, shift);
    SmallVector<Value> result;
    for (int64_t c = 0; c < channels; ++c)
      result.push_back(arith::AndIOp::create(
          b, loc,
          c ? arith::ShRUIOp::create(b, loc, shifted, i32Const(b, loc, 16))
            : shifted,
          i32Const(b, loc, (1 << width) - 1)));
    return result;
  };
  SmallVector<Value> codes =
      fields(arith::DivUIOp::create(b, loc, index, idx(perWord)),
             arith::MulIOp::create(
                 b, loc, arith::RemUIOp::create(b, loc, index, idx(perWord)),
                 idx(lowBits)),
             lowBits);
  if (bits == 3) {
    SmallVector<Value> planes = fields(idx(2), index, 1);
    for (auto [code, plane] : llvm::zip_equal(codes, planes))
      code = arith::OrIOp::create(
          b, loc, code, arith::ShLIOp::create(b, loc, plane, i32Const(b, loc, 2)));
  }
  return codes;
}

SmallVector<Value> PageReader::foldResidualRow(
    OpBuilder &b, Location loc, const ByteViews &residual, Value headBase,
    Value row, ChannelSpan span, ValueRange inits, ChannelChunkFn fn) const {
  Value rowBase = arith::AddIOp::create(
      b, loc, headBase,
      arith::MulIOp::create(b, loc, row, indexConst(b, loc, 2 * headDim)));
  return foldHalfRow(b, loc, residual, rowBase, headDim, span, unrolledSpan,
                     inits, fn);
}

Value mlir::kvc::loadAsF32(OpBuilder &b, Location loc, Value memref,
                          ValueRange indices) {
  Value value = memref::LoadOp::create(b, loc, memref, indices);
  if (!value.getType().isF32())
    value = arith::ExtFOp::create(b, loc, b.getF32Type(), value);
  return value;
}

PageReader::PageReader(const num::SideEncoding &side, unsigned headDim,
                       unsigned pageTokens, ByteViews pool, Value fp8Table,
                       CodeToFloat codeToFloat)
    : side(side), headDim(headDim), pageTokens(pageTokens),
      layout(num::computeBlockLayout(side, headDim, pageTokens)), pool(pool),
      fp8Table(fp8Table), codeToFloat(codeToFloat) {}

SmallVector<Value> PageReader::unitCodes(OpBuilder &b, Location loc,
                                         Value unitBase, Value position,
                                         int64_t count,
                                         unsigned alignment) const {
  // b = 2, 4, 8: codes in order, 32 / b a word. b = 3: words 0-1 hold the
  // low 2 bits of the codes (16 a word), word 2 bit 2 of code i at bit i.
  const unsigned bits = side.quant.bits;
  const int64_t lowBits = bits == 3 ? 2 : bits, perWord = 32 / lowBits;
  auto add = [&](Value x, Value y) -> Value {
    return arith::AddIOp::create(b, loc, x, y);
  };
  auto mulIndex = [&](Value x, int64_t y) -> Value {
    return arith::MulIOp::create(b, loc, x, indexConst(b, loc, y));
  };
  auto toI32 = [&](Value index) -> Value {
    return arith::IndexCastOp::create(b, loc, b.getI32Type(), index);
  };
  auto field = [&](Value word, int64_t shift, int64_t width) -> Value {
    if (shift)
      word = arith::ShRUIOp::create(b, loc, word, i32Const(b, loc, shift));
    return arith::AndIOp::create(b, loc, word,
                                 i32Const(b, loc, (1 << width) - 1));
  };
  // The low-plane words that hold the codes, shifted so that code i sits
  // at bit (i % perWord) * lowBits of words[i / perWord].
  SmallVector<Value> words;
  if (count * lowBits >= 32) {
    // Whole words from a word boundary: `position` is a multiple of them.
    int64_t wordCount = count * lowBits / 32;
    Value at = add(unitBase,
                   arith::DivUIOp::create(b, loc, mulIndex(position, lowBits),
                                          indexConst(b, loc, 8)));
    if (wordCount == 1) {
      words.push_back(pool.load(b, loc, b.getI32Type(), at));
    } else {
      Value vector =
          pool.loadVector(b, loc, b.getI32Type(), wordCount, at,
                          std::min<unsigned>(alignment, 4 * wordCount));
      for (int64_t w = 0; w < wordCount; ++w)
        words.push_back(extract(b, loc, vector, w));
    }
  } else {
    // Inside one word: load it, shift the span's first code to bit 0.
    Value wordIndex =
        arith::DivUIOp::create(b, loc, position, indexConst(b, loc, perWord));
    Value word = pool.load(b, loc, b.getI32Type(),
                           add(unitBase, mulIndex(wordIndex, 4)));
    Value shift = toI32(mulIndex(
        arith::RemUIOp::create(b, loc, position, indexConst(b, loc, perWord)),
        lowBits));
    words.push_back(arith::ShRUIOp::create(b, loc, word, shift));
  }
  Value plane;
  if (bits == 3)
    plane = arith::ShRUIOp::create(
        b, loc,
        pool.load(b, loc, b.getI32Type(), add(unitBase, indexConst(b, loc, 8))),
        toI32(position));
  SmallVector<Value> codes;
  for (int64_t i = 0; i < count; ++i) {
    Value code = field(words[i / perWord], (i % perWord) * lowBits, lowBits);
    if (bits == 3)
      code =
          arith::OrIOp::create(b, loc, code,
                               arith::ShLIOp::create(b, loc, field(plane, i, 1),
                                                     i32Const(b, loc, 2)));
    codes.push_back(code);
  }
  return codes;
}

Value SequenceSideView::pageIndex(OpBuilder &b, Location loc,
                                  Value pageSlot) const {
  return pageTable.load(
      b, loc, b.getI32Type(),
      arith::MulIOp::create(b, loc, pageSlot, indexConst(b, loc, 4)));
}

Value SequenceSideView::blockBase(OpBuilder &b, Location loc, Value head,
                                  Value page) const {
  Value poolIndex = arith::IndexCastOp::create(b, loc, b.getIndexType(), page);
  Value headInRun = arith::SubIOp::create(b, loc, head, runFirst);
  Value headOffset = arith::AddIOp::create(
      b, loc, indexConst(b, loc, runOffset),
      arith::MulIOp::create(b, loc, headInRun,
                            indexConst(b, loc, reader->getLayout().blockBytes)));
  return arith::AddIOp::create(
      b, loc,
      arith::MulIOp::create(b, loc, poolIndex, indexConst(b, loc, pageBytes)),
      headOffset);
}

std::pair<Value, Value> SequenceSideView::locate(OpBuilder &b, Location loc,
                                                 Value head,
                                                 Value token) const {
  Value tokensPerPage = indexConst(b, loc, pageTokens);
  Value pageSlot = arith::DivUIOp::create(b, loc, token, tokensPerPage);
  Value base = blockBase(b, loc, head, pageIndex(b, loc, pageSlot));
  Value slot = arith::RemUIOp::create(b, loc, token, tokensPerPage);
  return {base, slot};
}

SmallVector<Value> SequenceSideView::foldChannels(OpBuilder &b, Location loc,
                                                  Value head, Value token,
                                                  ChannelSpan span,
                                                  ValueRange inits,
                                                  ChannelChunkFn fn) const {
  Value isCompressed = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                             token, compressed);
  auto ifOp = scf::IfOp::create(b, loc, inits.getTypes(), isCompressed,
                                /*withElseRegion=*/true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    auto [blockBase, slot] = locate(b, loc, head, token);
    scf::YieldOp::create(
        b, loc,
        reader->foldCompressedRow(b, loc, blockBase, slot, span, inits, fn));
    b.setInsertionPointToStart(ifOp.elseBlock());
    Value row = arith::SubIOp::create(b, loc, token, compressed);
    Value headBase = arith::MulIOp::create(
        b, loc, head, indexConst(b, loc, residualHeadBytes));
    scf::YieldOp::create(b, loc,
                         reader->foldResidualRow(b, loc, residual, headBase,
                                                 row, span, inits, fn));
  }
  return SmallVector<Value>(ifOp.getResults());
}
