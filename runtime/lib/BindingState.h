//===- BindingState.h - a binding's state and shared helpers --*- C++ -*-===//
//
// What Binding.cpp (records, appends, the CPU entry points) and
// BindingEvict.cpp (kvc.evict and the live bitmaps) share: the binding
// itself and the helpers that record errors and reach the cache's backend.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_RUNTIME_LIB_BINDINGSTATE_H
#define KVC_RUNTIME_LIB_BINDINGSTATE_H

#include "kvc_runtime_binding.h"

#include "Backend.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kvc::rt {
/// A block of the cache's backend memory (records, workspace).
struct BackendBlock {
  uint8_t *data = nullptr;
  size_t bytes = 0;
};
} // namespace kvc::rt

struct kvc_rt_binding {
  kvc_rt_cache *cache = nullptr;
  uint32_t layer = 0;
  kvc_rt_backend backend = KVC_RT_BACKEND_CPU;
  std::vector<kvc_rt_seq> seqs;
  kvc_rt_layer_view layerView{};
  kvc_rt_status status = KVC_RT_OK;
  std::string error;
  /// Contiguous copy of tokens whose channels are strided.
  std::vector<float> scratch;
  /// kvc_rt_mlir_gpu_sequences: staged on the host, then copied to `records`.
  std::vector<kvc_rt_gpu_sequence> hostRecords;
  kvc::rt::BackendBlock records;
  /// The sequence records in backend memory as kernels read them (in
  /// `records`, or after the append records in `appendRecords`) and what
  /// they hold; null while no copy is known to be current.
  const kvc_rt_gpu_sequence *uploadedRecords = nullptr;
  std::vector<kvc_rt_gpu_sequence> uploadedHostRecords;
  kvc::rt::BackendBlock workspace;
  /// kvc_rt_mlir_gpu_counters: zero-filled when allocated, kept zero
  /// between launches by the kernels that count in it.
  kvc::rt::BackendBlock counters;
  /// kvc_rt_mlir_reserve_append: the ranges, the staged records (the append
  /// records, then at appendSequencesOffset the sequence records after the
  /// append), their copy.
  std::vector<kvc_rt_append_range> appendRanges;
  std::vector<kvc_rt_gpu_append> hostAppendRecords;
  std::vector<uint8_t> hostAppendUpload;
  kvc::rt::BackendBlock appendRecords;
  /// kvc_rt_mlir_gpu_live_bitmaps: [batch][kv_heads] addresses and the
  /// bitmap copies they point to, staged on the host.
  std::vector<uint64_t> hostBitmapAddresses;
  std::vector<uint8_t> hostBitmaps;
  kvc::rt::BackendBlock bitmapAddresses;
  kvc::rt::BackendBlock bitmaps;
  /// Contiguous copy of strided eviction scores.
  std::vector<float> scoreScratch;
};

namespace kvc::rt::binding {

/// Records the first failure; later ones are consequences of it. False.
bool fail(kvc_rt_binding *binding, kvc_rt_status status,
          const std::string &message);
/// True for KVC_RT_OK; else records `what: <the cache's last error>`.
bool check(kvc_rt_binding *binding, kvc_rt_status status, const char *what);
/// A binding without a recorded error.
bool usable(kvc_rt_binding *binding);
/// The backend of the bound cache, or nullptr (recorded) once the cache is
/// destroyed.
Backend *backendOf(kvc_rt_binding *binding);
/// Makes `block` hold at least `bytes` (its contents are not kept).
bool reserve(kvc_rt_binding *binding, Backend &backend, BackendBlock &block,
             size_t bytes, const char *what);
/// The sequence view of batch entry `b`, or false (recorded) on error.
bool sequenceView(kvc_rt_binding *binding, int64_t b,
                  kvc_rt_sequence_view *view);
/// A side descriptor (kvc_rt_pack_side_encoding) as text; it comes from
/// compiled code, so any bit pattern is described, not only valid ones.
std::string describeSide(int64_t descriptor);

} // namespace kvc::rt::binding

#endif // KVC_RUNTIME_LIB_BINDINGSTATE_H
