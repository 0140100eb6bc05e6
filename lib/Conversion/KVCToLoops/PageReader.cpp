//===- PageReader.cpp - emit dequantizing reads of packed pages -----------===//

#include "PageReader.h"

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
  Value pairBase = add(paramsBase, mul(pairIndex, 4));
  Value scale = readHalf(b, loc, pool, pairBase);
  Value zero = readHalf(b, loc, pool, add(pairBase, indexConst(b, loc, 2)));
  // deq = float(code) * scale + zero: two roundings, never fused.
  Value value = arith::UIToFPOp::create(b, loc, b.getF32Type(), code);
  return arith::AddFOp::create(
      b, loc, arith::MulFOp::create(b, loc, value, scale), zero);
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

Value SequenceSideView::read(OpBuilder &b, Location loc, Value head,
                             Value token, Value channel) const {
  Value isCompressed = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                             token, compressed);
  auto ifOp = scf::IfOp::create(
      b, loc, isCompressed,
      [&](OpBuilder &tb, Location tloc) {
        Value tokensPerPage = indexConst(tb, tloc, pageTokens);
        Value pageSlot = arith::DivUIOp::create(tb, tloc, token, tokensPerPage);
        Value page = pageTable.load(
            tb, tloc, tb.getI32Type(),
            arith::MulIOp::create(tb, tloc, pageSlot, indexConst(tb, tloc, 4)));
        Value pageIndex =
            arith::IndexCastOp::create(tb, tloc, tb.getIndexType(), page);
        Value headInRun = arith::SubIOp::create(tb, tloc, head, runFirst);
        Value headOffset = arith::AddIOp::create(
            tb, tloc, indexConst(tb, tloc, runOffset),
            arith::MulIOp::create(
                tb, tloc, headInRun,
                indexConst(tb, tloc, reader->getLayout().blockBytes)));
        Value blockBase = arith::AddIOp::create(
            tb, tloc,
            arith::MulIOp::create(tb, tloc, pageIndex,
                                  indexConst(tb, tloc, pageBytes)),
            headOffset);
        Value slot = arith::RemUIOp::create(tb, tloc, token, tokensPerPage);
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
