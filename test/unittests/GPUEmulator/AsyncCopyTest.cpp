//===- AsyncCopyTest.cpp - the emulator's cp.async and shared memory ------===//
//
// cp.async groups and bar.warp.sync (and the races they expose when a wait
// or a sync is missing), misaligned copies, shared variables at their
// declared alignment, and dynamic shared memory.
//
//===----------------------------------------------------------------------===//

#include "EmulatorTestSupport.h"

#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace kvc::gpuemu::testing;

/// `segments` segments of 16 bytes, none of them 0xFF (the poison).
std::vector<uint8_t> tiles(unsigned segments, unsigned seed) {
  std::vector<uint8_t> bytes(16 * segments);
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = uint8_t((i * 7 + seed) % 251);
  return bytes;
}

/// `in` with each segment of 16 bytes replaced by the next one of its warp
/// (32 segments): what lane t reads back from lane t + 1.
std::vector<uint8_t> rotated(const std::vector<uint8_t> &in) {
  std::vector<uint8_t> out(in.size());
  for (size_t segment = 0; segment < in.size() / 16; ++segment) {
    const size_t next = segment / 32 * 32 + (segment + 1) % 32;
    std::copy_n(in.begin() + 16 * next, 16, out.begin() + 16 * segment);
  }
  return out;
}

/// How many of the segments [first, first + count) of `out` are poison.
unsigned poisoned(const std::vector<uint8_t> &out, size_t first, size_t count) {
  unsigned n = 0;
  for (size_t segment = first; segment < first + count; ++segment)
    n +=
        std::all_of(out.begin() + 16 * segment, out.begin() + 16 * segment + 16,
                    [](uint8_t byte) { return byte == 0xFF; });
  return n;
}

/// A one-warp kernel @rotate(in, out): lane t cp.async's bytes [16t, 16t +
/// 16) of `in` to its segment of shared memory, runs `then`, and copies
/// lane t + 1's segment (mod 32) to bytes [16t, 16t + 16) of `out`. A
/// last bar.warp.sync keeps lanes from exiting, which performs their
/// pending copies, before every lane has read.
std::string rotateKernel(const std::string &then) {
  return R"(
@stage = internal addrspace(3) global [512 x i8] undef, align 16
define ptx_kernel void @rotate(ptr addrspace(1) %in, ptr %out) {
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %off = mul i32 %tid, 16
  %src = getelementptr i8, ptr addrspace(1) %in, i32 %off
  %dst = getelementptr i8, ptr addrspace(3) @stage, i32 %off
  call void @llvm.nvvm.cp.async.cg.shared.global.16(ptr addrspace(3) %dst, ptr addrspace(1) %src)
)" + then +
         R"(
  %next = add i32 %tid, 1
  %lane = and i32 %next, 31
  %noff = mul i32 %lane, 16
  %from = getelementptr i8, ptr addrspace(3) @stage, i32 %noff
  %v = load <4 x i32>, ptr addrspace(3) %from, align 16
  %to = getelementptr i8, ptr %out, i32 %off
  store <4 x i32> %v, ptr %to, align 16
  call void @llvm.nvvm.bar.warp.sync(i32 -1)
  ret void
}
)";
}

TEST(GPUEmulator, CpAsyncWaitAndWarpSyncShareSegments) {
  const std::string body = rotateKernel(R"(
  call void @llvm.nvvm.cp.async.commit.group()
  call void @llvm.nvvm.cp.async.wait.group(i32 0)
  call void @llvm.nvvm.bar.warp.sync(i32 -1)
)");
  const std::vector<uint8_t> in = tiles(32, 1);
  // Two launches: one copies when the wait completes the group, the other
  // at issue (the emulator alternates); both must see every segment.
  for (int run = 0; run < 2; ++run) {
    std::vector<uint8_t> out(512, 0);
    launch(body, "rotate", 1, 32,
           {const_cast<uint8_t *>(in.data()), out.data()});
    EXPECT_EQ(takeError(), "");
    EXPECT_EQ(out, rotated(in)) << "launch " << run;
  }
}

TEST(GPUEmulator, CpAsyncWithoutWarpSyncShowsTheRace) {
  // Each lane waits for its own copy only: without bar.warp.sync, lane t
  // may read lane t + 1's segment before that lane's copy landed. Forward
  // launches copy at the wait and run lanes 0, 1, ... in turn, so lanes
  // 0-30 read the poison; reverse ones copy at issue and run lane 31
  // first, which reads lane 0's poisoned segment. Either launch is wrong.
  const std::string body = rotateKernel(R"(
  call void @llvm.nvvm.cp.async.commit.group()
  call void @llvm.nvvm.cp.async.wait.group(i32 0)
)");
  const std::vector<uint8_t> in = tiles(32, 2);
  std::vector<uint8_t> first(512, 0), second(512, 0);
  launch(body, "rotate", 1, 32,
         {const_cast<uint8_t *>(in.data()), first.data()});
  launch(body, "rotate", 1, 32,
         {const_cast<uint8_t *>(in.data()), second.data()});
  EXPECT_EQ(takeError(), "");
  EXPECT_TRUE(first != rotated(in) || second != rotated(in));
  EXPECT_EQ(poisoned(first, 0, 32) + poisoned(second, 0, 32), 32u);

  // Without the wait, a forward launch has performed no copy when the
  // lanes read: all 32 segments are poison (a reverse launch's are right).
  const std::string noWait = rotateKernel(R"(
  call void @llvm.nvvm.cp.async.commit.group()
  call void @llvm.nvvm.bar.warp.sync(i32 -1)
)");
  launch(noWait, "rotate", 1, 32,
         {const_cast<uint8_t *>(in.data()), first.data()});
  launch(noWait, "rotate", 1, 32,
         {const_cast<uint8_t *>(in.data()), second.data()});
  EXPECT_EQ(takeError(), "");
  EXPECT_EQ(poisoned(first, 0, 32) + poisoned(second, 0, 32), 32u);
  EXPECT_TRUE(first == rotated(in) || second == rotated(in));
}

TEST(GPUEmulator, CpAsyncWaitGroupLeavesTheNewestGroupsPending) {
  // Two groups per lane, A (bytes [0, 512)) and B ([512, 1024)), then
  // `wait`: wait_group 1 completes A only, so B reads as poison on the
  // launch that copies lazily (and as written on the one that copies at
  // issue); wait_all completes both. The last sync keeps lanes from
  // exiting, which performs their pending copies, before all have read.
  auto kernel = [](const char *wait) {
    return std::string(R"(
@stage = internal addrspace(3) global [1024 x i8] undef, align 16
define ptx_kernel void @groups(ptr addrspace(1) %in, ptr %out) {
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %offA = mul i32 %tid, 16
  %srcA = getelementptr i8, ptr addrspace(1) %in, i32 %offA
  %dstA = getelementptr i8, ptr addrspace(3) @stage, i32 %offA
  call void @llvm.nvvm.cp.async.cg.shared.global.16(ptr addrspace(3) %dstA, ptr addrspace(1) %srcA)
  call void @llvm.nvvm.cp.async.commit.group()
  %offB = add i32 %offA, 512
  %srcB = getelementptr i8, ptr addrspace(1) %in, i32 %offB
  %dstB = getelementptr i8, ptr addrspace(3) @stage, i32 %offB
  call void @llvm.nvvm.cp.async.cg.shared.global.16(ptr addrspace(3) %dstB, ptr addrspace(1) %srcB)
  call void @llvm.nvvm.cp.async.commit.group()
)") + wait +
           R"(
  call void @llvm.nvvm.bar.warp.sync(i32 -1)
  %next = add i32 %tid, 1
  %lane = and i32 %next, 31
  %nextA = mul i32 %lane, 16
  %fromA = getelementptr i8, ptr addrspace(3) @stage, i32 %nextA
  %a = load <4 x i32>, ptr addrspace(3) %fromA, align 16
  %toA = getelementptr i8, ptr %out, i32 %offA
  store <4 x i32> %a, ptr %toA, align 16
  %nextB = add i32 %nextA, 512
  %fromB = getelementptr i8, ptr addrspace(3) @stage, i32 %nextB
  %b = load <4 x i32>, ptr addrspace(3) %fromB, align 16
  %toB = getelementptr i8, ptr %out, i32 %offB
  store <4 x i32> %b, ptr %toB, align 16
  call void @llvm.nvvm.bar.warp.sync(i32 -1)
  ret void
}
)";
  };
  const std::vector<uint8_t> in = tiles(64, 3);
  const std::vector<uint8_t> expected = rotated(in);
  const std::vector<uint8_t> expectedA(expected.begin(),
                                       expected.begin() + 512);
  unsigned poisonedB = 0, rightB = 0;
  for (int run = 0; run < 2; ++run) {
    std::vector<uint8_t> out(1024, 0);
    launch(kernel("call void @llvm.nvvm.cp.async.wait.group(i32 1)"), "groups",
           1, 32, {const_cast<uint8_t *>(in.data()), out.data()});
    EXPECT_EQ(takeError(), "");
    EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + 512), expectedA)
        << "launch " << run;
    poisonedB += poisoned(out, 32, 32) == 32;
    rightB += out == expected;
  }
  EXPECT_EQ(poisonedB, 1u);
  EXPECT_EQ(rightB, 1u);
  for (int run = 0; run < 2; ++run) {
    std::vector<uint8_t> out(1024, 0);
    launch(kernel("call void @llvm.nvvm.cp.async.wait.all()"), "groups", 1, 32,
           {const_cast<uint8_t *>(in.data()), out.data()});
    EXPECT_EQ(takeError(), "");
    EXPECT_EQ(out, expected) << "launch " << run;
  }
}

TEST(GPUEmulator, CpAsyncIntoAStageStillReadShowsTheRace) {
  // Lane t loads its next tile into its stage segment while lane t - 1 may
  // still read the previous tile there (the sync comes too late). A launch
  // that copies lazily (at the wait, after the sync) hides it; the one
  // that copies at issue, from lane 31 down, has lanes 0-30 read the new
  // tile.
  const char *body = R"(
@stage = internal addrspace(3) global [512 x i8] undef, align 16
define ptx_kernel void @reuse(ptr addrspace(1) %in, ptr addrspace(1) %next, ptr %out) {
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %off = mul i32 %tid, 16
  %src = getelementptr i8, ptr addrspace(1) %in, i32 %off
  %dst = getelementptr i8, ptr addrspace(3) @stage, i32 %off
  call void @llvm.nvvm.cp.async.cg.shared.global.16(ptr addrspace(3) %dst, ptr addrspace(1) %src)
  call void @llvm.nvvm.cp.async.commit.group()
  call void @llvm.nvvm.cp.async.wait.group(i32 0)
  call void @llvm.nvvm.bar.warp.sync(i32 -1)
  %src2 = getelementptr i8, ptr addrspace(1) %next, i32 %off
  call void @llvm.nvvm.cp.async.cg.shared.global.16(ptr addrspace(3) %dst, ptr addrspace(1) %src2)
  %n = add i32 %tid, 1
  %lane = and i32 %n, 31
  %noff = mul i32 %lane, 16
  %from = getelementptr i8, ptr addrspace(3) @stage, i32 %noff
  %v = load <4 x i32>, ptr addrspace(3) %from, align 16
  %to = getelementptr i8, ptr %out, i32 %off
  store <4 x i32> %v, ptr %to, align 16
  call void @llvm.nvvm.bar.warp.sync(i32 -1)
  call void @llvm.nvvm.cp.async.commit.group()
  call void @llvm.nvvm.cp.async.wait.group(i32 0)
  ret void
}
)";
  const std::vector<uint8_t> in = tiles(32, 4), next = tiles(32, 5);
  const std::vector<uint8_t> expected = rotated(in), stale = rotated(next);
  unsigned right = 0;
  for (int run = 0; run < 2; ++run) {
    std::vector<uint8_t> out(512, 0);
    launch(body, "reuse", 1, 32,
           {const_cast<uint8_t *>(in.data()),
            const_cast<uint8_t *>(next.data()), out.data()});
    EXPECT_EQ(takeError(), "");
    if (out == expected) {
      ++right;
      continue;
    }
    for (unsigned lane = 0; lane < 32; ++lane)
      EXPECT_TRUE(
          std::equal(out.begin() + 16 * lane, out.begin() + 16 * lane + 16,
                     (lane < 31 ? stale : expected).begin() + 16 * lane))
          << "lane " << lane;
  }
  EXPECT_EQ(right, 1u);
}

TEST(GPUEmulator, MisalignedCpAsyncStopsTheGrid) {
  const char *body = R"(
@stage = internal addrspace(3) global [64 x i8] undef, align 16
define ptx_kernel void @misaligned(ptr addrspace(1) %in, ptr %out) {
  %src = getelementptr i8, ptr addrspace(1) %in, i32 4
  call void @llvm.nvvm.cp.async.ca.shared.global.8(ptr addrspace(3) @stage, ptr addrspace(1) %src)
  call void @llvm.nvvm.cp.async.wait.all()
  store i32 1, ptr %out
  ret void
}
)";
  alignas(16) static unsigned char buffer[64];
  int32_t out = 0;
  launch(body, "misaligned", 1, 1, {buffer, &out});
  EXPECT_EQ(takeError(),
            "kvc gpu emulator: kernel misaligned: thread 0 of block (0, 0, "
            "0): cp.async of 8 bytes with the source 4 and the destination 0 "
            "bytes past a multiple of 8 (both addresses must be multiples of "
            "the size)");
}

TEST(GPUEmulator, SharedVariablesSitAtTheirDeclaredAlignment) {
  // A shared array declared with 4-byte alignment is placed at an odd
  // multiple of 4 (as a GPU may place it), so a 16-byte cp.async into it
  // faults; declared with 16, the same copy lands. Its stores and reads
  // go to the placed bytes (the output shows the copy).
  auto kernel = [](int align) {
    return "@stage = internal addrspace(3) global [64 x i8] undef, align " +
           std::to_string(align) + R"(
define ptx_kernel void @aligned(ptr addrspace(1) %in, ptr %out) {
  call void @llvm.nvvm.cp.async.cg.shared.global.16(ptr addrspace(3) @stage, ptr addrspace(1) %in)
  call void @llvm.nvvm.cp.async.wait.all()
  %v = load <4 x i32>, ptr addrspace(3) @stage, align 4
  store <4 x i32> %v, ptr %out, align 4
  ret void
}
)";
  };
  alignas(16) static uint32_t in[4] = {1, 2, 3, 4};
  uint32_t out[4] = {};
  launch(kernel(16), "aligned", 1, 1, {in, out});
  EXPECT_EQ(takeError(), "");
  EXPECT_EQ(std::vector<uint32_t>(out, out + 4),
            std::vector<uint32_t>(in, in + 4));
  launch(kernel(4), "aligned", 1, 1, {in, out});
  // 4 or 12 bytes past a multiple of 16: an odd multiple of 4.
  const std::string error = takeError();
  EXPECT_NE(error.find("cp.async of 16 bytes with the source 0 and the "
                       "destination "),
            std::string::npos)
      << error;
  EXPECT_TRUE(error.find("destination 4 bytes") != std::string::npos ||
              error.find("destination 12 bytes") != std::string::npos)
      << error;
}

TEST(GPUEmulator, DynamicSharedMemory) {
  // An external zero-sized array is the launch's dynamic shared memory:
  // each thread writes its byte, and after the barrier reads its
  // neighbour's and the byte just past the launch's size, which is poison
  // (0xff) however much an earlier launch wrote there. The buffer sits at
  // an odd multiple of its declared 16 bytes.
  const char *body = R"(
@dynamic = external addrspace(3) global [0 x i8], align 16
define ptx_kernel void @neighbours(ptr %out, i32 %size) {
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %byte = trunc i32 %tid to i8
  %mine = getelementptr i8, ptr addrspace(3) @dynamic, i32 %tid
  store i8 %byte, ptr addrspace(3) %mine
  call void @llvm.nvvm.barrier.cta.sync.aligned.all(i32 0)
  %next = add i32 %tid, 1
  %wrapped = urem i32 %next, %size
  %at = getelementptr i8, ptr addrspace(3) @dynamic, i32 %wrapped
  %v = load i8, ptr addrspace(3) %at
  %o = getelementptr i8, ptr %out, i32 %tid
  store i8 %v, ptr %o
  %past = getelementptr i8, ptr addrspace(3) @dynamic, i32 %size
  %p = load i8, ptr addrspace(3) %past
  %po = getelementptr i8, ptr %out, i32 64
  store i8 %p, ptr %po
  %address = ptrtoint ptr addrspace(3) @dynamic to i64
  %phase = urem i64 %address, 32
  %phase8 = trunc i64 %phase to i8
  %ao = getelementptr i8, ptr %out, i32 65
  store i8 %phase8, ptr %ao
  ret void
}
)";
  auto size = [](uint32_t n) { return reinterpret_cast<void *>(uintptr_t(n)); };
  std::vector<uint8_t> out(66, 0);
  // 64 threads fill 64 bytes; then 16 threads, 16 bytes: byte 16 is
  // poison again.
  launch(body, "neighbours", 1, 64, {out.data(), size(64)}, 64);
  EXPECT_EQ(takeError(), "");
  launch(body, "neighbours", 1, 16, {out.data(), size(16)}, 16);
  EXPECT_EQ(takeError(), "");
  for (int t = 0; t < 16; ++t)
    EXPECT_EQ(out[t], (t + 1) % 16) << t;
  EXPECT_EQ(out[64], 0xff);
  EXPECT_EQ(out[65], 16);

  launch(body, "neighbours", 1, 1, {out.data(), size(1)}, 228 * 1024);
  EXPECT_EQ(takeError(), "kvc gpu emulator: mgpuLaunchKernel: 233472 bytes "
                         "of dynamic shared memory");

  // A zero-sized definition is not dynamic shared memory on the GPU (the
  // NVPTX backend makes it a static variable that overlaps the others).
  const char *defined = R"(
@dynamic = internal addrspace(3) global [0 x i8] undef, align 16
define ptx_kernel void @defined(ptr %out) {
  %v = load i8, ptr addrspace(3) @dynamic
  store i8 %v, ptr %out
  ret void
}
)";
  launch(defined, "defined", 1, 1, {out.data()}, 16);
  EXPECT_NE(takeError().find("shared variable 'dynamic' is a zero-sized "
                             "definition"),
            std::string::npos);
}

TEST(GPUEmulator, WarpSyncNeedsEveryLiveLane) {
  // Warp 0 syncs with %mask0, warp 1 (8 lanes of 40) with %mask1.
  const char *body = R"(
define ptx_kernel void @sync(ptr %out, i32 %mask0, i32 %mask1) {
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %first = icmp ult i32 %tid, 32
  %mask = select i1 %first, i32 %mask0, i32 %mask1
  call void @llvm.nvvm.bar.warp.sync(i32 %mask)
  %o = getelementptr i32, ptr %out, i32 %tid
  store i32 %tid, ptr %o
  ret void
}
)";
  auto mask = [](uint32_t m) { return reinterpret_cast<void *>(uintptr_t(m)); };
  std::vector<int32_t> out(40, -1);
  launch(body, "sync", 1, 40, {out.data(), mask(~0u), mask(0xFFu)});
  EXPECT_EQ(takeError(), "");
  for (int t = 0; t < 40; ++t)
    EXPECT_EQ(out[t], t);
  launch(body, "sync", 1, 32, {out.data(), mask(0xFFFFu), mask(0)});
  EXPECT_EQ(takeError(), "kvc gpu emulator: kernel sync: warp 0 of block (0, "
                         "0, 0): bar.warp.sync with member mask 0xffff (the "
                         "emulator supports whole warps)");
  launch(body, "sync", 1, 40, {out.data(), mask(~0u), mask(~0u)});
  EXPECT_EQ(takeError(), "kvc gpu emulator: kernel sync: warp 1 of block (0, "
                         "0, 0): bar.warp.sync with member mask 0xffffffff "
                         "(the emulator supports whole warps)");

  // Lanes at bar.warp.sync and at shfl.sync: divergence.
  const char *diverged = R"(
define ptx_kernel void @diverged(ptr %out) {
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %low = icmp ult i32 %tid, 16
  br i1 %low, label %sync, label %shuffle
sync:
  call void @llvm.nvvm.bar.warp.sync(i32 -1)
  br label %exit
shuffle:
  %x = call i32 @llvm.nvvm.shfl.sync.bfly.i32(i32 -1, i32 %tid, i32 1, i32 31)
  br label %exit
exit:
  ret void
}
)";
  launch(diverged, "diverged", 1, 32, {out.data()});
  EXPECT_EQ(takeError(), "kvc gpu emulator: kernel diverged: warp 0 of block "
                         "(0, 0, 0): its lanes wait at different collectives "
                         "(divergence)");
}

} // namespace
