//===- PageReader.cpp - emit dequantizing reads of packed pages -----------===//

#include "PageReader.h"

#include "kvc/Numerics/Pack.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

static Value indexConst(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantIndexOp::create(b, loc, value);
}

static Value i32Const(OpBuilder &b, Location loc, int32_t value) {
  return arith::ConstantIntOp::create(b, loc, value, 32);
}

Value ByteViews::load(OpBuilder &b, Location loc, Type type,
                      Value byteOffset) const {
  Value offset = arith::IndexCastOp::create(b, loc, b.getI64Type(), byteOffset);
  Value address = LLVM::GEPOp::create(b, loc, base.getType(), b.getI8Type(),
                                      base, ValueRange{offset});
  return LLVM::LoadOp::create(b, loc, type, address,
                              type.getIntOrFloatBitWidth() / 8);
}

Value ByteViews::loadVector(OpBuilder &b, Location loc, Type element,
                            int64_t count, Value byteOffset,
                            unsigned alignment) const {
  Value offset = arith::IndexCastOp::create(b, loc, b.getI64Type(), byteOffset);
  Value address = LLVM::GEPOp::create(b, loc, base.getType(), b.getI8Type(),
                                      base, ValueRange{offset});
  return LLVM::LoadOp::create(b, loc, VectorType::get({count}, element),
                              address, alignment);
}

/// Element `position` of an LLVM-compatible vector.
static Value extract(OpBuilder &b, Location loc, Value vector,
                     int64_t position) {
  Value index = LLVM::ConstantOp::create(b, loc, b.getI32Type(),
                                         b.getI32IntegerAttr(position));
  return LLVM::ExtractElementOp::create(b, loc, vector, index);
}

/// for c0 in [0, headDim) step chunk, carrying `inits`; `body` builds the
/// yields with `b` placed in the loop body.
static SmallVector<Value>
forEachChunk(OpBuilder &b, Location loc, int64_t headDim, int64_t chunk,
             ValueRange inits,
             function_ref<SmallVector<Value>(Value, ValueRange)> body) {
  auto loop = scf::ForOp::create(
      b, loc, indexConst(b, loc, 0), indexConst(b, loc, headDim),
      indexConst(b, loc, chunk), inits,
      [&](OpBuilder &nb, Location, Value firstChannel, ValueRange carried) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        scf::YieldOp::create(b, loc, body(firstChannel, carried));
      });
  return SmallVector<Value>(loop.getResults());
}

/// Code `index` (0..31) of a packing unit whose words are `words` (layout.md,
/// section 2), as an i32: the word/plane arithmetic of readCode with
/// constant positions.
static Value codeFromWords(OpBuilder &b, Location loc, ArrayRef<Value> words,
                           unsigned bits, unsigned index) {
  unsigned lowBits = bits == 3 ? 2 : bits;
  unsigned perWord = 32 / lowBits;
  Value code = arith::AndIOp::create(
      b, loc,
      arith::ShRUIOp::create(b, loc, words[index / perWord],
                             i32Const(b, loc, (index % perWord) * lowBits)),
      i32Const(b, loc, (1 << lowBits) - 1));
  if (bits != 3)
    return code;
  Value high = arith::AndIOp::create(
      b, loc, arith::ShRUIOp::create(b, loc, words[2], i32Const(b, loc, index)),
      i32Const(b, loc, 1));
  return arith::OrIOp::create(
      b, loc, code, arith::ShLIOp::create(b, loc, high, i32Const(b, loc, 2)));
}

/// float(code) * scale + zero: two roundings, never fused (the numerics
/// library's dequantization).
static Value dequantize(OpBuilder &b, Location loc, Value code, Value scale,
                        Value zero) {
  Value value = arith::UIToFPOp::create(b, loc, b.getF32Type(), code);
  return arith::AddFOp::create(
      b, loc, arith::MulFOp::create(b, loc, value, scale), zero);
}

static Value halfToF32(OpBuilder &b, Location loc, Value half) {
  return arith::ExtFOp::create(b, loc, b.getF32Type(), half);
}

/// Folds over a row of D fp16 values at byte `rowBase` of `views`: 16-byte
/// loads of 8 channels when D allows (rows start 16-byte aligned then), else
/// one 2-byte load per channel.
static SmallVector<Value> foldHalfRow(OpBuilder &b, Location loc,
                                      const ByteViews &views, Value rowBase,
                                      int64_t headDim, ValueRange inits,
                                      ChannelChunkFn fn) {
  int64_t chunk = headDim % 8 == 0 ? 8 : 1;
  return forEachChunk(
      b, loc, headDim, chunk, inits,
      [&](Value firstChannel, ValueRange carried) {
        Value at = arith::AddIOp::create(
            b, loc, rowBase,
            arith::MulIOp::create(b, loc, firstChannel,
                                  indexConst(b, loc, 2)));
        SmallVector<Value> values;
        if (chunk == 1) {
          values.push_back(halfToF32(b, loc, views.load(b, loc, b.getF16Type(),
                                                        at)));
        } else {
          Value halves = views.loadVector(b, loc, b.getF16Type(), chunk, at, 16);
          for (int64_t i = 0; i < chunk; ++i)
            values.push_back(halfToF32(b, loc, extract(b, loc, halves, i)));
        }
        return fn(firstChannel, values, carried);
      });
}

SmallVector<Value> PageReader::foldCompressedRow(OpBuilder &b, Location loc,
                                                 Value blockBase, Value slot,
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
    return foldHalfRow(b, loc, pool, add(blockBase, mul(slot, 2 * d)), d,
                       inits, fn);
  case num::SideEncoding::Kind::FP8: {
    // Codes [T][D] bytes (16 per load when D allows), the row's fp16 scale.
    Value rowBase = add(blockBase, mul(slot, d));
    Value scale = readHalf(
        b, loc, pool,
        add(add(blockBase, indexConst(b, loc, layout.paramsOffset)),
            mul(slot, 2)));
    int64_t chunk = d % 16 == 0 ? 16 : 1;
    return forEachChunk(
        b, loc, d, chunk, inits, [&](Value firstChannel, ValueRange carried) {
          Value at = add(rowBase, firstChannel);
          SmallVector<Value> codes;
          if (chunk == 1) {
            codes.push_back(pool.load(b, loc, b.getI8Type(), at));
          } else {
            Value bytes = pool.loadVector(b, loc, b.getI8Type(), chunk, at, 16);
            for (int64_t i = 0; i < chunk; ++i)
              codes.push_back(extract(b, loc, bytes, i));
          }
          SmallVector<Value> values;
          for (Value code : codes) {
            Value tableIndex =
                arith::IndexCastUIOp::create(b, loc, b.getIndexType(), code);
            Value value = memref::LoadOp::create(b, loc, fp8Table, tableIndex);
            values.push_back(arith::MulFOp::create(b, loc, value, scale));
          }
          return fn(firstChannel, values, carried);
        });
  }
  case num::SideEncoding::Kind::Quant:
    break;
  }
  if (side.quant.axis == num::QuantAxis::Channel)
    return foldChannelAxisRow(b, loc, blockBase, slot, inits, fn);
  return foldTokenAxisRow(b, loc, blockBase, slot, inits, fn);
}

SmallVector<Value> PageReader::foldTokenAxisRow(OpBuilder &b, Location loc,
                                                Value blockBase, Value slot,
                                                ValueRange inits,
                                                ChannelChunkFn fn) const {
  // Codes [T][D*b/8]: a token's codes are one run of packing units in
  // channel order. A chunk is one unit (32 channels, 4*b bytes) in one load
  // aligned to its size when that is 8 or 16 bytes (b = 2, 4); 8-bit units
  // are two 16-byte chunks of 16 channels; 3-bit units (12 bytes) are three
  // 4-byte words. At most 32 values a chunk: more (a 16-byte load of 2-bit
  // codes) made ptxas spill once the query heads' products were unrolled.
  // The groups' (scale, zero) pairs are 4-byte loads, [T][D/G].
  const num::QuantSpec &spec = side.quant;
  const int64_t d = headDim, group = spec.group, bits = spec.bits;
  const int64_t rowBytes = d * bits / 8;
  int64_t chunk = num::kPackUnitCodes, words = bits;
  unsigned alignment = 4;
  if (bits == 8 && rowBytes % 16 == 0) {
    chunk = 16;
    words = 4;
    alignment = 16;
  } else if (bits != 3 && rowBytes % std::min<int64_t>(4 * bits, 16) == 0) {
    // Blocks are only 16-byte aligned.
    alignment = std::min<int64_t>(4 * bits, 16);
  }
  auto add = [&](Value x, Value y) -> Value {
    return arith::AddIOp::create(b, loc, x, y);
  };
  auto mul = [&](Value x, int64_t y) -> Value {
    return arith::MulIOp::create(b, loc, x, indexConst(b, loc, y));
  };
  Value rowBase = add(blockBase, mul(slot, rowBytes));
  Value pairRow = add(add(blockBase, indexConst(b, loc, layout.paramsOffset)),
                      mul(slot, d / group * 4));
  return forEachChunk(
      b, loc, d, chunk, inits, [&](Value firstChannel, ValueRange carried) {
        Value codeWords = pool.loadVector(
            b, loc, b.getI32Type(), words,
            add(rowBase, arith::DivUIOp::create(
                             b, loc, mul(firstChannel, bits),
                             indexConst(b, loc, 8))),
            alignment);
        SmallVector<Value> wordValues;
        for (int64_t w = 0; w < words; ++w)
          wordValues.push_back(extract(b, loc, codeWords, w));
        // Chunks never cross a group (G is a multiple of 32): one pair.
        Value groupIndex = arith::DivUIOp::create(b, loc, firstChannel,
                                                  indexConst(b, loc, group));
        Value pair = pool.loadVector(b, loc, b.getF16Type(), 2,
                                     add(pairRow, mul(groupIndex, 4)), 4);
        Value scale = halfToF32(b, loc, extract(b, loc, pair, 0));
        Value zero = halfToF32(b, loc, extract(b, loc, pair, 1));
        SmallVector<Value> values;
        for (int64_t i = 0; i < chunk; ++i) {
          // 8-bit chunks are half a unit: word i / 4 from the chunk's start.
          Value code = codeFromWords(b, loc, wordValues, bits, i);
          values.push_back(dequantize(b, loc, code, scale, zero));
        }
        return fn(firstChannel, values, carried);
      });
}

SmallVector<Value> PageReader::foldChannelAxisRow(OpBuilder &b, Location loc,
                                                  Value blockBase, Value slot,
                                                  ValueRange inits,
                                                  ChannelChunkFn fn) const {
  // Codes [T/G][D][G*b/8]: the token's code of channel c is in group
  // (slot / G, c), at the same unit and position for every c. Pairs
  // [T/G][D] are adjacent for adjacent channels: four of them are one
  // 16-byte load.
  const num::QuantSpec &spec = side.quant;
  const int64_t d = headDim, group = spec.group;
  const int64_t groupBytes = group * spec.bits / 8;
  const int64_t chunk = d % 4 == 0 ? 4 : 1;
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
  return forEachChunk(
      b, loc, d, chunk, inits, [&](Value firstChannel, ValueRange carried) {
        Value pair = add(firstPair, firstChannel);
        Value params = pool.loadVector(b, loc, b.getF16Type(), 2 * chunk,
                                       add(paramsBase, mul(pair, 4)),
                                       chunk == 4 ? 16 : 4);
        SmallVector<Value> values;
        for (int64_t i = 0; i < chunk; ++i) {
          Value unitBase =
              add(add(blockBase, mul(add(pair, indexConst(b, loc, i)),
                                     groupBytes)),
                  unitInGroup);
          Value code = readCode(b, loc, unitBase, indexInUnit);
          values.push_back(dequantize(
              b, loc, code, halfToF32(b, loc, extract(b, loc, params, 2 * i)),
              halfToF32(b, loc, extract(b, loc, params, 2 * i + 1))));
        }
        return fn(firstChannel, values, carried);
      });
}

SmallVector<Value> PageReader::foldResidualRow(OpBuilder &b, Location loc,
                                               const ByteViews &residual,
                                               Value headBase, Value row,
                                               ValueRange inits,
                                               ChannelChunkFn fn) const {
  Value rowBase = arith::AddIOp::create(
      b, loc, headBase,
      arith::MulIOp::create(b, loc, row, indexConst(b, loc, 2 * headDim)));
  return foldHalfRow(b, loc, residual, rowBase, headDim, inits, fn);
}

Value mlir::kvc::loadAsF32(OpBuilder &b, Location loc, Value memref,
                          ValueRange indices) {
  Value value = memref::LoadOp::create(b, loc, memref, indices);
  if (!value.getType().isF32())
    value = arith::ExtFOp::create(b, loc, b.getF32Type(), value);
  return value;
}

PageReader::PageReader(const num::SideEncoding &side, unsigned headDim,
                       unsigned pageTokens, ByteViews pool, Value fp8Table)
    : side(side), headDim(headDim), pageTokens(pageTokens),
      layout(num::computeBlockLayout(side, headDim, pageTokens)), pool(pool),
      fp8Table(fp8Table) {}

Value PageReader::readHalf(OpBuilder &b, Location loc, const ByteViews &views,
                           Value byteOffset) const {
  Value half = views.load(b, loc, b.getF16Type(), byteOffset);
  return arith::ExtFOp::create(b, loc, b.getF32Type(), half);
}

/// Extracts code `indexInUnit` (an index < 32) from the 32-code packing
/// unit at byte `unitBase` (layout.md, section 2), as an i32.
Value PageReader::readCode(OpBuilder &b, Location loc, Value unitBase,
                           Value indexInUnit) const {
  unsigned bits = side.quant.bits;
  if (bits == 8) {
    Value byte = pool.load(b, loc, b.getI8Type(),
                           arith::AddIOp::create(b, loc, unitBase, indexInUnit));
    return arith::ExtUIOp::create(b, loc, b.getI32Type(), byte);
  }
  // Codes per 32-bit word in the low planes: 16 for 2 and 3 bits, 8 for 4.
  unsigned lowBits = bits == 4 ? 4 : 2;
  unsigned perWord = 32 / lowBits;
  auto loadWord = [&](Value wordInUnit) -> Value {
    Value byteOffset = arith::AddIOp::create(
        b, loc, unitBase,
        arith::MulIOp::create(b, loc, wordInUnit, indexConst(b, loc, 4)));
    return pool.load(b, loc, b.getI32Type(), byteOffset);
  };
  auto toI32 = [&](Value index) -> Value {
    return arith::IndexCastOp::create(b, loc, b.getI32Type(), index);
  };
  Value word =
      loadWord(arith::DivUIOp::create(b, loc, indexInUnit,
                                      indexConst(b, loc, perWord)));
  Value shift = arith::MulIOp::create(
      b, loc,
      toI32(arith::RemUIOp::create(b, loc, indexInUnit,
                                   indexConst(b, loc, perWord))),
      i32Const(b, loc, lowBits));
  Value code = arith::AndIOp::create(
      b, loc, arith::ShRUIOp::create(b, loc, word, shift),
      i32Const(b, loc, (1 << lowBits) - 1));
  if (bits != 3)
    return code;
  // 3 bits: word 2 of the unit holds bit 2 of code i at bit i.
  Value plane = loadWord(indexConst(b, loc, 2));
  Value high = arith::AndIOp::create(
      b, loc, arith::ShRUIOp::create(b, loc, plane, toI32(indexInUnit)),
      i32Const(b, loc, 1));
  return arith::OrIOp::create(
      b, loc, code, arith::ShLIOp::create(b, loc, high, i32Const(b, loc, 2)));
}

Value PageReader::readCompressed(OpBuilder &b, Location loc, Value blockBase,
                                 Value slot, Value channel) const {
  Value d = indexConst(b, loc, headDim);
  Value paramsBase = arith::AddIOp::create(
      b, loc, blockBase, indexConst(b, loc, layout.paramsOffset));
  auto add = [&](Value x, Value y) -> Value {
    return arith::AddIOp::create(b, loc, x, y);
  };
  auto mul = [&](Value x, int64_t y) -> Value {
    return arith::MulIOp::create(b, loc, x, indexConst(b, loc, y));
  };

  switch (side.kind) {
  case num::SideEncoding::Kind::Plain:
    // [T][D] fp16.
    return readHalf(b, loc, pool,
                    add(blockBase, mul(add(mul(slot, headDim), channel), 2)));
  case num::SideEncoding::Kind::FP8: {
    // Codes [T][D] bytes, fp16 scales [T].
    Value code = pool.load(b, loc, b.getI8Type(),
                           add(blockBase, add(mul(slot, headDim), channel)));
    Value tableIndex = arith::IndexCastUIOp::create(b, loc, b.getIndexType(),
                                                    code);
    Value value = memref::LoadOp::create(b, loc, fp8Table, tableIndex);
    Value scale = readHalf(b, loc, pool, add(paramsBase, mul(slot, 2)));
    return arith::MulFOp::create(b, loc, value, scale);
  }
  case num::SideEncoding::Kind::Quant:
    break;
  }

  const num::QuantSpec &spec = side.quant;
  int64_t group = spec.group, groupBytes = int64_t(spec.group) * spec.bits / 8;
  Value groupBase, pairIndex, inGroup;
  if (spec.axis == num::QuantAxis::Channel) {
    // Group (tb, d) covers tokens tb*G.. of channel d.
    Value tokenBlock = arith::DivUIOp::create(b, loc, slot,
                                              indexConst(b, loc, group));
    pairIndex = add(arith::MulIOp::create(b, loc, tokenBlock, d), channel);
    groupBase = add(blockBase, mul(pairIndex, groupBytes));
    inGroup = arith::RemUIOp::create(b, loc, slot, indexConst(b, loc, group));
  } else {
    // Group (t, g) covers channels g*G.. of token t.
    Value g = arith::DivUIOp::create(b, loc, channel,
                                     indexConst(b, loc, group));
    pairIndex = add(mul(slot, headDim / group), g);
    groupBase = add(blockBase, add(mul(slot, int64_t(headDim) * spec.bits / 8),
                                   mul(g, groupBytes)));
    inGroup = arith::RemUIOp::create(b, loc, channel,
                                     indexConst(b, loc, group));
  }
  Value unitBase = add(groupBase,
                       mul(arith::DivUIOp::create(b, loc, inGroup,
                                                  indexConst(b, loc, 32)),
                           4 * spec.bits));
  Value code = readCode(
      b, loc, unitBase,
      arith::RemUIOp::create(b, loc, inGroup, indexConst(b, loc, 32)));
  // The group's (scale, zero): one 4-byte load.
  Value pair = pool.loadVector(b, loc, b.getF16Type(), 2,
                               add(paramsBase, mul(pairIndex, 4)), 4);
  return dequantize(b, loc, code, halfToF32(b, loc, extract(b, loc, pair, 0)),
                    halfToF32(b, loc, extract(b, loc, pair, 1)));
}

Value PageReader::readResidual(OpBuilder &b, Location loc,
                               const ByteViews &residual, Value headBase,
                               Value row, Value channel) const {
  Value element = arith::AddIOp::create(
      b, loc,
      arith::MulIOp::create(b, loc, row, indexConst(b, loc, headDim)),
      channel);
  Value byteOffset = arith::AddIOp::create(
      b, loc, headBase,
      arith::MulIOp::create(b, loc, element, indexConst(b, loc, 2)));
  return readHalf(b, loc, residual, byteOffset);
}

std::pair<Value, Value> SequenceSideView::locate(OpBuilder &b, Location loc,
                                                 Value head,
                                                 Value token) const {
  Value tokensPerPage = indexConst(b, loc, pageTokens);
  Value pageSlot = arith::DivUIOp::create(b, loc, token, tokensPerPage);
  Value page = pageTable.load(
      b, loc, b.getI32Type(),
      arith::MulIOp::create(b, loc, pageSlot, indexConst(b, loc, 4)));
  Value pageIndex = arith::IndexCastOp::create(b, loc, b.getIndexType(), page);
  Value headInRun = arith::SubIOp::create(b, loc, head, runFirst);
  Value headOffset = arith::AddIOp::create(
      b, loc, indexConst(b, loc, runOffset),
      arith::MulIOp::create(b, loc, headInRun,
                            indexConst(b, loc, reader->getLayout().blockBytes)));
  Value blockBase = arith::AddIOp::create(
      b, loc,
      arith::MulIOp::create(b, loc, pageIndex, indexConst(b, loc, pageBytes)),
      headOffset);
  Value slot = arith::RemUIOp::create(b, loc, token, tokensPerPage);
  return {blockBase, slot};
}

Value SequenceSideView::read(OpBuilder &b, Location loc, Value head,
                             Value token, Value channel) const {
  Value isCompressed = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                             token, compressed);
  auto ifOp = scf::IfOp::create(
      b, loc, isCompressed,
      [&](OpBuilder &tb, Location tloc) {
        auto [blockBase, slot] = locate(tb, tloc, head, token);
        scf::YieldOp::create(
            tb, tloc, reader->readCompressed(tb, tloc, blockBase, slot, channel));
      },
      [&](OpBuilder &eb, Location eloc) {
        Value row = arith::SubIOp::create(eb, eloc, token, compressed);
        Value headBase = arith::MulIOp::create(
            eb, eloc, head, indexConst(eb, eloc, residualHeadBytes));
        scf::YieldOp::create(
            eb, eloc,
            reader->readResidual(eb, eloc, residual, headBase, row, channel));
      });
  return ifOp.getResult(0);
}

SmallVector<Value> SequenceSideView::foldChannels(OpBuilder &b, Location loc,
                                                  Value head, Value token,
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
        b, loc, reader->foldCompressedRow(b, loc, blockBase, slot, inits, fn));
    b.setInsertionPointToStart(ifOp.elseBlock());
    Value row = arith::SubIOp::create(b, loc, token, compressed);
    Value headBase = arith::MulIOp::create(
        b, loc, head, indexConst(b, loc, residualHeadBytes));
    scf::YieldOp::create(b, loc,
                         reader->foldResidualRow(b, loc, residual, headBase,
                                                 row, inits, fn));
  }
  return SmallVector<Value>(ifOp.getResults());
}
