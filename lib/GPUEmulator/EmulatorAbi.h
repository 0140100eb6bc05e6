//===- EmulatorAbi.h - what rewritten kernels call -------------*- C++ -*-===//
//
// The C functions that KernelRewrite puts in place of NVVM intrinsics and
// inline PTX. Only scalar arguments and results (the host C ABI and the
// LLVM IR call agree on them); the mma operands travel through memory.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_GPUEMULATOR_EMULATORABI_H
#define KVC_GPUEMULATOR_EMULATORABI_H

#include <cstdint>

namespace kvc {
namespace gpuemu {

/// Special registers, the argument of __kvc_emu_sreg.
enum SpecialRegister : int32_t {
  kTidX, kTidY, kTidZ,
  kNtidX, kNtidY, kNtidZ,
  kCtaidX, kCtaidY, kCtaidZ,
  kNctaidX, kNctaidY, kNctaidZ,
  kLaneId, kWarpSize,
};

/// shfl.sync modes, the first argument of __kvc_emu_shfl.
enum ShuffleMode : int32_t { kShflUp, kShflDown, kShflBfly, kShflIdx };

/// fma rounding, the first argument of __kvc_emu_fma.
enum Rounding : int32_t { kRoundNearest, kRoundZero, kRoundDown, kRoundUp };

} // namespace gpuemu
} // namespace kvc

extern "C" {
int32_t __kvc_emu_sreg(int32_t which);
void __kvc_emu_barrier(void);
int32_t __kvc_emu_shfl(int32_t mode, int32_t mask, int32_t value, int32_t b,
                       int32_t c);
/// mma.sync.aligned.m16n8k{8,16}.row.col.f32.f16.f16.f32: `a` the lane's A
/// registers (k / 4 fp16 pairs), `b` its B registers (k / 8), `c` and `d`
/// four floats.
void __kvc_emu_mma_f16_f32(int32_t k, const uint32_t *a, const uint32_t *b,
                           const float *c, float *d);
float __kvc_emu_saturate(float x, int32_t ftz);
float __kvc_emu_fma(int32_t rounding, int32_t ftz, float a, float b, float c);
float __kvc_emu_ex2(float x, int32_t ftz);
uint32_t __kvc_emu_lop3(uint32_t a, uint32_t b, uint32_t c, uint32_t lut);
/// prefetch.global.L2 (`bulk` 0, `bytes` 1: the line holding `address`) or
/// cp.async.bulk.prefetch.L2.global (`bulk` 1: `bytes` bytes, both a
/// multiple of 16 as the PTX ISA requires).
void __kvc_emu_prefetch(const void *address, uint64_t bytes, int32_t bulk);
/// prmt.b32 (default mode): byte i of the result picked from the pool
/// {b, a} by nibble i of `selector`.
uint32_t __kvc_emu_prmt(uint32_t a, uint32_t b, uint32_t selector);
/// cp.async.{ca,cg}.shared.global: `bytes` (4, 8 or 16) from `src` to
/// `dst`, both multiples of `bytes`, in the thread's current group; the
/// copy lands at the latest when a wait completes its group.
void __kvc_emu_cp_async(void *dst, const void *src, int32_t bytes);
/// cp.async.commit_group: the copies since the last commit form a group.
void __kvc_emu_cp_async_commit(void);
/// cp.async.wait_group `pending`: every committed group of the thread but
/// the `pending` most recent ones is complete.
void __kvc_emu_cp_async_wait(int32_t pending);
/// bar.warp.sync: a warp collective (the emulator needs the whole warp in
/// `mask`).
void __kvc_emu_warp_sync(int32_t mask);
}

#endif // KVC_GPUEMULATOR_EMULATORABI_H
