//===- AppendWriter.h - emit the writes of a reserved append ----*- C++ -*-===//
//
// Emits what kvc_rt_append does to one side (keys or values) of one
// sequence once kvc_rt_reserve_append has reserved the tokens
// (runtime/include/kvc_runtime.h): the flush, which quantizes and packs
// tokens [c(n0), c(n1)) into their pages (staged tokens from the fp16
// residual rows, new ones from the input rounded to fp16) with the
// numerics library's quantizers, then the staging of the tokens left
// in the residual window. Both are split into independent work items (a
// quantization group, an fp8 token or an fp16 element) so that the CPU
// loops run them in order and a GPU kernel's threads share them; the flush
// must be complete before the staging starts (it overwrites residual rows
// the flush reads).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOLOOPS_APPENDWRITER_H
#define KVC_LIB_CONVERSION_KVCTOLOOPS_APPENDWRITER_H

#include "Lowering.h"
#include "PageReader.h"

#include "kvc/Numerics/Encoding.h"
#include "kvc/Numerics/Layout.h"

namespace mlir {
namespace kvc {

/// Element (KV head, new token i, channel) of the appended tokens, as f32.
using AppendInputFn =
    function_ref<Value(Value head, Value token, Value channel)>;

/// One sequence's side of a reserved append (kvc_rt_gpu_append), index
/// values but the byte views.
struct AppendTarget {
  ByteViews pool;      ///< the side's pool
  ByteViews pageTable; ///< the sequence's int32 page indices
  ByteViews residual;  ///< its fp16 [R][D] buffers, one per KV head
  Value oldTokens, oldCompressed, newTokens, newCompressed;
};

/// Bytes of one record of kvc_rt_mlir_reserve_append (kvc_rt_gpu_append).
constexpr int64_t kAppendRecordBytes = 40;

/// Keys (`value` false) or values of batch entry `entry` (an index) of the
/// records kvc_rt_mlir_reserve_append returned; the record's pointers are
/// taken in `addressSpace` (1: global memory, in a GPU kernel).
AppendTarget loadAppendTarget(OpBuilder &b, Location loc,
                              const ByteViews &records, Value entry, bool value,
                              ByteViews pool, unsigned addressSpace);

/// Writes one side of the KV heads of a run that share an encoding.
class AppendWriter {
public:
  /// Keys (`value` false) or values of the run of KV heads of `pages` that
  /// starts at head `runFirst` (its heads share that head's encoding and
  /// follow its block at the block size).
  AppendWriter(OpBuilder &b, Location loc, bool value,
               const CachePageLayout &pages, unsigned runFirst,
               unsigned headDim, unsigned pageTokens,
               uint64_t residualHeadBytes);

  /// Work items of the flush: its quantization groups (fp8 pages: its
  /// tokens; fp16 pages: its elements). Zero when the append flushes
  /// nothing.
  Value flushItems(OpBuilder &b, Location loc, const AppendTarget &t) const;
  /// Quantizes and packs item `item` of the flush of KV head `head` into
  /// its page, unless the page is a hole (evicted while staged).
  void emitFlushItem(OpBuilder &b, Location loc, const AppendTarget &t,
                     Value head, Value item, AppendInputFn input) const;

  /// Work items of the staging: the elements of tokens
  /// [max(c(n1), n0), n1).
  Value stageItems(OpBuilder &b, Location loc, const AppendTarget &t) const;
  /// Writes element `item` of the staging of KV head `head` to its residual
  /// row, rounded to fp16.
  void emitStageItem(OpBuilder &b, Location loc, const AppendTarget &t,
                     Value head, Value item, AppendInputFn input) const;

private:
  /// Token `token`, channel `channel` of head `head` as the flush reads it:
  /// a staged residual row, or the input rounded to fp16.
  Value flushElement(OpBuilder &b, Location loc, const AppendTarget &t,
                     Value head, Value token, Value channel,
                     AppendInputFn input) const;

  ::kvc::numerics::SideEncoding side;
  unsigned headDim, pageTokens;
  ::kvc::numerics::BlockLayout layout;
  uint64_t pageBytes, runOffset;
  Value runFirst;
  uint64_t residualHeadBytes;
};

} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOLOOPS_APPENDWRITER_H
