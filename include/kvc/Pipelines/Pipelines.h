//===- Pipelines.h - kvc pass pipelines -------------------------*- C++ -*-===//

#ifndef KVC_PIPELINES_PIPELINES_H
#define KVC_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"

namespace mlir {
class OpPassManager;
namespace kvc {

/// Options of `kvc-compress`: raise attention, assign decoupled K/V
/// encodings (from a spec, or with `budget` by the cost model), report what
/// the cache costs.
struct CompressPipelineOptions
    : public PassPipelineOptions<CompressPipelineOptions> {
  Option<std::string> spec{
      *this, "spec",
      llvm::cl::desc("Encoding spec for every layer (see "
                     "kvc-decouple-compression)"),
      llvm::cl::init("key=q2:channel:g32,value=q2:token:g32,residual=128")};
  Option<std::string> layers{
      *this, "layers",
      llvm::cl::desc("Per-layer overrides, e.g. 0-3:key=q4:channel:g32"),
      llvm::cl::init("")};
  Option<std::string> storageType{
      *this, "storage-type",
      llvm::cl::desc("Storage element type of compressed caches"),
      llvm::cl::init("f16")};
  Option<std::string> report{
      *this, "report", llvm::cl::desc("Report format: text, json or none"),
      llvm::cl::init("text")};
  Option<std::string> reportFile{
      *this, "report-file",
      llvm::cl::desc("File for the report (- for stderr)"),
      llvm::cl::init("-")};
  Option<int64_t> batch{
      *this, "batch",
      llvm::cl::desc("Sequences in the batch for the report (0: from the "
                     "caches)"),
      llvm::cl::init(0)};
  Option<int64_t> context{*this, "context",
                          llvm::cl::desc("Tokens per sequence for the report"),
                          llvm::cl::init(4096)};
  Option<double> budget{
      *this, "budget",
      llvm::cl::desc("Average bits per K/V element: when > 0, "
                     "kvc-select-bitwidths chooses the encodings under this "
                     "budget (spec then only sets the residual window)"),
      llvm::cl::init(0.0)};
  Option<std::string> stats{
      *this, "stats",
      llvm::cl::desc("Calibration statistics for kvc-select-bitwidths "
                     "(empty: analytic proxy)"),
      llvm::cl::init("")};
  Option<bool> rotateKeys{
      *this, "rotate-keys",
      llvm::cl::desc("Store compressed keys rotated by a Hadamard matrix "
                     "(kvc-rotate-keys)"),
      llvm::cl::init(false)};
  Option<std::string> granularity{
      *this, "granularity",
      llvm::cl::desc("kvc-select-bitwidths granularity: layer or head"),
      llvm::cl::init("layer")};
  ListOption<double> evictFractions{
      *this, "evict-fractions",
      llvm::cl::desc("With budget and stats: token budgets, as fractions of "
                     "`context`, that kvc-select-bitwidths may choose per "
                     "layer (H2O eviction); empty: no eviction")};
};

/// Options of `kvc-cpu-pipeline`: kvc ops to loops and runtime calls, then
/// bufferization and LLVM lowering.
struct CPUPipelineOptions : public PassPipelineOptions<CPUPipelineOptions> {
  Option<unsigned> pageTokens{
      *this, "page-tokens",
      llvm::cl::desc("Tokens per runtime page (must match the runtime)"),
      llvm::cl::init(64)};
  Option<std::string> append{
      *this, "append",
      llvm::cl::desc("Who writes appended tokens: `runtime` or `generated` "
                     "(kvc-lower-to-loops)"),
      llvm::cl::init("runtime")};
  Option<std::string> keyReads{
      *this, "key-reads",
      llvm::cl::desc("How attention reads keys: `rows` or `parts` "
                     "(16-channel parts, token pairs for channel-axis "
                     "2/4/8-bit keys, and fp16-rounded products, as the "
                     "GPU's tensor-core key pass; kvc-lower-to-loops)"),
      llvm::cl::init("rows")};
  Option<std::string> valueReads{
      *this, "value-reads",
      llvm::cl::desc("How attention takes dequantized values: `f32` or "
                     "`f16` (rounded to fp16, as the GPU's tensor-core "
                     "value pass; kvc-lower-to-loops)"),
      llvm::cl::init("f32")};
};

/// Options of `kvc-gpu-pipeline`: kvc.attend to generated NVVM kernels and
/// their launches, then bufferization and the upstream NVVM lowering (kernels
/// to PTX or a cubin, host code to LLVM).
struct GPUPipelineOptions : public PassPipelineOptions<GPUPipelineOptions> {
  Option<unsigned> pageTokens{
      *this, "page-tokens",
      llvm::cl::desc("Tokens per runtime page (must match the runtime)"),
      llvm::cl::init(64)};
  Option<unsigned> splitTokens{
      *this, "split-tokens",
      llvm::cl::desc("Tokens per split of the decode attention kernel (the "
                     "most; see split-blocks)"),
      llvm::cl::init(512)};
  Option<unsigned> splitBlocks{
      *this, "split-blocks",
      llvm::cl::desc("Blocks the decode attention grid aims at: shorter "
                     "splits when split-tokens gives fewer (default 512; 0: "
                     "never)"),
      llvm::cl::init(512)};
  Option<unsigned> minBlocksPerSM{
      *this, "min-blocks-per-sm",
      llvm::cl::desc("Blocks of the decode attention kernel that must fit on "
                     "one SM (caps its registers; 0: ptxas's own target)"),
      llvm::cl::init(5)};
  Option<std::string> codeToFloat{
      *this, "code-to-float",
      llvm::cl::desc("How attention kernels turn codes into floats: bits "
                     "(default) or convert (kvc-lower-to-gpu's option)"),
      llvm::cl::init("bits")};
  Option<std::string> keyProduct{
      *this, "key-product",
      llvm::cl::desc("Where the key dot products run: fma (CUDA cores, "
                     "default) or mma (tensor cores; kvc-lower-to-gpu's "
                     "option)"),
      llvm::cl::init("fma")};
  Option<std::string> valueProduct{
      *this, "value-product",
      llvm::cl::desc("Where the weighted sum of values runs: fma (CUDA "
                     "cores, default) or mma (tensor cores; "
                     "kvc-lower-to-gpu's option)"),
      llvm::cl::init("fma")};
  Option<std::string> mmaCodes{
      *this, "mma-codes",
      llvm::cl::desc("How the tensor-core passes read the codes whose "
                     "scales they fold: subnormal (default) or normal (one "
                     "HADD2 a pair more, no code a subnormal; "
                     "kvc-lower-to-gpu's option)"),
      llvm::cl::init("subnormal")};
  Option<std::string> l2Prefetch{
      *this, "l2-prefetch",
      llvm::cl::desc("Page blocks requested into L2 before the passes read "
                     "them: none (default), lines or bulk (sm_90 and later; "
                     "kvc-lower-to-gpu's option)"),
      llvm::cl::init("none")};
  Option<unsigned> l2PrefetchBytes{
      *this, "l2-prefetch-bytes",
      llvm::cl::desc("The most bytes of each side a split block prefetches, "
                     "and of both at its start (default 49152)"),
      llvm::cl::init(49152)};
  Option<unsigned> keyStages{
      *this, "key-stages",
      llvm::cl::desc("Shared-memory stages each warp of the tensor-core key "
                     "pass copies its next units into with cp.async (sm_80 "
                     "and later; 0, the default: none; kvc-lower-to-gpu's "
                     "option)"),
      llvm::cl::init(0)};
  Option<unsigned> valueStages{
      *this, "value-stages",
      llvm::cl::desc("The same for the tensor-core value pass's blocks "
                     "(sm_80 and later; 0, the default: none; "
                     "kvc-lower-to-gpu's option)"),
      llvm::cl::init(0)};
  Option<std::string> combine{
      *this, "combine",
      llvm::cl::desc("Where the splits are merged: kernel (a combine "
                     "kernel after the split kernels, default) or fused "
                     "(the last split block of each sequence and KV head; "
                     "one launch an attention; kvc-lower-to-gpu's option)"),
      llvm::cl::init("kernel")};
  Option<unsigned> maxSharedMemory{
      *this, "max-shared-memory",
      llvm::cl::desc("Bytes of shared memory a split block may take (0, the "
                     "default: the chip's opt-in limit, e.g. 232448 on "
                     "sm_90, 166912 on sm_80; kvc-lower-to-gpu's option)"),
      llvm::cl::init(0)};
  Option<std::string> chip{
      *this, "chip",
      llvm::cl::desc("GPU architecture: a processor of LLVM's "
                     "NVPTX backend from sm_70 on "
                     "(sm_90a, sm_80, sm_100a)"),
      llvm::cl::init("sm_90a")};
  Option<std::string> features{
      *this, "features",
      llvm::cl::desc("NVPTX features, e.g. +ptx86 (default: the chip's "
                     "first PTX version, at least +ptx80)"),
      llvm::cl::init("")};
  Option<std::string> format{
      *this, "format",
      llvm::cl::desc("Kernel binary: isa (PTX), bin (cubin, needs ptxas), "
                     "fatbin, or llvm (the kernels' LLVM bitcode, which "
                     "the GPU emulator, libkvc_gpu_emulator, runs)"),
      llvm::cl::init("bin")};
  Option<bool> waitOnReturn{
      *this, "wait-on-return",
      llvm::cl::desc("Functions wait for their kernels before they return "
                     "(default true; false: the caller synchronizes the "
                     "last kvc op's cache stream; kvc-lower-to-gpu's "
                     "option)"),
      llvm::cl::init(true)};
};

/// Adds the passes of `kvc-compress` to `pm`.
void buildCompressPipeline(OpPassManager &pm,
                           const CompressPipelineOptions &options);

/// Adds the passes of `kvc-gpu-pipeline` to `pm` (a module pass manager).
void buildGPUPipeline(OpPassManager &pm, const GPUPipelineOptions &options);

/// Adds the passes of `kvc-cpu-pipeline` to `pm` (a module pass manager).
void buildCPUPipeline(OpPassManager &pm, const CPUPipelineOptions &options);

/// Registers the kvc pipelines with the global registry (kvc-opt --help).
void registerKVCPipelines();

} // namespace kvc
} // namespace mlir

#endif // KVC_PIPELINES_PIPELINES_H
