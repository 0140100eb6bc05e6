//===- EmulatorTestSupport.h - kernels in NVPTX IR for the emulator tests -===//
//
// The emulator tests write kernels in NVPTX LLVM IR (kHeader declares the
// intrinsics they call) and run them through the emulator's mgpu*
// functions as generated host code would call them.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_TEST_UNITTESTS_GPUEMULATOR_EMULATORTESTSUPPORT_H
#define KVC_TEST_UNITTESTS_GPUEMULATOR_EMULATORTESTSUPPORT_H

#include "kvc/GPUEmulator/Emulator.h"
#include "kvc_runtime_gpu.h"

#include "llvm/AsmParser/Parser.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <memory>
#include <string>
#include <vector>

namespace kvc::gpuemu::testing {

inline const char *kHeader = R"(
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

inline std::unique_ptr<llvm::Module> parse(llvm::LLVMContext &context,
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
inline std::string bitcode(const std::string &body) {
  llvm::LLVMContext context;
  auto module = parse(context, body);
  std::string bytes;
  if (module) {
    llvm::raw_string_ostream os(bytes);
    llvm::WriteBitcodeToFile(*module, os);
  }
  return bytes;
}

inline void launch(const std::string &body, const char *kernel, unsigned grid,
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
inline std::string takeError() {
  std::string error = kvc::gpuemu::lastError();
  kvc::gpuemu::clearError();
  return error;
}

} // namespace kvc::gpuemu::testing

#endif // KVC_TEST_UNITTESTS_GPUEMULATOR_EMULATORTESTSUPPORT_H
