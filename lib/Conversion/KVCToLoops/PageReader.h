//===- PageReader.h - emit dequantizing reads of packed pages ---*- C++ -*-===//
//
// Emits the arith/memref ops that read one element of a packed page block
// (docs/layout.md, version 1) or of the fp16 residual buffer, exactly as the
// numerics library defines it: code * scale + zero as a separate f32
// multiply and add, fp8 through a 256-entry table built from the numerics
// library's decoder.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOLOOPS_PAGEREADER_H
#define KVC_LIB_CONVERSION_KVCTOLOOPS_PAGEREADER_H

#include "kvc/Numerics/Layout.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Value.h"

namespace mlir {
namespace kvc {

/// Runtime memory (a pool, a page table, a residual buffer) seen through a
/// raw `!llvm.ptr`: it is owned by the runtime, so it must not look like a
/// buffer that bufferization could free.
struct ByteViews {
  Value base; ///< !llvm.ptr (any address space: GPU kernels read global)
  /// Loads a `type` value at byte `byteOffset` (an index), aligned to its
  /// size.
  Value load(OpBuilder &b, Location loc, Type type, Value byteOffset) const;
};

/// memref.load of a float element, extended to f32 (queries and masks may
/// be f16 or bf16; attention computes in f32).
Value loadAsF32(OpBuilder &b, Location loc, Value memref, ValueRange indices);

/// Reads one side (keys or values) of a layer's pages.
class PageReader {
public:
  /// `fp8Table` is a memref<256xf32> with the side's fp8 decoding table,
  /// or null when the side is not fp8.
  PageReader(const ::kvc::numerics::SideEncoding &side, unsigned headDim,
             unsigned pageTokens, ByteViews pool, Value fp8Table);

  /// The block layout the reader assumes.
  const ::kvc::numerics::BlockLayout &getLayout() const { return layout; }

  /// The f32 value of (token `slot` of the block at byte `blockBase`,
  /// channel `channel`). All arguments are `index` values.
  Value readCompressed(OpBuilder &b, Location loc, Value blockBase, Value slot,
                       Value channel) const;

  /// The f32 value of row `row`, channel `channel` of the fp16 [R][D]
  /// residual buffer starting at byte `headBase` of `residual`.
  Value readResidual(OpBuilder &b, Location loc, const ByteViews &residual,
                     Value headBase, Value row, Value channel) const;

private:
  Value readCode(OpBuilder &b, Location loc, Value unitBase,
                 Value indexInUnit) const;
  Value readHalf(OpBuilder &b, Location loc, const ByteViews &views,
                 Value byteOffset) const;

  ::kvc::numerics::SideEncoding side;
  unsigned headDim, pageTokens;
  ::kvc::numerics::BlockLayout layout;
  ByteViews pool;
  Value fp8Table;
};

/// One side (keys or values) of one sequence, for a run of KV heads that
/// share an encoding: compressed tokens are read from their pages (through
/// the page table), the others from the fp16 residual buffer.
struct SequenceSideView {
  const PageReader *reader;
  ByteViews pageTable; ///< the sequence's int32 page indices
  ByteViews residual;  ///< its fp16 [R][D] buffers, one per KV head
  Value compressed;    ///< index: tokens stored in pages
  uint64_t pageBytes;  ///< a whole page of the pool (all heads' blocks)
  /// Byte offset within a page of the block of the run's first KV head
  /// `runFirst` (an index); the run's other heads follow at the reader's
  /// block size (docs/layout.md, per-head encodings).
  uint64_t runOffset;
  Value runFirst;
  uint64_t residualHeadBytes;
  unsigned pageTokens;

  /// The f32 value of channel `channel` of token `token` of KV head `head`
  /// (index values).
  Value read(OpBuilder &b, Location loc, Value head, Value token,
             Value channel) const;
};

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOLOOPS_PAGEREADER_H
