//===- EmulatorTest.cpp - the GPU emulator on hand-written NVPTX kernels --===//
//
// Kernels written here in NVPTX LLVM IR go through the emulator's mgpu*
// functions as generated host code would call them: shuffles, a barrier and
// shared memory across warps and blocks, byte permutes, mma.sync against a
// matrix product whose fragments are placed by the PTX ISA's tables (restated
// here), special registers read in inline PTX, L2 prefetches, and the
// errors (recorded, as the CUDA runtime records
// them): unsupported intrinsics and PTX, bad bitcode, a symbol the JIT
// cannot resolve (at the first kernel lookup), exited lanes at a
// collective, a deadlock, and that nothing runs while one is recorded.
// cp.async and shared memory: AsyncCopyTest.cpp.
//
//===----------------------------------------------------------------------===//

#include "EmulatorTestSupport.h"

#include "../../../lib/GPUEmulator/KernelRewrite.h"
#include "../../../lib/GPUEmulator/Warps.h"

#include "kvc/Numerics/Half.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

namespace num = kvc::numerics;
using namespace kvc::gpuemu::testing;

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

TEST(GPUEmulator, SpecialRegistersReadInInlinePtx) {
  // KernelBuilder::freshThreadId's read: each thread writes the ids read
  // in inline PTX into the slot the intrinsics' ids name.
  const char *body = R"(
define ptx_kernel void @ids(ptr %out) {
  %tid = call i32 asm sideeffect "mov.u32 $0, %tid.x;", "=r"()
  %cta = call i32 asm sideeffect "mov.u32 $0, %ctaid.x;", "=r"()
  %tidI = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %ctaI = call i32 @llvm.nvvm.read.ptx.sreg.ctaid.x()
  %slot = shl i32 %ctaI, 6
  %at = or i32 %slot, %tidI
  %scaled = mul i32 %cta, 100
  %v = add i32 %scaled, %tid
  %o = getelementptr i32, ptr %out, i32 %at
  store i32 %v, ptr %o
  ret void
}
)";
  std::vector<int32_t> out(2 * 64, -1);
  launch(body, "ids", 2, 64, {out.data()});
  for (int cta = 0; cta < 2; ++cta)
    for (int t = 0; t < 64; ++t)
      EXPECT_EQ(out[cta * 64 + t], 100 * cta + t)
          << "block " << cta << " thread " << t;
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
         << "  %" << name << "p" << r << " = getelementptr " << type
         << ", ptr %" << name << ", i32 %" << name << "j" << r << "\n"
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
       << "  %dp" << r << " = getelementptr float, ptr %d, i32 %dj" << r << "\n"
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
                 kvc::gpuemu::MmaAccumulation accumulation,
                 kvc::gpuemu::MmaSubnormalInputs subnormals =
                     kvc::gpuemu::MmaSubnormalInputs::Exact) {
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
  kvc::gpuemu::warpMma(16, A, B, C, D, accumulation, subnormals);
  return D[0][0];
}

TEST(GPUEmulator, TruncatingAccumulationDropsBitsBelowTheLargestTerm) {
  using kvc::gpuemu::MmaAccumulation;
  // 2^24 + 16 ones: exact in f32, but the ones lie below the 24-bit
  // significand of 2^24 and are dropped, for either sign.
  EXPECT_EQ(uniformMma(1, 1, 0x1p24f, MmaAccumulation::RoundOnce),
            0x1p24f + 16);
  EXPECT_EQ(uniformMma(1, 1, 0x1p24f, MmaAccumulation::Truncating), 0x1p24f);
  EXPECT_EQ(uniformMma(1, -1, -0x1p24f, MmaAccumulation::Truncating), -0x1p24f);
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

TEST(GPUEmulator, FlushedSubnormalInputsAreZeros) {
  using kvc::gpuemu::MmaAccumulation;
  using kvc::gpuemu::MmaSubnormalInputs;
  // 3 * 2^-24 (a subnormal code as the folded passes read it) times 5, 16
  // products: exact, or nothing when flushed; either sign; the smallest
  // normal 2^-14 is kept.
  EXPECT_EQ(uniformMma(3 * 0x1p-24f, 5, 1, MmaAccumulation::RoundOnce,
                       MmaSubnormalInputs::Exact),
            1 + 16 * 15 * 0x1p-24f);
  EXPECT_EQ(uniformMma(3 * 0x1p-24f, 5, 1, MmaAccumulation::RoundOnce,
                       MmaSubnormalInputs::Flushed),
            1.0f);
  EXPECT_EQ(uniformMma(5, -3 * 0x1p-24f, 0, MmaAccumulation::Truncating,
                       MmaSubnormalInputs::Flushed),
            0.0f);
  EXPECT_EQ(uniformMma(0x1p-14f, 2, 0, MmaAccumulation::RoundOnce,
                       MmaSubnormalInputs::Flushed),
            32 * 0x1p-14f);
}

TEST(GPUEmulator, MmaSubnormalInputsComeFromTheEnvironment) {
  // KVC_GPU_EMULATOR_MMA_SUBNORMALS=flush: the launch's mma drops 2^-24
  // inputs; unset it keeps them; another value is an error.
  std::vector<uint16_t> a(32 * 8, num::floatToHalf(0x1p-24f)),
      b(32 * 4, num::floatToHalf(1.0f));
  std::vector<float> c(32 * 4, 0), d(32 * 4);
  auto run = [&] {
    std::fill(d.begin(), d.end(), -1.0f);
    launch(mmaKernel(16), "mma", 1, 32,
           {a.data(), b.data(), c.data(), d.data()});
  };
  ASSERT_EQ(setenv("KVC_GPU_EMULATOR_MMA_SUBNORMALS", "flush", 1), 0);
  run();
  EXPECT_EQ(takeError(), "");
  EXPECT_EQ(d[0], 0.0f);
  ASSERT_EQ(unsetenv("KVC_GPU_EMULATOR_MMA_SUBNORMALS"), 0);
  run();
  EXPECT_EQ(takeError(), "");
  EXPECT_EQ(d[0], 16 * 0x1p-24f);
  ASSERT_EQ(setenv("KVC_GPU_EMULATOR_MMA_SUBNORMALS", "ftz", 1), 0);
  run();
  EXPECT_EQ(d[0], -1.0f);
  EXPECT_NE(takeError().find("KVC_GPU_EMULATOR_MMA_SUBNORMALS"),
            std::string::npos);
  ASSERT_EQ(unsetenv("KVC_GPU_EMULATOR_MMA_SUBNORMALS"), 0);
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
  %c = call i32 asm "bfind.u32 $0, $1;", "=r,r"(i32 5)
  store i32 %c, ptr %out
  ret void
}
)");
  ASSERT_TRUE(ptx);
  result = kvc::gpuemu::rewriteForHost(*ptx, host, "x86_64-unknown-linux-gnu");
  ASSERT_FALSE(bool(result));
  EXPECT_EQ(llvm::toString(result.takeError()),
            "kvc gpu emulator: inline PTX \"bfind.u32 $0, $1;\"");

  // A special register read in inline PTX is one the emulator knows.
  auto clockPtx = parse(context, R"(
define ptx_kernel void @k(ptr %out) {
  %c = call i32 asm sideeffect "mov.u32 $0, %clock;", "=r"()
  store i32 %c, ptr %out
  ret void
}
)");
  ASSERT_TRUE(clockPtx);
  result =
      kvc::gpuemu::rewriteForHost(*clockPtx, host, "x86_64-unknown-linux-gnu");
  ASSERT_FALSE(bool(result));
  EXPECT_EQ(llvm::toString(result.takeError()),
            "kvc gpu emulator: special register %clock");

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

TEST(GPUEmulator, ModulesCompileWhenAKernelIsFirstAskedFor) {
  // The load rewrites the module but does not compile it, so a symbol the
  // JIT cannot resolve is an error at the first mgpuModuleGetFunction,
  // naming the kernel and the symbol; the module still unloads.
  const char *body = R"(
declare void @kvc_emulator_test_undefined()
define ptx_kernel void @calls(ptr %out) {
  call void @kvc_emulator_test_undefined()
  ret void
}
)";
  std::string bytes = bitcode(body);
  void *module = mgpuModuleLoad(bytes.data(), bytes.size());
  ASSERT_NE(module, nullptr);
  EXPECT_EQ(takeError(), "");
  EXPECT_EQ(mgpuModuleGetFunction(module, "calls"), nullptr);
  const std::string error = takeError();
  EXPECT_EQ(error.rfind("kvc gpu emulator: mgpuModuleGetFunction: kernel "
                        "calls: ",
                        0),
            0u)
      << error;
  EXPECT_NE(error.find("kvc_emulator_test_undefined"), std::string::npos)
      << error;
  mgpuModuleUnload(module);
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
