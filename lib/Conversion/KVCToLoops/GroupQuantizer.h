//===- GroupQuantizer.h - emit the numerics library's quantizer -*- C++ -*-===//
//
// Emits, in arith and scf, group quantization exactly as the numerics
// library defines it (include/kvc/Numerics/Quantize.h): saturation to the
// fp16 range, fp16 (scale, zero) from the group's minimum and maximum,
// poisoned groups (NaN/Inf) stored as fp16 NaN with zero codes, codes by
// round-half-to-even of (x - zero) / scale clamped to [0, 2^b - 1], packed
// into the 32-code units of docs/layout.md. The CPU lowering of
// kvc.quantize uses it; it is built from ops a GPU kernel can use too.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOLOOPS_GROUPQUANTIZER_H
#define KVC_LIB_CONVERSION_KVCTOLOOPS_GROUPQUANTIZER_H

#include "kvc/Numerics/Encoding.h"
#include "kvc/Numerics/FP8.h"
#include "kvc/Numerics/Quantize.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Value.h"

#include <utility>

namespace mlir {
namespace kvc {

/// A b-bit quantizer of groups of `group` values (a multiple of 32).
class GroupQuantizer {
public:
  GroupQuantizer(unsigned bits, unsigned group) : bits(bits), group(group) {}

  /// Element `index` (an index value) of the group, as f32.
  using ReadFn = function_ref<Value(Value index)>;
  /// Stores packed word `wordIndex` (an index value, counted from the
  /// group's first code byte in 4-byte words) of the group's codes, an i32.
  using StoreWordFn = function_ref<void(Value wordIndex, Value word)>;

  /// Quantizes one group: reads it twice (parameters, then codes), stores
  /// its group * bits / 32 code words and returns its (scale, zero) as f16
  /// values. Ops are created with `b`, whose insertion point the callbacks
  /// see.
  std::pair<Value, Value> emit(OpBuilder &b, Location loc, ReadFn read,
                               StoreWordFn storeWord) const;

private:
  unsigned bits, group;
};

/// The per-token fp8 quantizer of `channels` values (computeFP8TokenScale,
/// quantizeFP8Value): an fp16 scale max|x| / max-finite (fp16 NaN when a
/// value is NaN or infinite, the smallest subnormal instead of 0), codes
/// rounded to nearest even and saturated, as floatToFP8 does it in integer
/// arithmetic on the f32 bits.
class FP8Quantizer {
public:
  FP8Quantizer(::kvc::numerics::FP8Format format, unsigned channels)
      : format(format), channels(channels) {}

  using ReadFn = GroupQuantizer::ReadFn;
  /// Stores code `index` (an index value) of the row, an i8.
  using StoreCodeFn = function_ref<void(Value index, Value code)>;

  /// Quantizes one row: reads it twice (the scale, then the codes), stores
  /// its codes and returns the scale as an f16 value.
  Value emit(OpBuilder &b, Location loc, ReadFn read,
             StoreCodeFn storeCode) const;

private:
  ::kvc::numerics::FP8Format format;
  unsigned channels;
};

/// Quantizes one group of kvc.quantize's matrix form: `input` is a memref
/// [..., T, D] of floats, `codes`, `scales` and `zeros` memrefs shaped as
/// kvc.quantize's results, and `groupIndex` the group's indices into
/// `scales` ([..., t, c / G] for token axis, [..., t / G, c] for channel
/// axis). The CPU loops and a GPU kernel's threads call it alike.
void emitQuantizeMatrixGroup(OpBuilder &b, Location loc,
                             const ::kvc::numerics::QuantSpec &spec,
                             Value input, Value codes, Value scales,
                             Value zeros, ArrayRef<Value> groupIndex);

/// The fp8 form of kvc.quantize, one token: `input` [..., T, D] floats,
/// `codes` [..., T, D] i8, `scales` [..., T] f16; `rowIndex` indexes the
/// scales.
void emitQuantizeFP8Row(OpBuilder &b, Location loc,
                        ::kvc::numerics::FP8Format format, Value input,
                        Value codes, Value scales, ArrayRef<Value> rowIndex);

/// One work item of kvc.quantize (a group of `quant`, a token of fp8),
/// `index` indexing the scales: what the CPU loops and the GPU kernel's
/// threads run.
void emitQuantizeItem(OpBuilder &b, Location loc,
                      const ::kvc::numerics::SideEncoding &side, Value input,
                      Value codes, Value scales, Value zeros,
                      ArrayRef<Value> index);

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOLOOPS_GROUPQUANTIZER_H
