//===- GpuLaunchTest.cpp - the mgpu* error record, with or without a GPU --===//
//
// Built with the CUDA backend only (the functions exist only then). These
// checks hold on machines without a GPU driver (every driver call fails the
// same recorded way) as well as on GPU machines; loading and launching real
// kernels is in cuda/CudaRuntimeTest.cpp.
//
//===----------------------------------------------------------------------===//

#include "kvc_runtime_gpu.h"

#include <gtest/gtest.h>

#include <string>

namespace {

/// Starts and ends every test with a clear record (it is process-wide).
class RuntimeGpuLaunch : public ::testing::Test {
protected:
  void SetUp() override { kvc_rt_gpu_clear_error(); }
  void TearDown() override { kvc_rt_gpu_clear_error(); }

  static std::string message() {
    const char *text = nullptr;
    kvc_rt_gpu_last_error(&text);
    return text ? text : "(null)";
  }
};

} // namespace

TEST_F(RuntimeGpuLaunch, NothingRecordedInitially) {
  const char *text = nullptr;
  EXPECT_EQ(kvc_rt_gpu_last_error(&text), 0);
  ASSERT_NE(text, nullptr);
  EXPECT_STREQ(text, "");
  EXPECT_EQ(kvc_rt_gpu_last_error(nullptr), 0);
}

TEST_F(RuntimeGpuLaunch, AFailedDriverCallIsRecordedAndNamed) {
  // Not a module image: CUDA_ERROR_INVALID_IMAGE on a GPU machine; without
  // a driver, the failure to load it. Either way an error naming the call.
  static char garbage[] = "this is not a CUDA module";
  EXPECT_EQ(mgpuModuleLoad(garbage, sizeof(garbage)), nullptr);
  const int32_t code = kvc_rt_gpu_last_error(nullptr);
  EXPECT_NE(code, 0);
  const std::string first = message();
  EXPECT_EQ(first.rfind("mgpuModuleLoad: ", 0), 0u) << first;
  // The CUresult's name, or why there is no driver to give one.
  EXPECT_TRUE(first.find(": CUDA_ERROR_") != std::string::npos ||
              first.find("the CUDA driver is not usable") != std::string::npos)
      << first;

  // Only the first error is kept; later failures are printed, not recorded.
  EXPECT_EQ(mgpuModuleGetFunction(nullptr, "kernel"), nullptr);
  EXPECT_EQ(kvc_rt_gpu_last_error(nullptr), code);
  EXPECT_EQ(message(), first);

  // Launches are skipped while an error is recorded: even a NULL kernel is
  // not looked at, and the record is unchanged.
  mgpuLaunchKernel(nullptr, 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, nullptr, 0);
  mgpuLaunchClusterKernel(nullptr, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, nullptr,
                          nullptr, nullptr);
  EXPECT_EQ(kvc_rt_gpu_last_error(nullptr), code);
  EXPECT_EQ(message(), first);

  kvc_rt_gpu_clear_error();
  EXPECT_EQ(kvc_rt_gpu_last_error(nullptr), 0);
  EXPECT_EQ(message(), "");
}

TEST_F(RuntimeGpuLaunch, BadLaunchesAreRecordedBeforeReachingTheDriver) {
  mgpuLaunchKernel(nullptr, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr, 0);
  EXPECT_NE(kvc_rt_gpu_last_error(nullptr), 0);
  EXPECT_NE(message().find("mgpuLaunchKernel: no kernel function"),
            std::string::npos)
      << message();
  kvc_rt_gpu_clear_error();

  // Sizes are MLIR index values; cuLaunchKernel takes unsigned ints.
  void *notAFunction = reinterpret_cast<void *>(uintptr_t(0x1000));
  mgpuLaunchKernel(notAFunction, 0, 1, 1, 32, 1, 1, 0, nullptr, nullptr,
                   nullptr, 0);
  EXPECT_NE(message().find("grid (0, 1, 1) out of range"), std::string::npos)
      << message();
  kvc_rt_gpu_clear_error();
  mgpuLaunchKernel(notAFunction, 1, 1, 1, intptr_t(1) << 32, 1, 1, 0, nullptr,
                   nullptr, nullptr, 0);
  EXPECT_NE(message().find("block (4294967296, 1, 1) out of range"),
            std::string::npos)
      << message();
  kvc_rt_gpu_clear_error();
  mgpuLaunchClusterKernel(notAFunction, -1, 1, 1, 2, 1, 1, 32, 1, 1, 0, nullptr,
                          nullptr, nullptr);
  EXPECT_NE(message().find("mgpuLaunchClusterKernel: cluster (-1, 1, 1)"),
            std::string::npos)
      << message();
}

TEST_F(RuntimeGpuLaunch, NullHandlesAndEmptyRequestsAreNoOps) {
  EXPECT_EQ(mgpuMemAlloc(0, nullptr, false), nullptr);
  mgpuMemFree(nullptr, nullptr);
  mgpuModuleUnload(nullptr);
  mgpuStreamDestroy(nullptr);
  mgpuEventDestroy(nullptr);
  mgpuMemcpy(nullptr, nullptr, 0, nullptr);
  mgpuMemset32(nullptr, 0, 0, nullptr);
  mgpuMemset16(nullptr, 0, 0, nullptr);
  mgpuSetDefaultDevice(0);
  EXPECT_EQ(kvc_rt_gpu_last_error(nullptr), 0) << message();
}
