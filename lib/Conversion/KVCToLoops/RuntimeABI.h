//===- RuntimeABI.h - runtime entry points called by lowered code -*- C++ -*-===//
//
// The functions of runtime/include/kvc_runtime.h ("Entry points for
// compiled code") that the CPU lowering calls. A cache value is a pointer
// to a kvc_rt_binding. Functions taking or returning memrefs use MLIR's C
// interface (`_mlir_ciface_<name>`).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_LIB_CONVERSION_KVCTOLOOPS_RUNTIMEABI_H
#define KVC_LIB_CONVERSION_KVCTOLOOPS_RUNTIMEABI_H

#include "kvc/Numerics/Encoding.h"
#include "kvc_runtime_binding.h"
#include "llvm/ADT/StringRef.h"

namespace mlir {
namespace kvc {
namespace abi {

/// (binding, keys memref<?x?x?x?xf32>, values memref<?x?x?x?xf32>): appends
/// [batch][kv_heads][tokens][head_dim] tokens to every sequence.
inline constexpr llvm::StringLiteral kAppend = "kvc_rt_mlir_append";
/// (binding, i64 tokens) -> !llvm.ptr: reserves the tokens of a kvc.append
/// that generated code writes; the batch's kvc_rt_gpu_append records, or
/// null after an error.
inline constexpr llvm::StringLiteral kReserveAppend =
    "kvc_rt_mlir_reserve_append";
/// (binding, scores memref<?x?x?xf32> [batch][kv_heads][n], kind, sink,
/// window, budget): applies an eviction policy to every sequence.
inline constexpr llvm::StringLiteral kEvict = "kvc_rt_mlir_evict";
/// (binding, scores, kind, sink, window, budgets memref<?xi64>): the same
/// with one budget per KV head (#kvc.evict's head_budgets).
inline constexpr llvm::StringLiteral kEvictHeads = "kvc_rt_mlir_evict_heads";
/// (binding, scores, kind, sink, window, budgets memref<?xi64>, demote key
/// descriptor, demote value descriptor): two-tier eviction, evicted tokens
/// kept at the demotion encodings.
inline constexpr llvm::StringLiteral kEvictDemote = "kvc_rt_mlir_evict_demote";
/// (binding, batch index, demote key descriptor, demote value descriptor)
/// -> !llvm.ptr: the table of demoted pages (one pointer per position page,
/// null where none), or null when the sequence keeps no demoted token.
inline constexpr llvm::StringLiteral kDemotedPages = "kvc_rt_mlir_demoted_pages";
/// (binding, batch index, kv head) -> !llvm.ptr: the live-token bitmap
/// (bit t % 8 of byte t / 8), null when no token was ever evicted.
inline constexpr llvm::StringLiteral kLiveBitmap = "kvc_rt_mlir_live_bitmap";
/// (binding, page_tokens, k_page_bytes, v_page_bytes, residual, kv_heads,
/// head_dim) -> i32: nonzero when the runtime's layout is the compiled one.
inline constexpr llvm::StringLiteral kCheckLayout = "kvc_rt_mlir_check_layout";
/// (binding, head, k side descriptor, v side descriptor, k block offset,
/// v block offset) -> i32: nonzero when KV head `head` has the compiled
/// encodings and its blocks sit at those offsets of a page.
inline constexpr llvm::StringLiteral kCheckHead = "kvc_rt_mlir_check_head";
/// (binding, batch index) -> i64 tokens / compressed tokens.
inline constexpr llvm::StringLiteral kNumTokens = "kvc_rt_mlir_num_tokens";
inline constexpr llvm::StringLiteral kCompressedTokens =
    "kvc_rt_mlir_compressed_tokens";
// Runtime memory is handed out as raw pointers, not memrefs: memrefs returned
// by calls would be taken as owned by buffer deallocation and freed.
/// (binding, side) -> !llvm.ptr: the layer's whole K (0) or V (1) pool.
inline constexpr llvm::StringLiteral kPool = "kvc_rt_mlir_pool";
/// (binding, batch index) -> !llvm.ptr: the sequence's int32 page table.
inline constexpr llvm::StringLiteral kPageTable = "kvc_rt_mlir_page_table";
/// (binding, batch index, side) -> !llvm.ptr: the sequence's fp16 residual
/// staging buffers of all KV heads, residual_head_bytes apart.
inline constexpr llvm::StringLiteral kResidual = "kvc_rt_mlir_residual";

/// The runtime's descriptor of a side encoding (kvc_rt_pack_side_encoding),
/// which kCheckHead compares with the bound layer's.
inline int64_t packSideEncoding(const ::kvc::numerics::SideEncoding &side) {
  kvc_rt_side_encoding c = {};
  if (side.isQuant()) {
    c.kind = KVC_RT_SIDE_QUANT;
    c.bits = side.quant.bits;
    c.axis = side.quant.axis == ::kvc::numerics::QuantAxis::Channel
                 ? KVC_RT_AXIS_CHANNEL
                 : KVC_RT_AXIS_TOKEN;
    c.group = side.quant.group;
  } else if (side.isFP8()) {
    c.kind = KVC_RT_SIDE_FP8;
    c.fp8_format = side.fp8 == ::kvc::numerics::FP8Format::E4M3
                       ? KVC_RT_FP8_E4M3
                       : KVC_RT_FP8_E5M2;
  } else {
    c.kind = KVC_RT_SIDE_FP16;
  }
  return kvc_rt_pack_side_encoding(&c);
}

} // namespace abi
} // namespace kvc
} // namespace mlir

#endif // KVC_LIB_CONVERSION_KVCTOLOOPS_RUNTIMEABI_H
