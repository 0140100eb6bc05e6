//===- ReservedWrite.h - Hand-written tokens of a reservation ---*- C++ -*-===//
//
// What generated append code does after kvc_rt_reserve_append, written out
// by hand: the reserved tokens of one sequence go into its pages and its
// residual staging exactly as the header's contract says, so that the
// result can be compared with kvc_rt_append byte for byte. Shared by the
// reservation unit tests and the model driver (hence the fuzzer).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_RUNTIME_TEST_RESERVEDWRITE_H
#define KVC_RUNTIME_TEST_RESERVEDWRITE_H

#include "kvc_runtime.h"

#include <string>

namespace kvc {
namespace rt {
namespace testing {

/// Writes the tokens [range.old_tokens, range.new_tokens) of `seq` in
/// `layer`, just reserved by kvc_rt_reserve_append with `range` as its
/// out entry: (1) tokens [c(n0), c(n1)) are compressed into their pages a
/// page piece at a time (token t < n0 from staging row t - c(n0), the
/// others from `tokens` rounded to fp16; pages that are KVC_RT_PAGE_HOLE
/// are skipped), then (2) tokens [max(c(n1), n0), n1) are staged as fp16
/// rows t - c(n1). `tokens` holds the n1 - n0 new tokens in kvc_rt_append's
/// form (f32 or f16, optional strides). Every KV head is written with its
/// own encoding (kvc_rt_head_view). Host backends only (CPU and
/// CPU_STAGED, whose arenas are host memory: written in place; CPU_STAGED
/// keeps the page tables' mirror itself). Returns "" or what went wrong.
std::string writeReserved(kvc_rt_cache *cache, kvc_rt_seq seq, uint32_t layer,
                          const kvc_rt_append_range &range,
                          const kvc_rt_tokens &tokens);

} // namespace testing
} // namespace rt
} // namespace kvc

#endif // KVC_RUNTIME_TEST_RESERVEDWRITE_H
