//===- EmulatorTest.cpp - the GPU emulator on hand-written NVPTX kernels --===//
//
// Kernels written here in NVPTX LLVM IR go through the emulator's mgpu*
// functions as generated host code would call them: shuffles, a barrier and
// shared memory across warps and blocks, byte permutes, mma.sync against a
// matrix product whose fragments are placed by the PTX ISA's tables (restated
// here), cp.async groups and bar.warp.sync (and the races they expose), and the
// errors (recorded, as the CUDA runtime records them): unsupported intrinsics
// and PTX, bad bitcode, exited lanes at a collective, a deadlock, and that
// nothing runs while one is recorded.
//
//===----------------------------------------------------------------------===//

#include "../../../lib/GPUEmulator/KernelRewrite.h"
#include "../../../lib/GPUEmulator/Warps.h"

#include "kvc/GPUEmulator/Emulator.h"
#include "kvc/Numerics/Half.h"
#include "kvc_runtime_gpu.h"

#include "llvm/AsmParser/Parser.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

namespace num = kvc::numerics;

const char *kHeader = R"(
target triple = "nvptx64-nvidia-cuda"
declare i32 @llvm.nvvm.read.ptx.sreg.tid.x()
declare i32 @llvm.nvvm.read.ptx.sreg.ctaid.x()
declare i32 @llvm.nvvm.shfl.sync.bfly.i32(i32, i32, i32, i32)
declare float @llvm.nvvm.shfl.sync.idx.f32(i32, float, i32, i32)
declare void @llvm.nvvm.barrier.cta.sync.aligned.all(i32)
declare i32 @llvm.nvvm.prmt(i32, i32, i32)
declare void @llvm.nvvm.prefetch.global.L2(ptr addrspace(1))
declare void @llvm.nvvm.cp.async.bulk.prefetch.L2(ptr addrspace(1), i32, i64, i1)
declare { float, float, float, float } @llvm.nvvm.mma.m16n8k16.row.col.f32.f32(<2 x half>, <2 x half>, <2 x half>, <2 x half>, <2 x half>, <2 x half>, float, float, float, float)
declare { float, float, float, float } @llvm.nvvm.mma.m16n8k8.row.col.f32.f32(<2 x half>, <2 x half>, <2 x half>, float, float, float, float)
declare void @llvm.nvvm.cp.async.cg.shared.global.16(ptr addrspace(3), ptr addrspace(1))
declare void @llvm.nvvm.cp.async.ca.shared.global.8(ptr addrspace(3), ptr addrspace(1))
declare void @llvm.nvvm.cp.async.commit.group()
declare void @llvm.nvvm.cp.async.wait.group(i32 immarg)
declare void @llvm.nvvm.cp.async.wait.all()
declare void @llvm.nvvm.bar.warp.sync(i32)
)";

std::unique_ptr<llvm::Module> parse(llvm::LLVMContext &context,
                                    const std::string &body) {
  llvm::SMDiagnostic error;
  auto module = llvm::parseAssemblyString(kHeader + body, error, context);
  if (!module) {
    std::string text;
    llvm::raw_string_ostream os(text);
    error.print("kernel", os);
    ADD_FAILURE() << text;
  }
  return module;
}

/// The module as bitcode, as `kvc-gpu-pipeline format=llvm` embeds it.
std::string bitcode(const std::string &body) {
  llvm::LLVMContext context;
  auto module = parse(context, body);
  std::string bytes;
  if (module) {
    llvm::raw_string_ostream os(bytes);
    llvm::WriteBitcodeToFile(*module, os);
  }
  return bytes;
}

void launch(const std::string &body, const char *kernel, unsigned grid,
            unsigned block, std::vector<void *> args,
            int32_t dynamicSharedBytes = 0) {
  std::string bytes = bitcode(body);
  void *module = mgpuModuleLoad(bytes.data(), bytes.size());
  void *function = mgpuModuleGetFunction(module, kernel);
  std::vector<void *> params;
  for (void *&arg : args)
    params.push_back(&arg);
  mgpuLaunchKernel(function, grid, 1, 1, block, 1, 1, dynamicSharedBytes,
                   nullptr, params.data(), nullptr, params.size());
  mgpuModuleUnload(module);
}

/// The emulator's recorded error, cleared.
std::string takeError() {
  std::string error = kvc::gpuemu::lastError();
  kvc::gpuemu::clearError();
  return error;
}

TEST(GPUEmulator, ShuffleBarrierAndSharedMemory) {
  // Each thread swaps its id with its xor-1 neighbour, stores it in shared
  // memory, and after the barrier reads the slot mirrored across the two
  // warps; blocks reuse the shared array.
  const char *body = R"(
@slots = internal addrspace(3) global [64 x i32] undef
define ptx_kernel void @exchange(ptr %out) {
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %cta = call i32 @llvm.nvvm.read.ptx.sreg.ctaid.x()
  %x = call i32 @llvm.nvvm.shfl.sync.bfly.i32(i32 -1, i32 %tid, i32 1, i32 31)
  %slot = getelementptr [64 x i32], ptr addrspace(3) @slots, i32 0, i32 %tid
  store i32 %x, ptr addrspace(3) %slot
  call void @llvm.nvvm.barrier.cta.sync.aligned.all(i32 0)
  %mirror = sub i32 63, %tid
  %mslot = getelementptr [64 x i32], ptr addrspace(3) @slots, i32 0, i32 %mirror
  %y = load i32, ptr addrspace(3) %mslot
  %base = mul i32 %cta, 1000
  %r = add i32 %y, %base
  %row = mul i32 %cta, 64
  %i = add i32 %row, %tid
  %o = getelementptr i32, ptr %out, i32 %i
  store i32 %r, ptr %o
  ret void
}
)";
  std::vector<int32_t> out(3 * 64, -1);
  launch(body, "exchange", 3, 64, {out.data()});
  for (int cta = 0; cta < 3; ++cta)
    for (int t = 0; t < 64; ++t)
      EXPECT_EQ(out[cta * 64 + t], ((63 - t) ^ 1) + 1000 * cta)
          << "block " << cta << " thread " << t;
}

TEST(GPUEmulator, ShuffleIndexBroadcastsOneLane) {
  const char *body = R"(
define ptx_kernel void @broadcast(ptr %out) {
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %f = sitofp i32 %tid to float
  %x = call float @llvm.nvvm.shfl.sync.idx.f32(i32 -1, float %f, i32 5, i32 31)
  %o = getelementptr float, ptr %out, i32 %tid
  store float %x, ptr %o
  ret void
}
)";
  std::vector<float> out(64, -1.0f);
  launch(body, "broadcast", 1, 64, {out.data()});
  for (int t = 0; t < 64; ++t)
    EXPECT_EQ(out[t], float(t / 32 * 32 + 5)) << "thread " << t;
}

TEST(GPUEmulator, PermuteBytesFollowsTheIsa) {
  // prmt.b32 picks bytes of {b, a} by the selector's nibbles; a nibble's
  // high bit replicates the byte's sign. Examples from the PTX ISA's
  // definition: 0x5410 takes both low halves, 0x7632 both high halves.
  const char *body = R"(
define ptx_kernel void @permute(ptr %out) {
  %lo = call i32 @llvm.nvvm.prmt(i32 u0x33221100, i32 u0x77665544, i32 u0x5410)
  %hi = call i32 @llvm.nvvm.prmt(i32 u0x33221100, i32 u0x77665544, i32 u0x7632)
  %mix = call i32 @llvm.nvvm.prmt(i32 u0x80117F00, i32 u0x64646464, i32 u0xB4A4)
  store i32 %lo, ptr %out
  %o1 = getelementptr i32, ptr %out, i32 1
  store i32 %hi, ptr %o1
  %o2 = getelementptr i32, ptr %out, i32 2
  store i32 %mix, ptr %o2
  ret void
}
)";
  std::vector<uint32_t> out(3, 0);
  launch(body, "permute", 1, 1, {out.data()});
  EXPECT_EQ(out[0], 0x55441100u);
  EXPECT_EQ(out[1], 0x77663322u);
  // Nibbles 4, A (byte 2 = 0x11, sign 0 -> 0x00), 4, B (byte 3 = 0x80,
  // sign 1 -> 0xFF): bytes 0x64, 0x00, 0x64, 0xFF from low to high.
  EXPECT_EQ(out[2], 0xFF640064u);
}

TEST(GPUEmulator, AMissingBarrierChangesTheResultBetweenLaunches) {
  // Without the barrier a thread may read its mirror's slot before it is
  // written; the emulator alternates the threads' order between launches,
  // so two launches disagree (what the checks' repeated calls look for).
  const char *body = R"(
@slots = internal addrspace(3) global [64 x i32] undef
define ptx_kernel void @racy(ptr %out) {
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %slot = getelementptr [64 x i32], ptr addrspace(3) @slots, i32 0, i32 %tid
  store i32 %tid, ptr addrspace(3) %slot
  %mirror = sub i32 63, %tid
  %mslot = getelementptr [64 x i32], ptr addrspace(3) @slots, i32 0, i32 %mirror
  %y = load i32, ptr addrspace(3) %mslot
  %o = getelementptr i32, ptr %out, i32 %tid
  store i32 %y, ptr %o
  ret void
}
)";
  std::vector<int32_t> first(64, 0), second(64, 0);
  launch(body, "racy", 1, 64, {first.data()});
  launch(body, "racy", 1, 64, {second.data()});
  EXPECT_NE(first, second);
  // Unwritten shared memory reads as the poison, 0xFF bytes.
  EXPECT_EQ(std::count(first.begin(), first.end(), -1) +
                std::count(second.begin(), second.end(), -1),
            64);
}

/// A kernel @mma(a, b, c, d) in which each lane loads its registers of
/// mma.m16n8k`k` (fp16 pairs, lower index in the low half; lane i's at
/// element i * count) and calls the intrinsic, as generated kernels do.
std::string mmaKernel(unsigned k) {
  std::string body;
  llvm::raw_string_ostream os(body);
  const unsigned aRegs = k / 4, bRegs = k / 8;
  os << "define ptx_kernel void @mma(ptr %a, ptr %b, ptr %c, ptr %d) {\n"
     << "  %lane = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()\n";
  auto loadRegs = [&](const char *name, unsigned count, const char *type) {
    for (unsigned r = 0; r < count; ++r)
      os << "  %" << name << "i" << r << " = mul i32 %lane, " << count << "\n"
         << "  %" << name << "j" << r << " = add i32 %" << name << "i" << r
         << ", " << r << "\n"
         << "  %" << name << "p" << r << " = getelementptr " << type << ", ptr %"
         << name << ", i32 %" << name << "j" << r << "\n"
         << "  %" << name << r << " = load " << type << ", ptr %" << name << "p"
         << r << "\n";
  };
  loadRegs("a", aRegs, "<2 x half>");
  loadRegs("b", bRegs, "<2 x half>");
  loadRegs("c", 4, "float");
  os << "  %r = call { float, float, float, float } @llvm.nvvm.mma.m16n8k" << k
     << ".row.col.f32.f32(";
  for (unsigned r = 0; r < aRegs; ++r)
    os << "<2 x half> %a" << r << ", ";
  for (unsigned r = 0; r < bRegs; ++r)
    os << "<2 x half> %b" << r << ", ";
  os << "float %c0, float %c1, float %c2, float %c3)\n";
  for (unsigned r = 0; r < 4; ++r)
    os << "  %d" << r << " = extractvalue { float, float, float, float } %r, "
       << r << "\n"
       << "  %di" << r << " = mul i32 %lane, 4\n"
       << "  %dj" << r << " = add i32 %di" << r << ", " << r << "\n"
       << "  %dp" << r << " = getelementptr float, ptr %d, i32 %dj" << r
       << "\n"
       << "  store float %d" << r << ", ptr %dp" << r << "\n";
  os << "  ret void\n}\n";
  return body;
}

/// The PTX ISA's fragment tables for mma.m16n8k{8,16} with f16 A/B and f32
/// C/D (groupID = lane >> 2, threadID_in_group = lane % 4), restated:
/// A element i of a lane sits at row groupID (+8 for i in {2,3,6,7}) and
/// column 2 * threadID_in_group + (i & 1) (+8 for i >= 4); B element i at
/// row 2 * threadID_in_group + (i & 1) (+8 for i >= 2) and column groupID;
/// C element i at row groupID (+8 for i >= 2), column 2 * tig + (i & 1).
void checkMma(unsigned k) {
  std::mt19937 rng(k);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  std::vector<float> A(16 * k), B(k * 8), C(16 * 8);
  for (float &x : A)
    x = num::roundToHalf(uniform(rng));
  for (float &x : B)
    x = num::roundToHalf(uniform(rng));
  for (float &x : C)
    x = uniform(rng);
  std::vector<uint16_t> aFrag(32 * (k / 2)), bFrag(32 * (k / 4));
  std::vector<float> cFrag(32 * 4), dFrag(32 * 4, -1.0f);
  for (unsigned lane = 0; lane < 32; ++lane) {
    const unsigned g = lane >> 2, tig = lane % 4;
    for (unsigned i = 0; i < k / 2; ++i) {
      const bool lowRow = i < 2 || (i >= 4 && i < 6);
      const unsigned row = lowRow ? g : g + 8;
      const unsigned col = 2 * tig + (i & 1) + (i >= 4 ? 8 : 0);
      aFrag[lane * (k / 2) + i] = num::floatToHalf(A[row * k + col]);
    }
    for (unsigned i = 0; i < k / 4; ++i) {
      const unsigned row = 2 * tig + (i & 1) + (i >= 2 ? 8 : 0);
      bFrag[lane * (k / 4) + i] = num::floatToHalf(B[row * 8 + g]);
    }
    for (unsigned i = 0; i < 4; ++i)
      cFrag[lane * 4 + i] = C[(i < 2 ? g : g + 8) * 8 + 2 * tig + (i & 1)];
  }
  launch(mmaKernel(k), "mma", 1, 32,
         {aFrag.data(), bFrag.data(), cFrag.data(), dFrag.data()});
  for (unsigned lane = 0; lane < 32; ++lane)
    for (unsigned i = 0; i < 4; ++i) {
      const unsigned row = (i < 2 ? lane / 4 : lane / 4 + 8);
      const unsigned col = 2 * (lane % 4) + (i & 1);
      double expected = C[row * 8 + col];
      for (unsigned j = 0; j < k; ++j)
        expected += double(A[row * k + j]) * B[j * 8 + col];
      EXPECT_NEAR(dFrag[lane * 4 + i], expected, 1e-5)
          << "k " << k << " lane " << lane << " element " << i;
    }
}

TEST(GPUEmulator, MmaM16N8K16FollowsTheIsaFragments) { checkMma(16); }
TEST(GPUEmulator, MmaM16N8K8FollowsTheIsaFragments) { checkMma(8); }

/// warpMma of A = `a` and B = `b` everywhere (fp16 values) and C = `c`:
/// element 0 of lane 0's D.
float uniformMma(float a, float b, float c,
                 kvc::gpuemu::MmaAccumulation accumulation) {
  auto pair = [](float x) {
    const uint32_t h = num::floatToHalf(x);
    return h | h << 16;
  };
  uint32_t A[32][4], B[32][2];
  float C[32][4], D[32][4];
  for (unsigned lane = 0; lane < 32; ++lane) {
    std::fill(std::begin(A[lane]), std::end(A[lane]), pair(a));
    std::fill(std::begin(B[lane]), std::end(B[lane]), pair(b));
    std::fill(std::begin(C[lane]), std::end(C[lane]), c);
  }
  kvc::gpuemu::warpMma(16, A, B, C, D, accumulation);
  return D[0][0];
}

TEST(GPUEmulator, TruncatingAccumulationDropsBitsBelowTheLargestTerm) {
  using kvc::gpuemu::MmaAccumulation;
  // 2^24 + 16 ones: exact in f32, but the ones lie below the 24-bit
  // significand of 2^24 and are dropped, for either sign.
  EXPECT_EQ(uniformMma(1, 1, 0x1p24f, MmaAccumulation::RoundOnce),
            0x1p24f + 16);
  EXPECT_EQ(uniformMma(1, 1, 0x1p24f, MmaAccumulation::Truncating), 0x1p24f);
  EXPECT_EQ(uniformMma(1, -1, -0x1p24f, MmaAccumulation::Truncating),
            -0x1p24f);
  // 1 + 16 * 1.5 * 2^-28: to nearest 1 + 2^-23, truncated 1.
  EXPECT_EQ(uniformMma(0x1p-14f, 0x1.8p-14f, 1, MmaAccumulation::RoundOnce),
            1 + 0x1p-23f);
  EXPECT_EQ(uniformMma(0x1p-14f, 0x1.8p-14f, 1, MmaAccumulation::Truncating),
            1.0f);
  // Sums that fit keep every bit: 2 * 16 ones on 0.5.
  EXPECT_EQ(uniformMma(1, 2, 0.5f, MmaAccumulation::Truncating), 32.5f);
  // fp16 subnormal inputs are exact products (as on the tensor cores).
  EXPECT_EQ(uniformMma(0x1p-24f, 3, 0, MmaAccumulation::Truncating),
            48 * 0x1p-24f);
}

TEST(GPUEmulator, MmaAccumulationComesFromTheEnvironment) {
  // KVC_GPU_EMULATOR_MMA=truncate: the launch's mma truncates (2^24 plus
  // 16 ones stays 2^24), unset it rounds once; another value is an error.
  std::vector<uint16_t> a(32 * 8, num::floatToHalf(1.0f)), b(32 * 4, a[0]);
  std::vector<float> c(32 * 4, 0x1p24f), d(32 * 4);
  auto run = [&] {
    std::fill(d.begin(), d.end(), -1.0f);
    launch(mmaKernel(16), "mma", 1, 32,
           {a.data(), b.data(), c.data(), d.data()});
  };
  ASSERT_EQ(setenv("KVC_GPU_EMULATOR_MMA", "truncate", 1), 0);
  run();
  EXPECT_EQ(takeError(), "");
  EXPECT_EQ(d[0], 0x1p24f);
  ASSERT_EQ(unsetenv("KVC_GPU_EMULATOR_MMA"), 0);
  run();
  EXPECT_EQ(takeError(), "");
  EXPECT_EQ(d[0], 0x1p24f + 16);
  ASSERT_EQ(setenv("KVC_GPU_EMULATOR_MMA", "nearest", 1), 0);
  run();
  EXPECT_EQ(d[0], -1.0f);
  EXPECT_NE(takeError().find("KVC_GPU_EMULATOR_MMA"), std::string::npos);
  ASSERT_EQ(unsetenv("KVC_GPU_EMULATOR_MMA"), 0);
}

TEST(GPUEmulator, UnsupportedIntrinsicsAndPtxAreNamed) {
  llvm::LLVMContext context;
  const llvm::DataLayout host("e-m:e-i64:64-f80:128-n8:16:32:64-S128");
  auto clock = parse(context, R"(
declare i32 @llvm.nvvm.read.ptx.sreg.clock()
define ptx_kernel void @k() {
  %c = call i32 @llvm.nvvm.read.ptx.sreg.clock()
  ret void
}
)");
  ASSERT_TRUE(clock);
  auto result =
      kvc::gpuemu::rewriteForHost(*clock, host, "x86_64-unknown-linux-gnu");
  ASSERT_FALSE(bool(result));
  EXPECT_EQ(llvm::toString(result.takeError()),
            "kvc gpu emulator: special register %clock");

  auto ptx = parse(context, R"(
define ptx_kernel void @k(ptr %out) {
  %c = call i32 asm "mov.u32 $0, %clock;", "=r"()
  store i32 %c, ptr %out
  ret void
}
)");
  ASSERT_TRUE(ptx);
  result = kvc::gpuemu::rewriteForHost(*ptx, host, "x86_64-unknown-linux-gnu");
  ASSERT_FALSE(bool(result));
  EXPECT_EQ(llvm::toString(result.takeError()),
            "kvc gpu emulator: inline PTX \"mov.u32 $0, %clock;\"");

  // cp.async's src-size form (zero-filled tail) is not emulated.
  auto sized = parse(context, R"(
declare void @llvm.nvvm.cp.async.cg.shared.global.16.s(ptr addrspace(3), ptr addrspace(1), i32)
@stage = internal addrspace(3) global [16 x i8] undef, align 16
define ptx_kernel void @k(ptr addrspace(1) %in) {
  call void @llvm.nvvm.cp.async.cg.shared.global.16.s(ptr addrspace(3) @stage, ptr addrspace(1) %in, i32 8)
  ret void
}
)");
  ASSERT_TRUE(sized);
  result =
      kvc::gpuemu::rewriteForHost(*sized, host, "x86_64-unknown-linux-gnu");
  ASSERT_FALSE(bool(result));
  EXPECT_EQ(llvm::toString(result.takeError()),
            "kvc gpu emulator: intrinsic "
            "llvm.nvvm.cp.async.cg.shared.global.16.s");
}

TEST(GPUEmulator, BadBitcodeIsARecordedError) {
  std::string junk = "not bitcode";
  EXPECT_EQ(mgpuModuleLoad(junk.data(), junk.size()), nullptr);
  EXPECT_EQ(takeError().rfind("kvc gpu emulator: mgpuModuleLoad: not LLVM "
                              "bitcode",
                              0),
            0u);
  EXPECT_EQ(mgpuModuleGetFunction(nullptr, "k"), nullptr);
  EXPECT_EQ(takeError(),
            "kvc gpu emulator: mgpuModuleGetFunction: no module or name");
}

TEST(GPUEmulator, LanesExitedBeforeAShuffleStopTheGrid) {
  const char *body = R"(
define ptx_kernel void @early(ptr %out) {
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %low = icmp ult i32 %tid, 16
  br i1 %low, label %exit, label %shuffle
shuffle:
  %x = call i32 @llvm.nvvm.shfl.sync.bfly.i32(i32 -1, i32 %tid, i32 1, i32 31)
  store i32 %x, ptr %out
  br label %exit
exit:
  ret void
}
)";
  int32_t out = -1;
  launch(body, "early", 1, 32, {&out});
  EXPECT_EQ(takeError(), "kvc gpu emulator: kernel early: warp 0 of block (0, "
                         "0, 0): 16 lanes exited before a warp collective");
  EXPECT_EQ(out, -1);
}

TEST(GPUEmulator, DivergedBarrierIsADeadlock) {
  // Warp 1's lanes 0-15 wait at the barrier, 16-31 at a shuffle.
  const char *body = R"(
define ptx_kernel void @stuck(ptr %out) {
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %high = icmp uge i32 %tid, 48
  br i1 %high, label %shuffle, label %wait
shuffle:
  %x = call i32 @llvm.nvvm.shfl.sync.bfly.i32(i32 -1, i32 %tid, i32 1, i32 31)
  br label %exit
wait:
  call void @llvm.nvvm.barrier.cta.sync.aligned.all(i32 0)
  br label %exit
exit:
  ret void
}
)";
  int32_t out = 0;
  launch(body, "stuck", 1, 64, {&out});
  EXPECT_EQ(takeError().rfind("kvc gpu emulator: kernel stuck: block (0, 0, "
                              "0): deadlock: 48 of 64 live threads at a "
                              "barrier",
                              0),
            0u);
}

TEST(GPUEmulator, PrefetchesAreRecorded) {
  // Thread t prefetches line t * 128 of the buffer and, for t < 2, bulk
  // prefetches bytes [t * 256, t * 256 + %size).
  const char *body = R"(
define ptx_kernel void @prefetch(ptr addrspace(1) %buffer, i32 %size) {
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %line = mul i32 %tid, 128
  %at = getelementptr i8, ptr addrspace(1) %buffer, i32 %line
  call void @llvm.nvvm.prefetch.global.L2(ptr addrspace(1) %at)
  %low = icmp ult i32 %tid, 2
  br i1 %low, label %bulk, label %exit
bulk:
  %start = mul i32 %tid, 256
  %from = getelementptr i8, ptr addrspace(1) %buffer, i32 %start
  call void @llvm.nvvm.cp.async.bulk.prefetch.L2(ptr addrspace(1) %from, i32 %size, i64 0, i1 false)
  br label %exit
exit:
  ret void
}
)";
  kvc::gpuemu::takePrefetches();
  alignas(16) static unsigned char buffer[1024];
  launch(body, "prefetch", 1, 4, {buffer, reinterpret_cast<void *>(192)});
  EXPECT_EQ(takeError(), "");
  std::vector<kvc::gpuemu::Prefetch> seen = kvc::gpuemu::takePrefetches();
  ASSERT_EQ(seen.size(), 6u);
  unsigned lines = 0, bulks = 0;
  for (const kvc::gpuemu::Prefetch &p : seen) {
    const auto offset = static_cast<const unsigned char *>(p.address) - buffer;
    if (p.bulk) {
      EXPECT_EQ(p.bytes, 192u);
      EXPECT_EQ(offset % 256, 0);
      ++bulks;
    } else {
      EXPECT_EQ(p.bytes, 1u);
      EXPECT_EQ(offset % 128, 0);
      ++lines;
    }
  }
  EXPECT_EQ(lines, 4u);
  EXPECT_EQ(bulks, 2u);
  EXPECT_TRUE(kvc::gpuemu::takePrefetches().empty());

  // A size that is not a multiple of 16 stops the grid (one thread: which
  // of several reports first depends on the launch's thread order).
  launch(body, "prefetch", 1, 1, {buffer, reinterpret_cast<void *>(200)});
  EXPECT_EQ(takeError(),
            "kvc gpu emulator: kernel prefetch: thread 0 of block (0, 0, 0): "
            "cp.async.bulk.prefetch.L2 of 200 bytes at 0 bytes past a "
            "16-byte boundary (address and size must be multiples of 16)");
  kvc::gpuemu::takePrefetches();
}

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

TEST(GPUEmulator, NothingRunsWhileAnErrorIsRecorded) {
  const char *body = R"(
define ptx_kernel void @write(ptr %out) {
  store i32 7, ptr %out
  ret void
}
)";
  std::string junk = "not bitcode";
  mgpuModuleLoad(junk.data(), junk.size());
  int32_t out = 0;
  launch(body, "write", 1, 1, {&out});
  EXPECT_EQ(out, 0);
  EXPECT_FALSE(takeError().empty());
  launch(body, "write", 1, 1, {&out});
  EXPECT_EQ(out, 7);
  EXPECT_EQ(takeError(), "");
}

} // namespace
