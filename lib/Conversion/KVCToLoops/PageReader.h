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
  /// Loads a vector of `count` `element`s at byte `byteOffset`, which the
  /// caller guarantees to be a multiple of `alignment` (16 gives one
  /// 16-byte load, `ld.global.v4` on the GPU).
  Value loadVector(OpBuilder &b, Location loc, Type element, int64_t count,
                   Value byteOffset, unsigned alignment) const;
};

/// Receives the f32 values of channels firstChannel .. firstChannel +
/// values.size() - 1 of one token (firstChannel an index) and the values a
/// fold carries; returns their updates. Ops are created with the builder
/// the fold was given.
using ChannelChunkFn = function_ref<SmallVector<Value>(
    Value firstChannel, ArrayRef<Value> values, ValueRange carried)>;

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

  /// Folds `fn` over the D channels of token `slot` of the block at byte
  /// `blockBase`, in channel order, with the values readCompressed gives,
  /// read in as few and as wide loads as the layout allows: 16-byte loads of
  /// fp16, fp8 and token-axis code rows; for channel-axis codes, whose
  /// token code sits in a different group per channel, one code word per
  /// channel and one 16-byte load of four channels' (scale, zero) pairs.
  SmallVector<Value> foldCompressedRow(OpBuilder &b, Location loc,
                                       Value blockBase, Value slot,
                                       ValueRange inits,
                                       ChannelChunkFn fn) const;
  /// The same over row `row` of the fp16 residual buffer (16-byte loads).
  SmallVector<Value> foldResidualRow(OpBuilder &b, Location loc,
                                     const ByteViews &residual, Value headBase,
                                     Value row, ValueRange inits,
                                     ChannelChunkFn fn) const;

private:
  SmallVector<Value> foldTokenAxisRow(OpBuilder &b, Location loc,
                                      Value blockBase, Value slot,
                                      ValueRange inits,
                                      ChannelChunkFn fn) const;
  SmallVector<Value> foldChannelAxisRow(OpBuilder &b, Location loc,
                                        Value blockBase, Value slot,
                                        ValueRange inits,
                                        ChannelChunkFn fn) const;
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

  /// Folds `fn` over the D channels of token `token` of KV head `head`:
  /// the token is located once (page table or residual row), then read
  /// with PageReader's wide row loads.
  SmallVector<Value> foldChannels(OpBuilder &b, Location loc, Value head,
                                  Value token, ValueRange inits,
                                  ChannelChunkFn fn) const;

private:
  /// Byte offset of the block of `head` in the page holding compressed
  /// token `token`, and the token's slot in it.
  std::pair<Value, Value> locate(OpBuilder &b, Location loc, Value head,
                                 Value token) const;
};

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOLOOPS_PAGEREADER_H
