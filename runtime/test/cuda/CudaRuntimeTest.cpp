//===- CudaRuntimeTest.cpp - The CUDA backend on a real device ------------===//
//
// A plain executable (GPU machines may lack GoogleTest), run by
// scripts/gpu_runtime_check.sh under compute-sanitizer. Prints
// "N passed, N failed"; exits 77 (skipped) without a CUDA device.
//  1. the model-based driver on the CUDA backend, every preset;
//  2. CUDA and CPU caches fed the same calls store the same bytes;
//  3. a kernel follows the device page tables into the pools (uniform and
//     per-head encodings);
//  4. device errors: a bad ordinal, an arena larger than the device.
// KVC_RT_CUDA_MODEL_OPS sets the model operations (default 20000).
//
//===----------------------------------------------------------------------===//

#include "ModelDriver.h"
#include "PageReadKernel.h"
#include "kvc_runtime.h"

#include "kvc/Numerics/Half.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace kvc::rt::testing;

namespace {
int passed = 0, failed = 0;

void check(bool ok, const std::string &what) {
  if (ok) {
    ++passed;
    return;
  }
  ++failed;
  std::printf("FAILED: %s\n", what.c_str());
}

std::vector<float> randomTokens(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> v(n);
  for (float &x : v)
    x = normal(rng);
  return v;
}

kvc_rt_tokens tokensOf(const std::vector<float> &k, const std::vector<float> &v,
                       const kvc_rt_cache_config &c, uint32_t total,
                       uint32_t first, uint32_t count) {
  kvc_rt_tokens t{};
  t.keys = k.data() + size_t{first} * c.head_dim;
  t.values = v.data() + size_t{first} * c.head_dim;
  t.num_tokens = count;
  t.dtype = KVC_RT_DTYPE_F32;
  t.kv_heads = c.kv_heads;
  t.head_dim = c.head_dim;
  t.head_stride = uint64_t(total) * c.head_dim;
  return t;
}

/// All blocks of (seq, layer) in page-table order, K then V.
std::vector<uint8_t> pageBytes(kvc_rt_cache *cache, kvc_rt_seq seq,
                               uint32_t layer) {
  kvc_rt_sequence_view view;
  std::vector<uint8_t> all;
  if (kvc_rt_sequence_view_get(cache, seq, layer, &view) != KVC_RT_OK)
    return all;
  for (uint32_t pool = 0; pool < 2; ++pool)
    for (uint32_t i = 0; i < view.num_pages; ++i)
      for (uint32_t h = 0; h < view.kv_heads; ++h) {
        kvc_rt_head_view hv; // heads may have different block sizes
        if (kvc_rt_head_view_get(cache, layer, h, &hv) != KVC_RT_OK)
          return {};
        std::vector<uint8_t> block(pool ? hv.v.block_bytes : hv.k.block_bytes);
        if (kvc_rt_read_block(cache, layer, view.page_table[i], h, pool,
                              block.data(), block.size()) != KVC_RT_OK)
          return {};
        all.insert(all.end(), block.begin(), block.end());
      }
  return all;
}

void modelOnCuda() {
  const char *env = std::getenv("KVC_RT_CUDA_MODEL_OPS");
  const uint64_t total = env && *env ? std::strtoull(env, nullptr, 10) : 20000;
  const uint64_t ops = total / numPresets() + 1;
  for (size_t p = 0; p < numPresets(); ++p) {
    ModelDriver driver;
    const ModelConfig config = preset(p, KVC_RT_BACKEND_CUDA);
    std::string err = driver.init(config);
    RandomChoices choices(1000 + p);
    for (uint64_t i = 1; i <= ops && err.empty(); ++i) {
      err = driver.step(choices);
      if (err.empty() && i % 1000 == 0)
        err = driver.checkAll();
    }
    if (err.empty())
      err = driver.checkAll();
    const OpCounts counts = driver.counts();
    if (err.empty())
      err = driver.finish();
    check(err.empty(), "model on CUDA, " + config.name + ": " + err);
    std::printf("model on CUDA, %s: %llu ops (%llu appends, %llu forks)\n",
                config.name.c_str(),
                static_cast<unsigned long long>(counts.steps),
                static_cast<unsigned long long>(counts.append),
                static_cast<unsigned long long>(counts.fork));
  }
}

void cudaMatchesCpu() {
  for (size_t p = 0; p < numPresets(); ++p) {
    ModelConfig cpuConfig = preset(p, KVC_RT_BACKEND_CPU);
    cpuConfig.config.pages_per_layer = 64;
    ModelConfig gpuConfig = cpuConfig;
    gpuConfig.config.backend = KVC_RT_BACKEND_CUDA;
    const kvc_rt_cache_config cc = cpuConfig.get(), gc = gpuConfig.get();
    kvc_rt_cache *cpu = nullptr, *gpu = nullptr;
    if (kvc_rt_cache_create(&cc, &cpu) != KVC_RT_OK ||
        kvc_rt_cache_create(&gc, &gpu) != KVC_RT_OK) {
      check(false, std::string("create: ") + kvc_rt_last_error());
      kvc_rt_cache_destroy(cpu);
      continue;
    }
    const uint32_t N = cc.max_tokens / 2;
    const std::vector<float> k = randomTokens(size_t{cc.kv_heads} * N * cc.head_dim, 7);
    const std::vector<float> v = randomTokens(size_t{cc.kv_heads} * N * cc.head_dim, 8);
    kvc_rt_seq a, b, af, bf;
    bool ok = kvc_rt_sequence_create(cpu, &a) == KVC_RT_OK &&
              kvc_rt_sequence_create(gpu, &b) == KVC_RT_OK;
    for (uint32_t l = 0; l < cc.num_layers && ok; ++l)
      for (uint32_t i = 0; i < N / 2 && ok; i += 5) {
        kvc_rt_tokens t = tokensOf(k, v, cc, N, i, std::min(5u, N / 2 - i));
        ok = kvc_rt_append(cpu, a, l, &t) == KVC_RT_OK &&
             kvc_rt_append(gpu, b, l, &t) == KVC_RT_OK;
      }
    // Fork, then let the child run on (copy-on-write of partial pages).
    ok = ok && kvc_rt_sequence_fork(cpu, a, &af) == KVC_RT_OK &&
         kvc_rt_sequence_fork(gpu, b, &bf) == KVC_RT_OK;
    for (uint32_t l = 0; l < cc.num_layers && ok; ++l) {
      kvc_rt_tokens t = tokensOf(k, v, cc, N, N / 2, N - N / 2);
      ok = kvc_rt_append(cpu, af, l, &t) == KVC_RT_OK &&
           kvc_rt_append(gpu, bf, l, &t) == KVC_RT_OK;
    }
    check(ok, cpuConfig.name + ": appends on both backends: " +
                  kvc_rt_last_error());
    for (uint32_t l = 0; l < cc.num_layers && ok; ++l) {
      check(pageBytes(cpu, a, l) == pageBytes(gpu, b, l) &&
                pageBytes(cpu, af, l) == pageBytes(gpu, bf, l),
            cpuConfig.name + ": CUDA pages equal CPU pages, layer " +
                std::to_string(l));
      std::vector<float> x(size_t{N} * cc.head_dim), y(x.size());
      for (uint32_t h = 0; h < cc.kv_heads; ++h) {
        kvc_rt_gather(cpu, af, l, h, x.data(), nullptr, N);
        kvc_rt_gather(gpu, bf, l, h, y.data(), nullptr, N);
        check(std::memcmp(x.data(), y.data(), x.size() * 4) == 0,
              cpuConfig.name + ": gather equal, layer " + std::to_string(l));
      }
    }
    check(kvc_rt_cache_verify(gpu) == KVC_RT_OK,
          std::string("verify (incl. the device page-table mirror): ") +
              kvc_rt_last_error());
    check(kvc_rt_cache_destroy(cpu) == KVC_RT_OK &&
              kvc_rt_cache_destroy(gpu) == KVC_RT_OK,
          "destroy");
  }
}

void kernelReadsPages(size_t presetIndex) {
  ModelConfig m = preset(presetIndex, KVC_RT_BACKEND_CUDA);
  m.config.pages_per_layer = 32;
  const kvc_rt_cache_config c = m.get();
  kvc_rt_cache *cache = nullptr;
  if (kvc_rt_cache_create(&c, &cache) != KVC_RT_OK) {
    check(false, std::string("create: ") + kvc_rt_last_error());
    return;
  }
  const uint32_t N = 200;
  const std::vector<float> k = randomTokens(size_t{c.kv_heads} * N * c.head_dim, 9);
  kvc_rt_seq other, seq;
  kvc_rt_sequence_create(cache, &other);
  kvc_rt_sequence_create(cache, &seq);
  kvc_rt_tokens t = tokensOf(k, k, c, N, 0, 70);
  kvc_rt_append(cache, other, 1, &t); // so that seq's pages are not 0, 1, ...
  t = tokensOf(k, k, c, N, 0, N);
  check(kvc_rt_append(cache, seq, 1, &t) == KVC_RT_OK, "append");
  kvc_rt_sequence_view view;
  kvc_rt_sequence_view_get(cache, seq, 1, &view);
  void *stream = nullptr;
  kvc_rt_cache_stream(cache, &stream);
  check(stream != nullptr, "a CUDA cache has a stream");
  check(view.page_table_device != view.page_table, "device page table");

  for (uint32_t pool = 0; pool < 2; ++pool) {
    const kvc_rt_block_layout &bl = pool ? view.v : view.k;
    const size_t bytes = size_t{view.num_pages} * bl.page_bytes;
    void *out = nullptr;
    cudaMalloc(&out, bytes);
    cudaError_t err = copyPagesOnDevice(pool ? view.v_pool : view.k_pool,
                                        view.page_table_device, view.num_pages,
                                        bl.page_bytes, out,
                                        static_cast<cudaStream_t>(stream));
    std::vector<uint8_t> got(bytes);
    if (err == cudaSuccess)
      err = cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
    if (err == cudaSuccess)
      err = cudaMemcpy(got.data(), out, bytes, cudaMemcpyDeviceToHost);
    cudaFree(out);
    check(err == cudaSuccess, std::string("kernel: ") + cudaGetErrorString(err));
    std::vector<uint8_t> want;
    for (uint32_t i = 0; i < view.num_pages; ++i)
      for (uint32_t h = 0; h < view.kv_heads; ++h) {
        kvc_rt_head_view hv;
        kvc_rt_head_view_get(cache, 1, h, &hv);
        std::vector<uint8_t> block(pool ? hv.v.block_bytes : hv.k.block_bytes);
        kvc_rt_read_block(cache, 1, view.page_table[i], h, pool, block.data(),
                          block.size());
        want.insert(want.end(), block.begin(), block.end());
      }
    check(got == want, m.name + (pool ? ": kernel reads V pages"
                                      : ": kernel reads K pages"));
  }
  // Residual rows: row i of head h holds token compressed + i in fp16.
  std::vector<uint16_t> rows(view.residual_tokens * c.head_dim);
  const uint32_t head = c.kv_heads - 1;
  cudaMemcpy(rows.data(),
             static_cast<const uint8_t *>(view.k_residual) +
                 head * view.residual_head_bytes,
             rows.size() * 2, cudaMemcpyDeviceToHost);
  bool same = true;
  for (size_t i = 0; i < rows.size(); ++i)
    same &= rows[i] == kvc::numerics::floatToHalf(
                           k[(size_t{head} * N + view.compressed_tokens) *
                                 c.head_dim +
                             i]);
  check(same && view.residual_tokens > 0,
        m.name + ": residual rows on the device");
  check(kvc_rt_cache_destroy(cache) == KVC_RT_OK, "destroy");
}

void deviceErrors() {
  ModelConfig m = preset(0, KVC_RT_BACKEND_CUDA);
  m.config.device = 1 << 20;
  kvc_rt_cache_config c = m.get();
  kvc_rt_cache *cache = nullptr;
  check(kvc_rt_cache_create(&c, &cache) == KVC_RT_ERROR_UNSUPPORTED &&
            cache == nullptr,
        "bad device ordinal");
  // An arena far beyond any GPU: out of memory, and nothing leaks.
  m.config.device = 0;
  m.config.head_dim = 128;
  m.config.kv_heads = 64;
  m.config.pages_per_layer = 0x7FFFFFFF;
  m.encodings.assign(m.config.num_layers,
                     makeEncoding(fp16Side(), fp16Side(), 64));
  c = m.get();
  size_t freeBefore = 0, freeAfter = 0, totalBytes = 0;
  cudaMemGetInfo(&freeBefore, &totalBytes);
  const kvc_rt_status s = kvc_rt_cache_create(&c, &cache);
  check(s == KVC_RT_ERROR_OUT_OF_MEMORY,
        std::string("huge arena: ") + kvc_rt_status_name(s) + ": " +
            kvc_rt_last_error());
  cudaMemGetInfo(&freeAfter, &totalBytes);
  check(freeAfter + (64u << 20) >= freeBefore, "no device memory leaked");
  // The device still works.
  ModelConfig ok = preset(1, KVC_RT_BACKEND_CUDA);
  const kvc_rt_cache_config oc = ok.get();
  check(kvc_rt_cache_create(&oc, &cache) == KVC_RT_OK &&
            kvc_rt_cache_synchronize(cache) == KVC_RT_OK &&
            kvc_rt_cache_destroy(cache) == KVC_RT_OK,
        "create after an out-of-memory failure");
}
} // namespace

int main() {
  if (kvc_rt_backend_available(KVC_RT_BACKEND_CUDA, 0) != KVC_RT_OK) {
    std::printf("skipped: %s\n0 passed, 0 failed\n", kvc_rt_last_error());
    return 77;
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    std::printf("device 0: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
  modelOnCuda();
  cudaMatchesCpu();
  kernelReadsPages(0); // KIVI-2
  kernelReadsPages(5); // a different encoding per head
  deviceErrors();
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
