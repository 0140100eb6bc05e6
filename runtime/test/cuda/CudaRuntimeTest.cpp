//===- CudaRuntimeTest.cpp - The CUDA backend on a real device ------------===//
//
// A plain executable (GPU machines may lack GoogleTest), run by
// scripts/gpu_runtime_check.sh under compute-sanitizer. Prints
// "N passed, N failed"; exits 77 (skipped) without a CUDA device.
//  1. the model-based driver on the CUDA backend, every preset;
//  2. CUDA and CPU caches fed the same calls store the same bytes;
//  3. a kernel follows the device page tables into the pools (uniform and
//     per-head encodings);
//  4. device errors: a bad ordinal, an arena larger than the device;
//  5. the MLIR CUDA runtime wrappers (kvc_runtime_gpu.h): PTX kernels
//     loaded, launched (plain, clustered) and their errors recorded, as
//     gpu-to-llvm's code does it;
//  6. a binding's GPU records and workspace on a CUDA cache, read by a
//     kernel launched through the wrappers.
// KVC_RT_CUDA_MODEL_OPS sets the model operations (default 20000).
//
//===----------------------------------------------------------------------===//

#include "ModelDriver.h"
#include "PageReadKernel.h"
#include "kvc_runtime.h"
#include "kvc_runtime_binding.h"
#include "kvc_runtime_gpu.h"

#include "kvc/Numerics/Half.h"

#include <cuda_runtime.h>

#include <algorithm>
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

/// What gpu-module-to-binary (format isa) would embed: PTX text, JIT-compiled
/// by the driver. Checked with `ptxas -arch=sm_90`.
const char kTestPtx[] = R"PTX(
.version 7.8
.target sm_75
.address_size 64

// p[i] = p[i] * 2 + 1 for i < n.
.visible .entry scale_add(.param .u64 p_data, .param .u32 p_n)
{
  .reg .pred %p<2>;
  .reg .b32 %r<6>;
  .reg .f32 %f<3>;
  .reg .b64 %rd<5>;
  ld.param.u64 %rd1, [p_data];
  ld.param.u32 %r1, [p_n];
  mov.u32 %r2, %ctaid.x;
  mov.u32 %r3, %ntid.x;
  mov.u32 %r4, %tid.x;
  mad.lo.s32 %r5, %r2, %r3, %r4;
  setp.ge.u32 %p1, %r5, %r1;
  @%p1 bra DONE;
  cvta.to.global.u64 %rd2, %rd1;
  mul.wide.u32 %rd3, %r5, 4;
  add.s64 %rd4, %rd2, %rd3;
  ld.global.f32 %f1, [%rd4];
  fma.rn.f32 %f2, %f1, 0f40000000, 0f3F800000;
  st.global.f32 [%rd4], %f2;
DONE:
  ret;
}

// Thread b < batch: out[3b .. 3b+2] = records[b].num_tokens,
// records[b].compressed_tokens, records[b].page_table[0] (kvc_rt_gpu_sequence).
.visible .entry read_records(.param .u64 p_records, .param .u64 p_out,
                             .param .u32 p_batch)
{
  .reg .pred %p<2>;
  .reg .b32 %r<6>;
  .reg .b64 %rd<11>;
  ld.param.u64 %rd1, [p_records];
  ld.param.u64 %rd2, [p_out];
  ld.param.u32 %r1, [p_batch];
  mov.u32 %r2, %tid.x;
  setp.ge.u32 %p1, %r2, %r1;
  @%p1 bra DONE;
  cvta.to.global.u64 %rd3, %rd1;
  cvta.to.global.u64 %rd4, %rd2;
  mul.wide.u32 %rd5, %r2, 32;
  add.s64 %rd6, %rd3, %rd5;
  ld.global.u32 %r3, [%rd6+24];
  ld.global.u32 %r4, [%rd6+28];
  ld.global.u64 %rd7, [%rd6];
  cvta.to.global.u64 %rd8, %rd7;
  ld.global.u32 %r5, [%rd8];
  mul.wide.u32 %rd9, %r2, 12;
  add.s64 %rd10, %rd4, %rd9;
  st.global.u32 [%rd10], %r3;
  st.global.u32 [%rd10+4], %r4;
  st.global.u32 [%rd10+8], %r5;
DONE:
  ret;
}
)PTX";

/// The recorded mgpu* error ("" when none).
std::string gpuError() {
  const char *message = nullptr;
  return kvc_rt_gpu_last_error(&message) != 0 ? std::string(message)
                                               : std::string();
}

/// Runs scale_add over `n` floats on `stream` (launch arguments the way
/// gpu-to-llvm passes them: an array of pointers to the values).
void scaleAdd(void *function, void *data, uint32_t n, void *stream,
              int32_t smem = 0) {
  void *params[] = {&data, &n};
  mgpuLaunchKernel(function, (n + 127) / 128, 1, 1, 128, 1, 1, smem, stream,
                   params, nullptr, 2);
}

void mlirWrappersLaunchPtx() {
  kvc_rt_gpu_clear_error();
  std::vector<char> image(kTestPtx, kTestPtx + sizeof(kTestPtx));
  void *module = mgpuModuleLoad(image.data(), image.size());
  void *jitModule = mgpuModuleLoadJIT(image.data(), 2);
  void *function = mgpuModuleGetFunction(module, "scale_add");
  void *jitFunction = mgpuModuleGetFunction(jitModule, "scale_add");
  check(module && jitModule && function && jitFunction,
        "PTX modules load: " + gpuError());
  void *stream = mgpuStreamCreate();
  void *other = mgpuStreamCreate();
  check(stream && other, "streams: " + gpuError());

  const uint32_t n = 1000;
  std::vector<float> host(n), result(n);
  for (uint32_t i = 0; i < n; ++i)
    host[i] = float(i) - 300.0f;
  void *device = mgpuMemAlloc(n * 4, stream, false);
  check(device != nullptr, "mgpuMemAlloc: " + gpuError());
  mgpuMemcpy(device, host.data(), n * 4, stream);
  scaleAdd(function, device, n, stream);
  // A second stream waits for the first through an event (gpu.wait of two
  // tokens), then runs the JIT-loaded copy of the kernel.
  void *event = mgpuEventCreate();
  mgpuEventRecord(event, stream);
  mgpuStreamWaitEvent(other, event);
  scaleAdd(jitFunction, device, n, other);
  mgpuMemcpy(result.data(), device, n * 4, other);
  mgpuStreamSynchronize(other);
  mgpuEventSynchronize(event);
  mgpuEventDestroy(event);
  bool same = true;
  for (uint32_t i = 0; i < n; ++i)
    same &= result[i] == (host[i] * 2.0f + 1.0f) * 2.0f + 1.0f;
  check(same && gpuError().empty(),
        "two launches of a PTX kernel through mgpuLaunchKernel: " +
            gpuError());

  // Clusters of 2 blocks (sm_90): once more over the data.
  {
    void *data = device;
    uint32_t count = n;
    void *params[] = {&data, &count};
    mgpuLaunchClusterKernel(function, 2, 1, 1, 8, 1, 1, 128, 1, 1, 0, stream,
                            params, nullptr);
    mgpuMemcpy(result.data(), device, n * 4, stream);
    mgpuStreamSynchronize(stream);
    same = true;
    for (uint32_t i = 0; i < n; ++i)
      same &= result[i] ==
              ((host[i] * 2.0f + 1.0f) * 2.0f + 1.0f) * 2.0f + 1.0f;
    check(same && gpuError().empty(),
          "a clustered launch through mgpuLaunchClusterKernel: " + gpuError());
  }

  // More dynamic shared memory than the 48 KiB every function may take
  // (kvc's stages past it; 64 KiB fits every chip from sm_75 on): the
  // launch opts the function in, and the next finds it allowed. Twice over
  // the data.
  mgpuMemcpy(device, host.data(), n * 4, stream);
  scaleAdd(function, device, n, stream, 64 * 1024);
  scaleAdd(function, device, n, stream, 56 * 1024);
  mgpuMemcpy(result.data(), device, n * 4, stream);
  mgpuStreamSynchronize(stream);
  check(result[1] == (host[1] * 2.0f + 1.0f) * 2.0f + 1.0f &&
            gpuError().empty(),
        "launches with 64 and 56 KiB of dynamic shared memory: " + gpuError());

  // An impossible launch is recorded with its reason, and later launches
  // are skipped (the data stays as it was) until the record is cleared.
  mgpuMemcpy(device, host.data(), n * 4, stream);
  scaleAdd(function, device, n, stream, int32_t(1) << 30);
  const std::string error = gpuError();
  check(error.find("mgpuLaunchKernel") != std::string::npos &&
            error.find("dynamic shared memory") != std::string::npos,
        "too much shared memory is recorded: " + error);
  scaleAdd(function, device, n, stream);
  mgpuMemcpy(result.data(), device, n * 4, stream);
  mgpuStreamSynchronize(stream);
  check(result == host, "launches are skipped after an error");
  kvc_rt_gpu_clear_error();
  scaleAdd(function, device, n, stream);
  mgpuMemcpy(result.data(), device, n * 4, stream);
  mgpuStreamSynchronize(stream);
  check(result[1] == host[1] * 2.0f + 1.0f && gpuError().empty(),
        "launches run again once the error is cleared: " + gpuError());

  // A kernel the module does not have.
  check(mgpuModuleGetFunction(module, "no_such_kernel") == nullptr &&
            gpuError().find("CUDA_ERROR_NOT_FOUND") != std::string::npos,
        "a missing kernel is recorded with its CUresult: " + gpuError());
  kvc_rt_gpu_clear_error();

  mgpuMemset32(device, 0x3F800000u, n, stream); // 1.0f
  mgpuMemcpy(result.data(), device, n * 4, stream);
  mgpuStreamSynchronize(stream);
  check(result[0] == 1.0f && result[n - 1] == 1.0f, "mgpuMemset32");
  mgpuMemFree(device, stream);
  mgpuStreamDestroy(other);
  mgpuStreamDestroy(stream);
  mgpuModuleUnload(jitModule);
  mgpuModuleUnload(module);
  check(gpuError().empty(), "cleanup without errors: " + gpuError());
}

bool isDeviceMemory(const void *p) {
  cudaPointerAttributes attributes;
  return p && cudaPointerGetAttributes(&attributes, p) == cudaSuccess &&
         attributes.type == cudaMemoryTypeDevice;
}

void gpuRecordsOnCuda() {
  kvc_rt_gpu_clear_error();
  ModelConfig m = preset(0, KVC_RT_BACKEND_CUDA); // KIVI-2, R = 32
  const kvc_rt_cache_config c = m.get();
  kvc_rt_cache *cache = nullptr;
  if (kvc_rt_cache_create(&c, &cache) != KVC_RT_OK) {
    check(false, std::string("create: ") + kvc_rt_last_error());
    return;
  }
  kvc_rt_seq seqs[2];
  kvc_rt_sequence_create(cache, &seqs[0]);
  kvc_rt_sequence_create(cache, &seqs[1]);
  const kvc_rt_seq bound[2] = {seqs[1], seqs[0]};
  kvc_rt_binding *binding = nullptr;
  check(kvc_rt_binding_create(cache, 0, bound, 2, &binding) == KVC_RT_OK,
        std::string("a binding of a CUDA cache: ") + kvc_rt_last_error());
  if (!binding) {
    kvc_rt_cache_destroy(cache);
    return;
  }

  // Code compiled for the CPU is refused; GPU code's check passes.
  kvc_rt_layer_view lv;
  kvc_rt_layer_view_get(cache, 0, &lv);
  check(kvc_rt_mlir_check_layout(binding, lv.page_tokens, lv.k.page_bytes,
                                 lv.v.page_bytes, lv.residual, lv.kv_heads,
                                 lv.head_dim) == 0 &&
            kvc_rt_binding_status(binding) == KVC_RT_ERROR_UNSUPPORTED,
        "CPU code refuses a CUDA cache");
  kvc_rt_binding_clear_error(binding);
  check(kvc_rt_mlir_gpu_check_layout(binding, lv.page_tokens, lv.k.page_bytes,
                                     lv.v.page_bytes, lv.residual,
                                     lv.kv_heads, lv.head_dim) == 1,
        std::string("GPU code's layout check: ") +
            kvc_rt_binding_error(binding));

  // 70 tokens to both through compiled code's append (two flushes of
  // R = 32), 100 more to batch entry 1 by the host.
  const uint32_t H = c.kv_heads, D = c.head_dim, T = 70;
  std::vector<float> tokens = randomTokens(size_t{2} * H * T * D, 11);
  kvc_rt_memref_4d_f32 desc;
  desc.allocated = desc.aligned = tokens.data();
  desc.offset = 0;
  const int64_t sizes[4] = {2, H, T, D};
  const int64_t strides[4] = {int64_t(H) * T * D, int64_t(T) * D, D, 1};
  for (int i = 0; i < 4; ++i) {
    desc.sizes[i] = sizes[i];
    desc.strides[i] = strides[i];
  }
  _mlir_ciface_kvc_rt_mlir_append(binding, &desc, &desc);
  std::vector<float> more = randomTokens(size_t{H} * 100 * D, 12);
  kvc_rt_tokens t = tokensOf(more, more, c, 100, 0, 100);
  check(kvc_rt_binding_status(binding) == KVC_RT_OK &&
            kvc_rt_append(cache, bound[1], 0, &t) == KVC_RT_OK,
        std::string("appends: ") + kvc_rt_binding_error(binding));

  const kvc_rt_gpu_sequence *records = kvc_rt_mlir_gpu_sequences(binding);
  check(isDeviceMemory(records), std::string("records in device memory: ") +
                                     kvc_rt_binding_error(binding));
  // The records are enqueued on the cache's stream, which generated kernels
  // use (also after waiting for another stream); readers elsewhere wait.
  void *cacheStream = nullptr;
  cudaStream_t other = nullptr;
  cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking);
  check(kvc_rt_cache_stream(cache, &cacheStream) == KVC_RT_OK &&
            kvc_rt_mlir_gpu_stream(binding, nullptr) == cacheStream &&
            kvc_rt_mlir_gpu_stream(binding, other) == cacheStream &&
            kvc_rt_mlir_gpu_stream(binding, cacheStream) == cacheStream,
        std::string("kernels' stream: ") + kvc_rt_binding_error(binding));
  cudaStreamDestroy(other);
  kvc_rt_mlir_gpu_synchronize(binding);
  check(kvc_rt_binding_status(binding) == KVC_RT_OK,
        std::string("synchronize: ") + kvc_rt_binding_error(binding));
  // After an error the kernels (writing NaN) still go to the cache's
  // stream, which the function's final synchronization covers.
  check(kvc_rt_mlir_gpu_workspace(binding, -1) == nullptr &&
            kvc_rt_mlir_gpu_stream(binding, nullptr) == cacheStream,
        "the cache's stream after an error");
  kvc_rt_binding_clear_error(binding);
  kvc_rt_gpu_sequence host[2] = {};
  if (records)
    cudaMemcpy(host, records, sizeof(host), cudaMemcpyDeviceToHost);
  int32_t firstPage[2] = {-1, -1};
  for (int b = 0; b < 2; ++b) {
    kvc_rt_sequence_view view;
    kvc_rt_sequence_view_get(cache, bound[b], 0, &view);
    firstPage[b] = view.num_pages ? view.page_table[0] : -1;
    std::vector<int32_t> row(view.num_pages);
    if (host[b].page_table)
      cudaMemcpy(row.data(),
                 reinterpret_cast<const void *>(uintptr_t(host[b].page_table)),
                 row.size() * 4, cudaMemcpyDeviceToHost);
    check(host[b].page_table == uint64_t(uintptr_t(view.page_table_device)) &&
              host[b].k_residual == uint64_t(uintptr_t(view.k_residual)) &&
              host[b].v_residual == uint64_t(uintptr_t(view.v_residual)) &&
              host[b].num_tokens == view.num_tokens &&
              host[b].compressed_tokens == view.compressed_tokens &&
              row == std::vector<int32_t>(view.page_table,
                                          view.page_table + view.num_pages),
          "record " + std::to_string(b) + " matches the sequence view");
  }
  check(host[0].num_tokens == 70 && host[1].num_tokens == 170 &&
            host[1].compressed_tokens == 160,
        "record token counts");

  // A kernel launched through the wrappers follows the records into the
  // device page-table mirror.
  std::vector<char> image(kTestPtx, kTestPtx + sizeof(kTestPtx));
  void *module = mgpuModuleLoad(image.data(), image.size());
  void *function = mgpuModuleGetFunction(module, "read_records");
  void *stream = mgpuStreamCreate();
  void *out = kvc_rt_mlir_gpu_workspace(binding, 6 * 4);
  check(isDeviceMemory(out) && uintptr_t(out) % 256 == 0,
        "the workspace is aligned device memory");
  const void *recordsArg = records;
  uint32_t batch = 2;
  void *params[] = {&recordsArg, &out, &batch};
  mgpuLaunchKernel(function, 1, 1, 1, 32, 1, 1, 0, stream, params, nullptr, 3);
  uint32_t seen[6] = {};
  mgpuMemcpy(seen, out, sizeof(seen), stream);
  mgpuStreamSynchronize(stream);
  check(gpuError().empty() && seen[0] == 70 && seen[1] == 64 &&
            int32_t(seen[2]) == firstPage[0] && seen[3] == 170 &&
            seen[4] == 160 && int32_t(seen[5]) == firstPage[1],
        "a kernel reads the records and the page tables: " + gpuError());
  mgpuStreamDestroy(stream);
  mgpuModuleUnload(module);

  void *bigger = kvc_rt_mlir_gpu_workspace(binding, 64 << 20);
  check(isDeviceMemory(bigger) && kvc_rt_binding_status(binding) == KVC_RT_OK,
        "the workspace grows");
  // combine=fused's arrival counters: device memory, zero on the cache's
  // stream before any kernel behind it runs, and zero again when they grow.
  for (int64_t count : {int64_t(64), int64_t(1) << 20}) {
    int32_t *counters = kvc_rt_mlir_gpu_counters(binding, count);
    std::vector<int32_t> values(size_t(count), -1);
    kvc_rt_mlir_gpu_synchronize(binding);
    if (counters)
      cudaMemcpy(values.data(), counters, values.size() * 4,
                 cudaMemcpyDeviceToHost);
    check(isDeviceMemory(counters) && uintptr_t(counters) % 256 == 0 &&
              std::count(values.begin(), values.end(), 0) == count,
          std::to_string(count) + " arrival counters start at zero: " +
              kvc_rt_binding_error(binding));
  }
  check(kvc_rt_mlir_gpu_counters(binding, -1) == nullptr &&
            kvc_rt_binding_status(binding) == KVC_RT_ERROR_INVALID_ARGUMENT,
        "a negative counter count is INVALID_ARGUMENT");
  kvc_rt_binding_clear_error(binding);
  kvc_rt_binding_destroy(binding);
  check(kvc_rt_cache_destroy(cache) == KVC_RT_OK, "destroy");
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
  mlirWrappersLaunchPtx();
  gpuRecordsOnCuda();
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
