//===- AppendWriter.cpp - emit the writes of a reserved append ------------===//
//
// Addresses follow docs/layout.md (version 2): a page block holds the
// matrix form of its T tokens, codes then (scale, zero) pairs, token-major,
// so the group of token-axis row t, channels [gG, (g+1)G), has its codes at
// t * D * b / 8 + g * G * b / 8 and its pair at t * D / G + g; the group
// of channel-axis tokens [sG, (s+1)G) and channel c is group s * D + c,
// its words split into 16-bit halves among its channel pair's
// (channelAxisHalf) and its scale and zero beside the pair's
// (channelAxisParams). fp8 rows are D code bytes at t * D and an fp16
// scale at 2t of the params; fp16 rows 2D bytes.
//
//===----------------------------------------------------------------------===//

#include "AppendWriter.h"
#include "GroupQuantizer.h"

#include "kvc/Numerics/Cache.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

namespace {
/// Index arithmetic at one point.
struct IndexMath {
  OpBuilder &b;
  Location loc;

  Value c(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value mul(Value x, int64_t y) {
    return arith::MulIOp::create(b, loc, x, c(y));
  }
  Value div(Value x, int64_t y) {
    return arith::DivUIOp::create(b, loc, x, c(y));
  }
  Value rem(Value x, int64_t y) {
    return arith::RemUIOp::create(b, loc, x, c(y));
  }
  Value ult(Value x, Value y) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, x, y);
  }
};
} // namespace

AppendTarget mlir::kvc::loadAppendTarget(OpBuilder &b, Location loc,
                                         const ByteViews &records, Value entry,
                                         bool value, ByteViews pool,
                                         unsigned addressSpace) {
  IndexMath m{b, loc};
  // kvc_rt_gpu_append: page_table, k_residual, v_residual (u64), n1, c(n1),
  // n0, c(n0) (u32).
  Value base = m.mul(entry, kAppendRecordBytes);
  auto pointer = [&](int64_t offset) {
    Value address =
        records.load(b, loc, b.getI64Type(), m.add(base, m.c(offset)));
    return LLVM::IntToPtrOp::create(
        b, loc, LLVM::LLVMPointerType::get(b.getContext(), addressSpace),
        address);
  };
  auto count = [&](int64_t offset) -> Value {
    Value n = records.load(b, loc, b.getI32Type(), m.add(base, m.c(offset)));
    return arith::IndexCastUIOp::create(b, loc, b.getIndexType(), n);
  };
  AppendTarget t;
  t.pool = pool;
  t.pageTable = ByteViews{pointer(0)};
  t.residual = ByteViews{pointer(value ? 16 : 8)};
  t.newTokens = count(24);
  t.newCompressed = count(28);
  t.oldTokens = count(32);
  t.oldCompressed = count(36);
  return t;
}

AppendWriter::AppendWriter(OpBuilder &b, Location loc, bool value,
                           const CachePageLayout &pages, unsigned runFirst,
                           unsigned headDim, unsigned pageTokens,
                           uint64_t residualHeadBytes)
    : side(value ? pages.heads[runFirst].encoding.value
                 : pages.heads[runFirst].encoding.key),
      headDim(headDim), pageTokens(pageTokens),
      layout(num::computeBlockLayout(side, headDim, pageTokens)),
      pageBytes(value ? pages.vPageBytes : pages.kPageBytes),
      runOffset(value ? pages.heads[runFirst].vOffset
                      : pages.heads[runFirst].kOffset),
      runFirst(arith::ConstantIndexOp::create(b, loc, runFirst)),
      residualHeadBytes(residualHeadBytes) {}

Value AppendWriter::flushItems(OpBuilder &b, Location loc,
                               const AppendTarget &t) const {
  IndexMath m{b, loc};
  Value tokens = m.sub(t.newCompressed, t.oldCompressed);
  if (side.isFP8())
    return tokens; // a row a token (one fp16 scale)
  if (!side.isQuant())
    return m.mul(tokens, headDim);
  const num::QuantSpec &q = side.quant;
  if (q.axis == num::QuantAxis::Token)
    return m.mul(tokens, headDim / q.group);
  // Flushes start and end on multiples of R, hence of the group.
  return m.mul(m.div(tokens, q.group), headDim);
}

Value AppendWriter::flushElement(OpBuilder &b, Location loc,
                                 const AppendTarget &t, Value head, Value token,
                                 Value channel, AppendInputFn input) const {
  IndexMath m{b, loc};
  auto staged = scf::IfOp::create(b, loc, TypeRange{b.getF32Type()},
                                  m.ult(token, t.oldTokens),
                                  /*withElseRegion=*/true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&staged.getThenRegion().front());
    // Staged rows start at the old compressed count.
    Value row = m.sub(token, t.oldCompressed);
    Value byte = m.add(m.mul(head, residualHeadBytes),
                       m.mul(m.add(m.mul(row, headDim), channel), 2));
    Value half = t.residual.load(b, loc, b.getF16Type(), byte);
    scf::YieldOp::create(
        b, loc,
        ValueRange{arith::ExtFOp::create(b, loc, b.getF32Type(), half)});
    b.setInsertionPointToStart(&staged.getElseRegion().front());
    Value x = input(head, m.sub(token, t.oldTokens), channel);
    scf::YieldOp::create(b, loc, ValueRange{roundToHalf(b, loc, x)});
  }
  return staged.getResult(0);
}

void AppendWriter::emitFlushItem(OpBuilder &b, Location loc,
                                 const AppendTarget &t, Value head, Value item,
                                 AppendInputFn input) const {
  IndexMath m{b, loc};
  const int64_t d = headDim;
  // The item's first token and, for fp16 and token-axis groups, its first
  // channel.
  Value token, channel;
  if (side.isFP8()) {
    token = m.add(t.oldCompressed, item);
    channel = m.c(0);
  } else if (!side.isQuant()) {
    token = m.add(t.oldCompressed, m.div(item, d));
    channel = m.rem(item, d);
  } else if (side.quant.axis == num::QuantAxis::Token) {
    const int64_t perRow = d / side.quant.group;
    token = m.add(t.oldCompressed, m.div(item, perRow));
    channel = m.mul(m.rem(item, perRow), side.quant.group);
  } else {
    token = m.add(t.oldCompressed, m.mul(m.div(item, d), side.quant.group));
    channel = m.rem(item, d);
  }
  Value page = t.pageTable.load(b, loc, b.getI32Type(),
                                m.mul(m.div(token, pageTokens), 4));
  Value live =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, page,
                            arith::ConstantIntOp::create(b, loc, 0, 32));
  scf::IfOp::create(b, loc, live, [&](OpBuilder &nb, Location) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
    Value blockBase = m.add(
        m.mul(arith::IndexCastOp::create(b, loc, b.getIndexType(), page),
              pageBytes),
        m.add(m.c(runOffset), m.mul(m.sub(head, runFirst), layout.blockBytes)));
    Value slot = m.rem(token, pageTokens);
    if (side.isFP8()) {
      // Codes [T][D] bytes, then one fp16 scale per token.
      Value codes =
          m.add(blockBase, m.add(m.c(layout.codesOffset), m.mul(slot, d)));
      Value scale =
          FP8Quantizer(side.fp8, headDim)
              .emit(
                  b, loc,
                  [&](Value c) {
                    return flushElement(b, loc, t, head, token, c, input);
                  },
                  [&](Value c, Value code) {
                    t.pool.store(b, loc, code, m.add(codes, c));
                  });
      t.pool.store(
          b, loc, scale,
          m.add(blockBase, m.add(m.c(layout.paramsOffset), m.mul(slot, 2))));
      scf::YieldOp::create(b, loc);
      return;
    }
    if (!side.isQuant()) {
      Value x = flushElement(b, loc, t, head, token, channel, input);
      t.pool.store(b, loc, arith::TruncFOp::create(b, loc, b.getF16Type(), x),
                   m.add(blockBase, m.mul(m.add(m.mul(slot, d), channel), 2)));
      scf::YieldOp::create(b, loc);
      return;
    }
    const num::QuantSpec &q = side.quant;
    const int64_t groupCodeBytes = int64_t(q.group) * q.bits / 8;
    Value codes, pair;
    std::function<Value(Value)> read;
    if (q.axis == num::QuantAxis::Token) {
      const int64_t perRow = d / q.group;
      Value group = m.div(channel, q.group);
      codes = m.add(m.mul(slot, d * q.bits / 8), m.mul(group, groupCodeBytes));
      pair = m.add(m.mul(slot, perRow), group);
      read = [&, token, channel](Value i) {
        return flushElement(b, loc, t, head, token, m.add(channel, i), input);
      };
    } else {
      // Channel pairs: each word's halves go to the pair's words of low and
      // of high halves, the scale and zero beside the partner's.
      Value rowBlock = m.div(slot, q.group);
      Value groupIndex = m.add(m.mul(rowBlock, d), channel);
      Value codesBase = m.add(blockBase, m.c(layout.codesOffset));
      Value paramsBase = m.add(blockBase, m.c(layout.paramsOffset));
      auto [scale, zero] =
          GroupQuantizer(q.bits, q.group)
              .emit(
                  b, loc,
                  [&, token, channel](Value i) {
                    return flushElement(b, loc, t, head, m.add(token, i),
                                        channel, input);
                  },
                  [&](Value word, Value bits) {
                    Type i16 = b.getI16Type();
                    for (int64_t half = 0; half < 2; ++half) {
                      Value halfBits =
                          half ? arith::ShRUIOp::create(
                                     b, loc, bits,
                                     i32Const(b, loc, 16))
                               : bits;
                      t.pool.store(
                          b, loc, arith::TruncIOp::create(b, loc, i16, halfBits),
                          m.add(codesBase,
                                channelAxisHalf(b, loc, groupIndex, channel,
                                                m.add(m.mul(word, 4),
                                                      m.c(2 * half)),
                                                groupCodeBytes, d)));
                    }
                  });
      auto [scaleAt, zeroAt] =
          channelAxisParams(b, loc, groupIndex, channel, d);
      t.pool.store(b, loc, scale, m.add(paramsBase, scaleAt));
      t.pool.store(b, loc, zero, m.add(paramsBase, zeroAt));
      scf::YieldOp::create(b, loc);
      return;
    }
    Value codesBase = m.add(blockBase, m.c(layout.codesOffset));
    codesBase = m.add(codesBase, codes);
    // Group code bytes are a multiple of 4 (groups of 32k codes), so words
    // are aligned.
    auto [scale, zero] =
        GroupQuantizer(q.bits, q.group)
            .emit(b, loc, read, [&](Value word, Value bits) {
              t.pool.store(b, loc, bits, m.add(codesBase, m.mul(word, 4)));
            });
    Value pairBase =
        m.add(blockBase, m.add(m.c(layout.paramsOffset), m.mul(pair, 4)));
    t.pool.store(b, loc, scale, pairBase);
    t.pool.store(b, loc, zero, m.add(pairBase, m.c(2)));
    scf::YieldOp::create(b, loc);
  });
}

Value AppendWriter::stageItems(OpBuilder &b, Location loc,
                               const AppendTarget &t) const {
  IndexMath m{b, loc};
  Value first = arith::MaxUIOp::create(b, loc, t.newCompressed, t.oldTokens);
  return m.mul(m.sub(t.newTokens, first), headDim);
}

void AppendWriter::emitStageItem(OpBuilder &b, Location loc,
                                 const AppendTarget &t, Value head, Value item,
                                 AppendInputFn input) const {
  IndexMath m{b, loc};
  Value first = arith::MaxUIOp::create(b, loc, t.newCompressed, t.oldTokens);
  Value token = m.add(first, m.div(item, headDim));
  Value channel = m.rem(item, headDim);
  Value x = input(head, m.sub(token, t.oldTokens), channel);
  Value row = m.sub(token, t.newCompressed);
  Value byte = m.add(m.mul(head, residualHeadBytes),
                     m.mul(m.add(m.mul(row, headDim), channel), 2));
  t.residual.store(b, loc, arith::TruncFOp::create(b, loc, b.getF16Type(), x),
                   byte);
}
