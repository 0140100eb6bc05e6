//===- BenchTiming.h - How the benchmark times a call ---------------------===//
//
// attention_bench.cpp's clocks. On a GPU: CUDA events on the cache's
// stream, each timed call behind a memset of twice the device's L2 on that
// stream (the flush); in the dry run (KVC_ATTENTION_HOST: CPU loops, or
// with KVC_ATTENTION_EMULATED the emulated kernels) the host clock and no
// flush. Plus the percentiles of the table.
//
//===----------------------------------------------------------------------===//

#ifndef KVC_BENCHMARKS_GPU_BENCHTIMING_H
#define KVC_BENCHMARKS_GPU_BENCHTIMING_H

#include "CheckSupport.h"

#include "kvc_runtime.h"

#if !KVC_ATTENTION_HOST
#include <cuda_runtime.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

namespace kvc::gpucheck {

inline double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return std::nan("");
  std::sort(v.begin(), v.end());
  const double at = p * double(v.size() - 1);
  const size_t lo = size_t(at), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (at - double(lo));
}

#if KVC_ATTENTION_HOST
#if KVC_ATTENTION_EMULATED
constexpr const char *kTiming = "host clock (emulated kernels)";
#else
constexpr const char *kTiming = "host clock (dry run: CPU loops)";
#endif

/// The dry run has no device and no L2 to flush: both clocks are the host's.
struct Timer {
  std::string init(kvc_rt_cache *) { return ""; }
  std::string flush(bool) { return ""; }
  std::chrono::steady_clock::time_point begin;
  void start() { begin = std::chrono::steady_clock::now(); }
  std::string stop(double &us) {
    us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - begin).count();
    return "";
  }
};

inline std::string deviceInfo() { return "host (dry run)"; }
inline std::string prepareFlush(size_t &bytes) {
  bytes = 0;
  return "";
}
#else
constexpr const char *kTiming = "cuda events on the cache stream";

/// The L2 flush buffer, twice the device's L2, shared by every cache.
inline void *flushBuffer = nullptr;
inline size_t flushBytes = 0;

inline std::string prepareFlush(size_t &bytes) {
  int l2 = 0;
  if (cudaError_t err = cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0))
    return cudaProblem("cudaDeviceGetAttribute(L2 size)", err);
  flushBytes = 2 * size_t(std::max(l2, 1 << 20));
  if (cudaError_t err = cudaMalloc(&flushBuffer, flushBytes))
    return cudaProblem("cudaMalloc(flush buffer)", err);
  bytes = flushBytes;
  return "";
}

/// Events and flushes on the cache's stream.
struct Timer {
  cudaStream_t stream = nullptr;
  cudaEvent_t begin = nullptr, end = nullptr;
  unsigned flushes = 0;
  ~Timer() {
    cudaEventDestroy(begin);
    cudaEventDestroy(end);
  }
  std::string init(kvc_rt_cache *cache) {
    void *raw = nullptr;
    if (kvc_rt_cache_stream(cache, &raw) != KVC_RT_OK)
      return runtimeError("kvc_rt_cache_stream");
    stream = static_cast<cudaStream_t>(raw);
    if (cudaError_t err = cudaEventCreate(&begin))
      return cudaProblem("cudaEventCreate", err);
    if (cudaError_t err = cudaEventCreate(&end))
      return cudaProblem("cudaEventCreate", err);
    return "";
  }
  /// Overwrites twice the L2 size (a new byte each time), on the stream
  /// the call's kernels will run on; `wait` also waits for it on the host.
  std::string flush(bool wait) {
    if (cudaError_t err = cudaMemsetAsync(flushBuffer, int(++flushes & 0xFF),
                                          flushBytes, stream))
      return cudaProblem("cudaMemsetAsync(flush)", err);
    if (wait)
      if (cudaError_t err = cudaStreamSynchronize(stream))
        return cudaProblem("cudaStreamSynchronize(flush)", err);
    return "";
  }
  void start() { cudaEventRecord(begin, stream); }
  std::string stop(double &us) {
    float ms = 0;
    cudaEventRecord(end, stream);
    if (cudaError_t err = cudaEventSynchronize(end))
      return cudaProblem("cudaEventSynchronize", err);
    if (cudaError_t err = cudaEventElapsedTime(&ms, begin, end))
      return cudaProblem("cudaEventElapsedTime", err);
    us = ms * 1000.0;
    return "";
  }
};

inline std::string deviceInfo() {
  cudaDeviceProp p;
  int driver = 0;
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess)
    return "unknown";
  cudaDriverGetVersion(&driver);
  return std::string(p.name) + " (sm_" + std::to_string(p.major) +
         std::to_string(p.minor) + ", CUDA driver " +
         std::to_string(driver / 1000) + "." +
         std::to_string(driver % 1000 / 10) + ")";
}
#endif

} // namespace kvc::gpucheck

#endif // KVC_BENCHMARKS_GPU_BENCHTIMING_H
