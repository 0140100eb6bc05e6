//===- Warps.cpp - a grid of emulated GPU threads -------------------------===//

#include "Warps.h"
#include "EmulatorAbi.h"

#include "kvc/GPUEmulator/Emulator.h"
#include "kvc/Numerics/Half.h"

#include "llvm/ADT/Twine.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <ucontext.h>
#include <vector>

using namespace llvm;

namespace kvc {
namespace gpuemu {

namespace {

constexpr unsigned kLanes = 32;
std::atomic<MmaAccumulation> mmaAccumulation{MmaAccumulation::RoundOnce};
std::atomic<MmaSubnormalInputs> mmaSubnormalInputs{MmaSubnormalInputs::Exact};
/// Each fiber's stack. The kernels use no local memory on the GPU; on the
/// host their spills and the emulator's calls need a few KB.
constexpr size_t kStackBytes = 256 * 1024;

enum class Wait { None, Shuffle, Mma, WarpSync, Barrier, Done };

/// A cp.async issued and not yet performed.
struct AsyncCopy {
  void *dst;
  const void *src;
  uint32_t bytes;
  uint64_t group; ///< the id of its cp.async-group
};

struct Thread {
  ucontext_t context; ///< the fiber's start
  jmp_buf jump;       ///< where it parked
  bool started = false;
  Dim3 tid;
  uint32_t linear = 0;
  Wait wait = Wait::None;
  // shfl.sync (and bar.warp.sync's mask) operands and result.
  int32_t mode = 0, mask = 0, value = 0, laneArg = 0, clamp = 0, result = 0;
  // mma.sync operands and result.
  unsigned k = 0;
  uint32_t a[4] = {}, b[2] = {};
  float c[4] = {}, d[4] = {};
  // cp.async: the copies not yet performed, in issue order, and the id of
  // the group being formed (committed groups have the ids below it).
  std::vector<AsyncCopy> copies;
  uint64_t group = 0;
  char *stack = nullptr; ///< kStackBytes from fiberStacks()
};

struct Block {
  KernelEntry entry = nullptr;
  void **params = nullptr;
  Dim3 grid, block, ctaid;
  ucontext_t scheduler; ///< where fibers start from
  jmp_buf schedulerJump;
  std::vector<Thread> threads;
  Thread *current = nullptr;
  /// The first fault of an instruction of one thread (a misaligned bulk
  /// prefetch or cp.async): the block stops with it.
  std::string fault;
  /// Whether cp.async copies are performed at issue rather than when a wait
  /// completes their group (see runGrid).
  bool eagerCopies = false;
};

/// Fiber stack `index` of this host thread, kept from launch to launch
/// rather than allocated for each.
char *fiberStack(unsigned index) {
  thread_local std::vector<std::unique_ptr<char[]>> stacks;
  while (stacks.size() <= index)
    stacks.emplace_back(new char[kStackBytes]);
  return stacks[index].get();
}

/// The block being run on this host thread (the rewritten kernels' calls
/// find their GPU thread through it).
thread_local Block *running = nullptr;

/// Performs `t`'s pending copies of the groups with ids below `end`, in
/// issue order, reading their sources now.
void completeCopies(Thread &t, uint64_t end) {
  size_t kept = 0;
  for (const AsyncCopy &copy : t.copies) {
    if (copy.group < end)
      std::memcpy(copy.dst, copy.src, copy.bytes);
    else
      t.copies[kept++] = copy;
  }
  t.copies.resize(kept);
}

// Fibers switch with _setjmp / _longjmp, which leave the signal mask alone
// (swapcontext makes a system call each time); swapcontext only starts them.
void threadMain() {
  Block &block = *running;
  block.entry(block.params);
  // Copies a thread never waited for still land in shared memory on the GPU.
  completeCopies(*block.current, UINT64_MAX);
  block.current->wait = Wait::Done;
  _longjmp(block.schedulerJump, 1);
}

/// Parks the current GPU thread until the scheduler resumes it.
void park(Wait wait) {
  Thread &self = *running->current;
  self.wait = wait;
  if (!_setjmp(self.jump))
    _longjmp(running->schedulerJump, 1);
}

/// Runs `t` until it parks or ends.
void resume(Block &block, Thread &t) {
  block.current = &t;
  if (_setjmp(block.schedulerJump))
    return;
  if (!t.started) {
    t.started = true;
    swapcontext(&block.scheduler, &t.context);
  }
  _longjmp(t.jump, 1);
}

/// shfl.sync for lane `lane` (the PTX ISA's pseudo-code): the source lane,
/// or the lane itself when the source is out of its segment.
unsigned shuffleSource(const Thread &t, unsigned lane) {
  const unsigned b = unsigned(t.laneArg) & 31, c = unsigned(t.clamp) & 31;
  const unsigned segmask = (unsigned(t.clamp) >> 8) & 31;
  const unsigned maxLane = (lane & segmask) | (c & ~segmask);
  const unsigned minLane = lane & segmask;
  int j = int(lane);
  bool inRange = false;
  switch (t.mode) {
  case kShflUp:
    j = int(lane) - int(b);
    inRange = j >= int(maxLane);
    break;
  case kShflDown:
    j = int(lane) + int(b);
    inRange = j <= int(maxLane);
    break;
  case kShflBfly:
    j = int(lane ^ b);
    inRange = j <= int(maxLane);
    break;
  default:
    j = int(minLane | (b & ~segmask));
    inRange = j <= int(maxLane);
    break;
  }
  return inRange ? unsigned(j) : lane;
}

std::string where(const Block &block) {
  return ("block (" + Twine(block.ctaid.x) + ", " + Twine(block.ctaid.y) +
          ", " + Twine(block.ctaid.z) + ")")
      .str();
}

/// Runs the collective the lanes [first, first + count) all wait at.
Error runCollective(Block &block, unsigned first, unsigned count) {
  Thread *lanes = &block.threads[first];
  const Wait kind = lanes[0].wait;
  const unsigned warp = first / kLanes;
  for (unsigned i = 0; i < count; ++i)
    if (lanes[i].wait != kind || (kind == Wait::Mma && lanes[i].k != lanes[0].k) ||
        (kind == Wait::Shuffle && lanes[i].mode != lanes[0].mode))
      return createStringError(
          inconvertibleErrorCode(),
          "warp " + Twine(warp) + " of " + where(block) +
              ": its lanes wait at different collectives (divergence)");
  if (kind == Wait::Shuffle || kind == Wait::WarpSync) {
    const uint32_t full = count == kLanes ? ~0u : (1u << count) - 1u;
    for (unsigned i = 0; i < count; ++i)
      if (uint32_t(lanes[i].mask) != full)
        return createStringError(
            inconvertibleErrorCode(),
            "warp " + Twine(warp) + " of " + where(block) + ": " +
                (kind == Wait::Shuffle ? "shfl.sync" : "bar.warp.sync") +
                " with member mask 0x" +
                Twine::utohexstr(uint32_t(lanes[i].mask)) +
                " (the emulator supports whole warps)");
  }
  if (kind == Wait::Shuffle) {
    int32_t values[kLanes];
    for (unsigned i = 0; i < count; ++i)
      values[i] = lanes[i].value;
    for (unsigned i = 0; i < count; ++i) {
      const unsigned source = shuffleSource(lanes[i], i);
      if (source >= count)
        return createStringError(inconvertibleErrorCode(),
                                 "warp " + Twine(warp) + " of " + where(block) +
                                     ": shfl.sync reads lane " + Twine(source) +
                                     ", which does not exist");
      lanes[i].result = values[source];
    }
  } else if (kind == Wait::Mma) {
    if (count != kLanes)
      return createStringError(inconvertibleErrorCode(),
                               "warp " + Twine(warp) + " of " + where(block) +
                                   ": mma.sync with " + Twine(count) +
                                   " lanes (it needs all 32)");
    uint32_t a[kLanes][4], b[kLanes][2];
    float c[kLanes][4], d[kLanes][4];
    for (unsigned i = 0; i < kLanes; ++i) {
      std::memcpy(a[i], lanes[i].a, sizeof a[i]);
      std::memcpy(b[i], lanes[i].b, sizeof b[i]);
      std::memcpy(c[i], lanes[i].c, sizeof c[i]);
    }
    warpMma(lanes[0].k, a, b, c, d,
            mmaAccumulation.load(std::memory_order_relaxed),
            mmaSubnormalInputs.load(std::memory_order_relaxed));
    for (unsigned i = 0; i < kLanes; ++i)
      std::memcpy(lanes[i].d, d[i], sizeof d[i]);
  }
  for (unsigned i = 0; i < count; ++i)
    lanes[i].wait = Wait::None;
  return Error::success();
}

/// Runs one block to completion; `reverse` runs its threads from the last.
Error runBlock(Block &block, bool reverse) {
  const unsigned n = block.threads.size();
  for (Thread &t : block.threads) {
    t.wait = Wait::None;
    t.started = false;
    t.copies.clear();
    t.group = 0;
    getcontext(&t.context);
    t.context.uc_stack.ss_sp = t.stack;
    t.context.uc_stack.ss_size = kStackBytes;
    t.context.uc_link = nullptr; // threadMain never returns
    makecontext(&t.context, threadMain, 0);
  }
  for (;;) {
    bool progress = false;
    for (unsigned i = 0; i < n; ++i) {
      Thread &t = block.threads[reverse ? n - 1 - i : i];
      if (t.wait == Wait::None) {
        resume(block, t);
        progress = true;
        if (!block.fault.empty())
          return createStringError(inconvertibleErrorCode(), block.fault);
      }
    }
    // Every thread waits or is done: release the complete collectives.
    unsigned alive = 0, atBarrier = 0;
    for (unsigned first = 0; first < n; first += kLanes) {
      const unsigned count = std::min(kLanes, n - first);
      unsigned done = 0, atWarp = 0;
      for (unsigned i = first; i < first + count; ++i) {
        const Wait w = block.threads[i].wait;
        done += w == Wait::Done;
        atWarp += w == Wait::Shuffle || w == Wait::Mma || w == Wait::WarpSync;
        atBarrier += w == Wait::Barrier;
      }
      alive += count - done;
      if (atWarp == 0 || atWarp + done < count)
        continue;
      if (done)
        return createStringError(
            inconvertibleErrorCode(),
            "warp " + Twine(first / kLanes) + " of " + where(block) + ": " +
                Twine(done) + " lanes exited before a warp collective");
      if (Error e = runCollective(block, first, count))
        return e;
      progress = true;
    }
    if (alive == 0)
      return Error::success();
    if (!progress && atBarrier == alive) {
      for (Thread &t : block.threads)
        if (t.wait == Wait::Barrier)
          t.wait = Wait::None;
      progress = true;
    }
    if (!progress)
      return createStringError(
          inconvertibleErrorCode(),
          where(block) + ": deadlock: " + Twine(atBarrier) + " of " +
              Twine(alive) +
              " live threads at a barrier, the others at warp collectives "
              "their warps do not complete");
  }
}

} // namespace

void setMmaAccumulation(MmaAccumulation accumulation) {
  mmaAccumulation.store(accumulation, std::memory_order_relaxed);
}

void setMmaSubnormalInputs(MmaSubnormalInputs subnormals) {
  mmaSubnormalInputs.store(subnormals, std::memory_order_relaxed);
}

/// `x` truncated toward zero to a multiple of `unit` (a power of two; exact
/// in double for the magnitudes an mma's terms reach).
static double truncateTo(double x, double unit) {
  return std::trunc(x / unit) * unit;
}

/// `x` rounded toward zero to f32.
static float truncateToFloat(double x) {
  float f = float(x);
  if (std::fabs(double(f)) > std::fabs(x))
    f = std::nextafter(f, 0.0f);
  return f;
}

/// MmaAccumulation::Truncating's sum of `c` and `products`.
static float truncatingSum(float c, ArrayRef<double> products) {
  constexpr size_t kBlock = 8;
  double sum = c;
  for (size_t first = 0; first < products.size(); first += kBlock) {
    ArrayRef<double> block =
        products.slice(first, std::min(kBlock, products.size() - first));
    double largest = std::fabs(sum);
    for (double p : block)
      largest = std::max(largest, std::fabs(p));
    if (largest == 0)
      continue;
    int exponent;
    std::frexp(largest, &exponent); // largest = m * 2^exponent, m in [0.5, 1)
    const double unit = std::ldexp(1.0, exponent - 24);
    double aligned = truncateTo(sum, unit);
    for (double p : block)
      aligned += truncateTo(p, unit);
    sum = truncateToFloat(aligned);
  }
  return float(sum);
}

void warpMma(unsigned k, const uint32_t (*a)[4], const uint32_t (*b)[2],
             const float (*c)[4], float (*d)[4], MmaAccumulation accumulation,
             MmaSubnormalInputs subnormals) {
  auto half = [&](uint32_t reg, unsigned h) {
    uint16_t bits = uint16_t(reg >> (16 * h));
    // Exponent field 0: zero or a subnormal, flushed to a zero of its sign.
    if (subnormals == MmaSubnormalInputs::Flushed && !(bits & 0x7C00))
      bits &= 0x8000;
    return numerics::halfToFloat(bits);
  };
  float A[16][16] = {}, B[16][8] = {}, C[16][8] = {};
  for (unsigned lane = 0; lane < kLanes; ++lane) {
    const unsigned g = lane / 4, t = lane % 4;
    // A, row major: element i of the lane is half i % 2 of register i / 2.
    for (unsigned i = 0; i < k / 2; ++i) {
      const unsigned row = g + ((i / 2) % 2) * 8;
      const unsigned col = 2 * t + (i % 2) + (i >= 4 ? 8 : 0);
      A[row][col] = half(a[lane][i / 2], i % 2);
    }
    // B, column major: k rows 2t, 2t + 1 (and + 8 for k = 16), column g.
    for (unsigned i = 0; i < k / 4; ++i)
      B[2 * t + (i % 2) + (i >= 2 ? 8 : 0)][g] = half(b[lane][i / 2], i % 2);
    for (unsigned i = 0; i < 4; ++i)
      C[g + (i >= 2 ? 8 : 0)][2 * t + (i % 2)] = c[lane][i];
  }
  for (unsigned lane = 0; lane < kLanes; ++lane) {
    const unsigned g = lane / 4, t = lane % 4;
    for (unsigned i = 0; i < 4; ++i) {
      const unsigned row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i % 2);
      // fp16 products are exact in double.
      double products[16];
      for (unsigned j = 0; j < k; ++j)
        products[j] = double(A[row][j]) * double(B[j][col]);
      if (accumulation == MmaAccumulation::Truncating) {
        d[lane][i] = truncatingSum(C[row][col], ArrayRef(products, k));
        continue;
      }
      // One rounding to f32 at the end.
      double sum = C[row][col];
      for (unsigned j = 0; j < k; ++j)
        sum += products[j];
      d[lane][i] = float(sum);
    }
  }
}

Error runGrid(KernelEntry entry, void **params, Dim3 grid, Dim3 blockDim,
              ArrayRef<SharedRegion> shared) {
  Block block;
  block.entry = entry;
  block.params = params;
  block.grid = grid;
  block.block = blockDim;
  block.threads.resize(blockDim.count());
  for (uint32_t z = 0, i = 0; z < blockDim.z; ++z)
    for (uint32_t y = 0; y < blockDim.y; ++y)
      for (uint32_t x = 0; x < blockDim.x; ++x, ++i) {
        Thread &t = block.threads[i];
        t.tid = {x, y, z};
        t.linear = i;
        t.stack = fiberStack(i);
      }
  // Every other launch runs the blocks, and the threads between two
  // collectives, in the opposite order: a kernel that misses a barrier (or
  // has blocks race) then gives different results for the same call, which
  // checks that repeat their calls see.
  static std::atomic<uint64_t> launches{0};
  const bool reverse = launches.fetch_add(1) % 2 == 1;
  // cp.async lands at any time between its issue and the wait that
  // completes its group. Forward launches copy at the wait, so a read that
  // lacks the wait or the sync after it sees poison or stale bytes; reverse
  // ones copy at issue, so a copy over a stage that other lanes still read
  // without a sync in between changes what they read.
  block.eagerCopies = reverse;
  Block *outer = running;
  running = &block;
  Error result = Error::success();
  const uint64_t blocks = grid.count();
  block.fault.clear();
  for (uint64_t i = 0; i < blocks && !result; ++i) {
    const uint64_t linear = reverse ? blocks - 1 - i : i;
    block.ctaid = {uint32_t(linear % grid.x),
                   uint32_t(linear / grid.x % grid.y),
                   uint32_t(linear / grid.x / grid.y)};
    for (const SharedRegion &region : shared)
      std::memset(region.address, 0xff, region.bytes);
    result = runBlock(block, reverse);
  }
  running = outer;
  return result;
}

namespace {
/// The prefetches since the last takePrefetches, the first
/// kMaxPrefetches of them.
constexpr size_t kMaxPrefetches = size_t(1) << 20;
std::mutex prefetchMutex;
std::vector<Prefetch> prefetchLog;
} // namespace

std::vector<Prefetch> takePrefetches() {
  std::lock_guard<std::mutex> lock(prefetchMutex);
  std::vector<Prefetch> taken;
  taken.swap(prefetchLog);
  return taken;
}

} // namespace gpuemu
} // namespace kvc

using namespace kvc::gpuemu;

extern "C" void __kvc_emu_prefetch(const void *address, uint64_t bytes,
                                   int32_t bulk) {
  Block &b = *running;
  const auto at = reinterpret_cast<uintptr_t>(address);
  // cp.async.bulk.prefetch: "the source address and size must be aligned
  // to 16 bytes" (PTX ISA); a GPU's behaviour is undefined otherwise.
  if (bulk && (at % 16 != 0 || bytes % 16 != 0 || bytes == 0)) {
    if (b.fault.empty())
      b.fault = "thread " + std::to_string(b.current->linear) + " of " +
                where(b) + ": cp.async.bulk.prefetch.L2 of " +
                std::to_string(bytes) + " bytes at " + std::to_string(at % 16) +
                " bytes past a 16-byte boundary (address and size must be "
                "multiples of 16)";
    return;
  }
  // The range's ends are read, so that an address outside host memory
  // stops the program here rather than passing unseen.
  const volatile unsigned char *bytesAt =
      static_cast<const volatile unsigned char *>(address);
  (void)bytesAt[0];
  (void)bytesAt[bytes - 1];
  std::lock_guard<std::mutex> lock(prefetchMutex);
  if (prefetchLog.size() < kMaxPrefetches)
    prefetchLog.push_back({address, bytes, bulk != 0});
}

extern "C" void __kvc_emu_cp_async(void *dst, const void *src, int32_t bytes) {
  Block &b = *running;
  Thread &t = *b.current;
  const auto to = reinterpret_cast<uintptr_t>(dst);
  const auto from = reinterpret_cast<uintptr_t>(src);
  // "The source and destination addresses must be aligned to cp-size"
  // (PTX ISA); a GPU's behaviour is undefined otherwise.
  if (to % bytes != 0 || from % bytes != 0) {
    if (b.fault.empty())
      b.fault = "thread " + std::to_string(t.linear) + " of " + where(b) +
                ": cp.async of " + std::to_string(bytes) +
                " bytes with the source " + std::to_string(from % bytes) +
                " and the destination " + std::to_string(to % bytes) +
                " bytes past a multiple of " + std::to_string(bytes) +
                " (both addresses must be multiples of the size)";
    return;
  }
  if (b.eagerCopies)
    std::memcpy(dst, src, bytes);
  else
    t.copies.push_back({dst, src, uint32_t(bytes), t.group});
}

extern "C" void __kvc_emu_cp_async_commit(void) {
  // An empty group counts too (PTX ISA), as wait_group's N counts it.
  ++running->current->group;
}

extern "C" void __kvc_emu_cp_async_wait(int32_t pending) {
  Thread &t = *running->current;
  if (uint64_t(pending) < t.group)
    completeCopies(t, t.group - uint64_t(pending));
}

extern "C" int32_t __kvc_emu_sreg(int32_t which) {
  const Block &b = *running;
  const Thread &t = *b.current;
  switch (which) {
  case kTidX: return int32_t(t.tid.x);
  case kTidY: return int32_t(t.tid.y);
  case kTidZ: return int32_t(t.tid.z);
  case kNtidX: return int32_t(b.block.x);
  case kNtidY: return int32_t(b.block.y);
  case kNtidZ: return int32_t(b.block.z);
  case kCtaidX: return int32_t(b.ctaid.x);
  case kCtaidY: return int32_t(b.ctaid.y);
  case kCtaidZ: return int32_t(b.ctaid.z);
  case kNctaidX: return int32_t(b.grid.x);
  case kNctaidY: return int32_t(b.grid.y);
  case kNctaidZ: return int32_t(b.grid.z);
  case kLaneId: return int32_t(t.linear % kLanes);
  default: return int32_t(kLanes); // kWarpSize
  }
}

extern "C" void __kvc_emu_barrier(void) { park(Wait::Barrier); }

extern "C" void __kvc_emu_warp_sync(int32_t mask) {
  running->current->mask = mask;
  park(Wait::WarpSync);
}

extern "C" int32_t __kvc_emu_shfl(int32_t mode, int32_t mask, int32_t value,
                                  int32_t b, int32_t c) {
  Thread &t = *running->current;
  t.mode = mode;
  t.mask = mask;
  t.value = value;
  t.laneArg = b;
  t.clamp = c;
  park(Wait::Shuffle);
  return running->current->result;
}

extern "C" void __kvc_emu_mma_f16_f32(int32_t k, const uint32_t *a,
                                      const uint32_t *b, const float *c,
                                      float *d) {
  Thread &t = *running->current;
  t.k = unsigned(k);
  std::memcpy(t.a, a, sizeof(uint32_t) * (k / 4));
  std::memcpy(t.b, b, sizeof(uint32_t) * (k / 8));
  std::memcpy(t.c, c, sizeof t.c);
  park(Wait::Mma);
  std::memcpy(d, running->current->d, sizeof t.d);
}
