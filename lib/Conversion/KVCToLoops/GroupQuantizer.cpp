//===- GroupQuantizer.cpp - emit the numerics library's quantizer ---------===//
//
// Every step mirrors lib/Numerics/Quantize.cpp, one IEEE fp32 operation for
// each of its operations (no fused multiply-add, no reassociation), so the
// generated code and the library agree bit for bit.
//
//===----------------------------------------------------------------------===//

#include "GroupQuantizer.h"
#include "PageReader.h"

#include "kvc/Numerics/FP8.h"
#include "kvc/Numerics/Half.h"
#include "kvc/Numerics/Pack.h"
#include "kvc/Numerics/Quantize.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <limits>

using namespace mlir;
using namespace mlir::kvc;
namespace num = ::kvc::numerics;

namespace {
struct Emitter {
  OpBuilder &b;
  Location loc;

  Value f32(double v) {
    return arith::ConstantFloatOp::create(b, loc, b.getF32Type(),
                                          APFloat(float(v)));
  }
  Value i32(int32_t v) { return arith::ConstantIntOp::create(b, loc, v, 32); }
  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value cmp(arith::CmpFPredicate p, Value x, Value y) {
    return arith::CmpFOp::create(b, loc, p, x, y);
  }
  Value select(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, loc, c, x, y);
  }
  Value isInf(Value x) {
    return cmp(arith::CmpFPredicate::OEQ, math::AbsFOp::create(b, loc, x),
               f32(std::numeric_limits<double>::infinity()));
  }

  /// saturateToHalfRange: finite values beyond +-65504 clamp, infinities
  /// and NaN stay, -0 becomes +0 (x + 0 rounds -0 to +0 and changes
  /// nothing else).
  Value saturate(Value x) {
    Value clamped = arith::MinimumFOp::create(
        b, loc, arith::MaximumFOp::create(b, loc, x, f32(-num::kHalfMax)),
        f32(num::kHalfMax));
    return arith::AddFOp::create(b, loc, select(isInf(x), x, clamped),
                                 f32(0.0));
  }

  /// The library's codeOf: 0 unless scale > 0 (constant or poisoned
  /// groups), else clamp((sat(x) - zero) / scale, 0, top) rounded half to
  /// even by adding and subtracting 2^23.
  Value codeOf(Value x, Value zero, Value scale, unsigned top) {
    Value t = arith::SubFOp::create(b, loc, saturate(x), zero);
    Value u = arith::DivFOp::create(b, loc, t, scale);
    u = select(cmp(arith::CmpFPredicate::OGT, u, f32(0.0)), u, f32(0.0));
    u = select(cmp(arith::CmpFPredicate::OLT, u, f32(top)), u, f32(top));
    Value r = arith::SubFOp::create(
        b, loc, arith::AddFOp::create(b, loc, u, f32(8388608.0)),
        f32(8388608.0));
    Value code = arith::FPToUIOp::create(b, loc, b.getI32Type(), r);
    return select(cmp(arith::CmpFPredicate::OGT, scale, f32(0.0)), code,
                  i32(0));
  }
};
} // namespace

std::pair<Value, Value> GroupQuantizer::emit(OpBuilder &b, Location loc,
                                             ReadFn read,
                                             StoreWordFn storeWord) const {
  Emitter e{b, loc};
  Type f16 = b.getF16Type(), f32 = b.getF32Type();
  double inf = std::numeric_limits<double>::infinity();

  // 1. Minimum, maximum and whether any value is NaN or infinite.
  auto stats = scf::ForOp::create(
      b, loc, e.index(0), e.index(group), e.index(1),
      ValueRange{e.f32(inf), e.f32(-inf),
                 arith::ConstantIntOp::create(b, loc, 0, 1)},
      [&](OpBuilder &nb, Location, Value i, ValueRange acc) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        Value v = e.saturate(read(i));
        Value bad = arith::OrIOp::create(
            b, loc, acc[2], e.cmp(arith::CmpFPredicate::UNO, v, v));
        bad = arith::OrIOp::create(b, loc, bad, e.isInf(v));
        scf::YieldOp::create(
            b, loc,
            ValueRange{arith::MinimumFOp::create(b, loc, acc[0], v),
                       arith::MaximumFOp::create(b, loc, acc[1], v), bad});
      });
  Value lo = stats.getResult(0), hi = stats.getResult(1);
  Value poisoned = stats.getResult(2);

  // 2. scale = fp16((hi - lo) / (2^b - 1)), zero = fp16(lo); fp16 NaN for a
  // poisoned group.
  unsigned top = num::maxCode(bits);
  Value scaleF32 = arith::DivFOp::create(
      b, loc, arith::SubFOp::create(b, loc, hi, lo), e.f32(top));
  Value nan = arith::BitcastOp::create(
      b, loc, f16,
      arith::ConstantIntOp::create(b, loc, num::kHalfQuietNaN, 16));
  Value scale =
      e.select(poisoned, nan, arith::TruncFOp::create(b, loc, f16, scaleF32));
  Value zero =
      e.select(poisoned, nan, arith::TruncFOp::create(b, loc, f16, lo));
  Value scaleF = arith::ExtFOp::create(b, loc, f32, scale);
  Value zeroF = arith::ExtFOp::create(b, loc, f32, zero);

  // 3. Codes, a packing unit at a time: b words of 32 codes (docs/layout.md
  // section 2; 3 bits: two words of low 2-bit planes, then bit 2 of code k
  // at bit k of the third).
  const unsigned lowBits = bits == 3 ? 2 : bits, perWord = 32 / lowBits;
  const int64_t unitCodes = num::kPackUnitCodes;
  scf::ForOp::create(
      b, loc, e.index(0), e.index(group), e.index(unitCodes), ValueRange{},
      [&](OpBuilder &nb, Location, Value first, ValueRange) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        SmallVector<Value> words(bits, e.i32(0));
        auto orInto = [&](unsigned w, Value bitsValue, unsigned shift) {
          if (shift)
            bitsValue = arith::ShLIOp::create(b, loc, bitsValue, e.i32(shift));
          words[w] = arith::OrIOp::create(b, loc, words[w], bitsValue);
        };
        for (int64_t k = 0; k < unitCodes; ++k) {
          Value i = arith::AddIOp::create(b, loc, first, e.index(k));
          Value code = e.codeOf(read(i), zeroF, scaleF, top);
          if (bits != 3) {
            orInto(k / perWord, code, (k % perWord) * bits);
            continue;
          }
          orInto(k / perWord, arith::AndIOp::create(b, loc, code, e.i32(3)),
                 (k % perWord) * 2);
          orInto(2, arith::ShRUIOp::create(b, loc, code, e.i32(2)), k);
        }
        Value firstWord = arith::MulIOp::create(
            b, loc, arith::DivUIOp::create(b, loc, first, e.index(unitCodes)),
            e.index(bits));
        for (unsigned w = 0; w < bits; ++w)
          storeWord(arith::AddIOp::create(b, loc, firstWord, e.index(w)),
                    words[w]);
        scf::YieldOp::create(b, loc);
      });
  return {scale, zero};
}

Value FP8Quantizer::emit(OpBuilder &b, Location loc, ReadFn read,
                         StoreCodeFn storeCode) const {
  Emitter e{b, loc};
  Type f16 = b.getF16Type(), f32 = b.getF32Type(), i32 = b.getI32Type();
  auto iconst = [&](int64_t v) { return e.i32(int32_t(v)); };
  auto cmpi = [&](arith::CmpIPredicate p, Value x, Value y) -> Value {
    return arith::CmpIOp::create(b, loc, p, x, y);
  };

  // 1. computeFP8TokenScale: max |sat(x)|, and whether a value is NaN/Inf.
  auto stats = scf::ForOp::create(
      b, loc, e.index(0), e.index(channels), e.index(1),
      ValueRange{e.f32(0.0), arith::ConstantIntOp::create(b, loc, 0, 1)},
      [&](OpBuilder &nb, Location, Value i, ValueRange acc) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        Value v = e.saturate(read(i));
        Value bad = arith::OrIOp::create(
            b, loc, acc[1], e.cmp(arith::CmpFPredicate::UNO, v, v));
        bad = arith::OrIOp::create(b, loc, bad, e.isInf(v));
        Value magnitude = math::AbsFOp::create(b, loc, v);
        Value amax =
            e.select(e.cmp(arith::CmpFPredicate::OGT, magnitude, acc[0]),
                     magnitude, acc[0]);
        scf::YieldOp::create(b, loc, ValueRange{amax, bad});
      });
  Value amax = stats.getResult(0), poisoned = stats.getResult(1);
  Value scaled =
      arith::DivFOp::create(b, loc, amax, e.f32(num::fp8MaxFinite(format)));
  Value scaleBits = arith::BitcastOp::create(
      b, loc, b.getI16Type(), arith::TruncFOp::create(b, loc, f16, scaled));
  Value i16Zero = arith::ConstantIntOp::create(b, loc, 0, 16);
  scaleBits = e.select(cmpi(arith::CmpIPredicate::eq, scaleBits, i16Zero),
                       arith::ConstantIntOp::create(b, loc, 1, 16), scaleBits);
  scaleBits = e.select(
      poisoned, arith::ConstantIntOp::create(b, loc, num::kHalfQuietNaN, 16),
      scaleBits);
  Value scale = arith::BitcastOp::create(b, loc, f16, scaleBits);
  Value scaleF = arith::ExtFOp::create(b, loc, f32, scale);

  // 2. quantizeFP8Value: floatToFP8(sat(x) / scale, saturate) on the bits
  // (MiniFloat.h's roundMagnitude: round to nearest even, subnormals).
  const bool e4m3 = format == num::FP8Format::E4M3;
  const int64_t mantBits = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
  const int64_t maxFinite = e4m3 ? 0x7E : 0x7B;
  scf::ForOp::create(
      b, loc, e.index(0), e.index(channels), e.index(1), ValueRange{},
      [&](OpBuilder &nb, Location, Value i, ValueRange) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        Value y = arith::DivFOp::create(b, loc, e.saturate(read(i)), scaleF);
        Value u = arith::BitcastOp::create(b, loc, i32, y);
        Value sign = arith::AndIOp::create(
            b, loc, arith::ShRUIOp::create(b, loc, u, iconst(24)),
            iconst(0x80));
        Value abs = arith::AndIOp::create(b, loc, u, iconst(0x7FFFFFFF));
        Value biasedExp = arith::ShRUIOp::create(b, loc, abs, iconst(23));
        Value frac = arith::AndIOp::create(b, loc, abs, iconst(0x7FFFFF));
        Value exp = arith::SubIOp::create(b, loc, biasedExp, iconst(127));
        auto lowMask = [&](Value shift) -> Value {
          return arith::SubIOp::create(
              b, loc, arith::ShLIOp::create(b, loc, iconst(1), shift),
              iconst(1));
        };
        // Normal in the target: q = (exp + bias) << m | frac >> (23 - m).
        const int64_t normalShift = 23 - mantBits;
        Value normalQ = arith::OrIOp::create(
            b, loc,
            arith::ShLIOp::create(
                b, loc, arith::AddIOp::create(b, loc, exp, iconst(bias)),
                iconst(mantBits)),
            arith::ShRUIOp::create(b, loc, frac, iconst(normalShift)));
        Value normalRem =
            arith::AndIOp::create(b, loc, frac, iconst((1 << normalShift) - 1));
        // Subnormal in the target: units of 2^(1 - bias - m); the shift is
        // kept in [1, 31], where shifts are defined (from 25 on the result
        // is 0 anyway, and normal targets do not use it).
        Value mant = arith::OrIOp::create(b, loc, frac, iconst(0x800000));
        Value subShift =
            arith::SubIOp::create(b, loc, iconst(normalShift + 1 - bias), exp);
        Value tooSmall = cmpi(arith::CmpIPredicate::sgt, subShift, iconst(24));
        subShift = arith::MaxSIOp::create(
            b, loc, arith::MinSIOp::create(b, loc, subShift, iconst(31)),
            iconst(1));
        Value subQ = arith::ShRUIOp::create(b, loc, mant, subShift);
        Value subRem = arith::AndIOp::create(b, loc, mant, lowMask(subShift));
        Value normal = cmpi(arith::CmpIPredicate::sge, exp, iconst(1 - bias));
        Value q = e.select(normal, normalQ, subQ);
        Value rem = e.select(normal, normalRem, subRem);
        Value halfway =
            e.select(normal, iconst(1 << (normalShift - 1)),
                     arith::ShLIOp::create(
                         b, loc, iconst(1),
                         arith::SubIOp::create(b, loc, subShift, iconst(1))));
        Value odd =
            cmpi(arith::CmpIPredicate::ne,
                 arith::AndIOp::create(b, loc, q, iconst(1)), iconst(0));
        Value roundUp = arith::OrIOp::create(
            b, loc, cmpi(arith::CmpIPredicate::ugt, rem, halfway),
            arith::AndIOp::create(
                b, loc, cmpi(arith::CmpIPredicate::eq, rem, halfway), odd));
        q = e.select(roundUp, arith::AddIOp::create(b, loc, q, iconst(1)), q);
        // Float subnormals and magnitudes below a quarter unit are 0.
        Value zero = arith::OrIOp::create(
            b, loc, cmpi(arith::CmpIPredicate::eq, biasedExp, iconst(0)),
            arith::AndIOp::create(
                b, loc,
                arith::XOrIOp::create(
                    b, loc, normal, arith::ConstantIntOp::create(b, loc, 1, 1)),
                tooSmall));
        Value mag = e.select(zero, iconst(0), q);
        // Infinity and overflow saturate to the largest finite code.
        mag = e.select(
            arith::OrIOp::create(
                b, loc, cmpi(arith::CmpIPredicate::eq, abs, iconst(0x7F800000)),
                cmpi(arith::CmpIPredicate::ugt, mag, iconst(maxFinite))),
            iconst(maxFinite), mag);
        Value code = arith::OrIOp::create(b, loc, sign, mag);
        code =
            e.select(cmpi(arith::CmpIPredicate::ugt, abs, iconst(0x7F800000)),
                     iconst(num::kFP8NaN), code);
        storeCode(i, arith::TruncIOp::create(b, loc, b.getI8Type(), code));
        scf::YieldOp::create(b, loc);
      });
  return scale;
}

void mlir::kvc::emitQuantizeMatrixGroup(OpBuilder &b, Location loc,
                                        const num::QuantSpec &spec, Value input,
                                        Value codes, Value scales, Value zeros,
                                        ArrayRef<Value> groupIndex) {
  const size_t rank = groupIndex.size();
  const int64_t g = spec.group;
  const bool tokenAxis = spec.axis == num::QuantAxis::Token;
  Value row = groupIndex[rank - 2], column = groupIndex[rank - 1];
  auto indexConst = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  auto add = [&](Value x, Value y) -> Value {
    return arith::AddIOp::create(b, loc, x, y);
  };
  auto mul = [&](Value x, int64_t y) -> Value {
    return arith::MulIOp::create(b, loc, x, indexConst(y));
  };
  SmallVector<Value> leading(groupIndex.drop_back(2));
  // The group's codes: [..., t, c / G * (G*b/8) + byte] (token axis) or
  // [..., tb, c, byte] (channel axis).
  SmallVector<Value> codeAt(leading);
  Value firstByte;
  if (tokenAxis) {
    codeAt.push_back(row);
    firstByte = mul(column, g * spec.bits / 8);
  } else {
    codeAt.append({row, column});
    firstByte = indexConst(0);
  }
  auto [scale, zero] =
      GroupQuantizer(spec.bits, spec.group)
          .emit(
              b, loc,
              [&](Value i) -> Value {
                SmallVector<Value> indices(leading);
                if (tokenAxis)
                  indices.append({row, add(mul(column, g), i)});
                else
                  indices.append({add(mul(row, g), i), column});
                return loadAsF32(b, loc, input, indices);
              },
              [&](Value wordIndex, Value word) {
                // Little-endian: byte j of the word is bits 8j..8j+7.
                Value at = add(firstByte, mul(wordIndex, 4));
                for (int64_t j = 0; j < 4; ++j) {
                  Value byte = arith::TruncIOp::create(
                      b, loc, b.getI8Type(),
                      j ? arith::ShRUIOp::create(
                              b, loc, word,
                              arith::ConstantIntOp::create(b, loc, 8 * j, 32))
                        : word);
                  SmallVector<Value> indices(codeAt);
                  indices.push_back(add(at, indexConst(j)));
                  memref::StoreOp::create(b, loc, byte, codes, indices);
                }
              });
  memref::StoreOp::create(b, loc, scale, scales, groupIndex);
  memref::StoreOp::create(b, loc, zero, zeros, groupIndex);
}

void mlir::kvc::emitQuantizeFP8Row(OpBuilder &b, Location loc,
                                   num::FP8Format format, Value input,
                                   Value codes, Value scales,
                                   ArrayRef<Value> rowIndex) {
  const int64_t channels = cast<MemRefType>(input.getType()).getShape().back();
  auto at = [&](Value channel) {
    SmallVector<Value> indices(rowIndex);
    indices.push_back(channel);
    return indices;
  };
  Value scale =
      FP8Quantizer(format, unsigned(channels))
          .emit(
              b, loc, [&](Value c) { return loadAsF32(b, loc, input, at(c)); },
              [&](Value c, Value code) {
                memref::StoreOp::create(b, loc, code, codes, at(c));
              });
  memref::StoreOp::create(b, loc, scale, scales, rowIndex);
}

void mlir::kvc::emitQuantizeItem(OpBuilder &b, Location loc,
                                 const num::SideEncoding &side, Value input,
                                 Value codes, Value scales, Value zeros,
                                 ArrayRef<Value> index) {
  if (side.isFP8())
    return emitQuantizeFP8Row(b, loc, side.fp8, input, codes, scales, index);
  emitQuantizeMatrixGroup(b, loc, side.quant, input, codes, scales, zeros,
                          index);
}
