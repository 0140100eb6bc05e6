//===- Warps.h - a grid of emulated GPU threads ----------------*- C++ -*-===//
//
// Runs a rewritten kernel (KernelRewrite.h) over a grid on the calling host
// thread: one block at a time, each GPU thread a fiber with its own stack.
// A thread runs until it reaches a warp collective (shfl.sync, mma.sync,
// bar.warp.sync) or a block barrier; when every live lane of its warp (every
// live thread of its block) is there, the collective is computed from all of
// their operands — the PTX ISA's semantics and fragment layouts, written from
// the ISA, not from kvc's kernel generator — and they go on. A collective some
// lanes never reach (divergence, exited lanes) is reported, not guessed.
// cp.async copies are kept per thread in their groups and performed when a
// wait completes them, or at issue on reverse launches (runGrid).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_GPUEMULATOR_WARPS_H
#define KVC_GPUEMULATOR_WARPS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>

namespace kvc {
namespace gpuemu {

struct Dim3 {
  uint32_t x = 1, y = 1, z = 1;
  uint64_t count() const { return uint64_t(x) * y * z; }
};

/// `void entry(void **params)`, as KernelRewrite makes it.
using KernelEntry = void (*)(void **);

/// Host memory standing for a shared-memory variable; poisoned (0xFF bytes:
/// NaN as f32 and f16) before each block, as shared memory starts undefined.
struct SharedRegion {
  void *address = nullptr;
  uint64_t bytes = 0;
};

/// Runs `entry` over `grid` x `block`. Errors name the block and what went
/// wrong (divergent or incomplete collectives, a deadlock). Every other call
/// runs blocks and threads in reverse order and performs cp.async copies at
/// issue rather than at the wait, so that a race shows as a result that
/// differs between two launches.
llvm::Error runGrid(KernelEntry entry, void **params, Dim3 grid, Dim3 block,
                    llvm::ArrayRef<SharedRegion> shared);

/// How mma.sync sums its fp16 products (exact) and C in f32.
enum class MmaAccumulation {
  /// The exact sum rounded once to f32 (to nearest).
  RoundOnce,
  /// A model of the tensor cores' accumulation as Fasi, Higham, Mikaitis
  /// and Pranesh measured it on V100, T4 and A100 ("Numerical behavior of
  /// NVIDIA tensor cores", PeerJ CS 2021): no guard bits and truncation.
  /// Each block of 8 products is added to the running sum with every term
  /// aligned to the largest one's exponent and cut to a 24-bit significand
  /// there (bits below it dropped, toward zero), the sum truncated to f32.
  /// An approximation (block size and carry bits differ between chips),
  /// for checking that results do not depend on round-to-nearest sums.
  Truncating,
};

/// What mma.sync does with fp16 subnormal inputs.
enum class MmaSubnormalInputs {
  /// Their exact values (Fasi et al. measured this on V100, T4 and A100).
  Exact,
  /// Flushed to zero, sign kept: a model of tensor cores that do not take
  /// them, for checking which kernels depend on them.
  Flushed,
};

/// D = A * B + C of one mma.sync.m16n8k{8,16}.row.col.f32.f16.f16.f32 for a
/// whole warp: a[lane] holds k / 4 registers, b[lane] k / 8, c[lane] and
/// d[lane] four floats (fp16 pairs: the lower-indexed element in the low 16
/// bits). Exposed for the emulator's unit test.
void warpMma(unsigned k, const uint32_t (*a)[4], const uint32_t (*b)[2],
             const float (*c)[4], float (*d)[4],
             MmaAccumulation accumulation = MmaAccumulation::RoundOnce,
             MmaSubnormalInputs subnormals = MmaSubnormalInputs::Exact);

/// The accumulation the grids' mma.sync use from now on (RoundOnce at
/// the start). Thread-safe.
void setMmaAccumulation(MmaAccumulation accumulation);
/// The same for subnormal inputs (Exact at the start).
void setMmaSubnormalInputs(MmaSubnormalInputs subnormals);

} // namespace gpuemu
} // namespace kvc

#endif // KVC_GPUEMULATOR_WARPS_H
