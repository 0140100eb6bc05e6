"""Writes the decode-attention variants of the GPU benchmark
(scripts/gpu_attention_build.sh, benchmarks/gpu/attention_bench.cpp):
Llama-3-8B attention, 32 query heads over 8 KV heads of head_dim 128, at
batch 1, 8 and 32, for each encoding of issue 5 with the CUDA-core
passes, the tensor-core key pass (key-product=mma, names ending in _mma),
both passes on tensor cores (value-product=mma too, names ending in
_mma_vmma) and those with the split blocks' page blocks prefetched into L2
first (l2-prefetch=bulk, names ending in _mma_vmma_l2bulk), for the
encodings with channel-axis keys (every one but fp16) both of those with
the key pass copying its next key units into two shared-memory stages
with cp.async (key-stages=2, names ending in _mma_vmma_ks2, and with the
value pass's stages too, value-stages=2, _mma_vmma_l2bulk_ks2_vs2; the
stages are dynamic shared memory, K8/V8's past 48 KB), for K2/V2 g32 and
g128 with three stages on both passes and the prefetch too
(_mma_vmma_l2bulk_ks3_vs3), both tensor-core passes with the splits
merged by the split kernels' last blocks (combine=fused, _mma_vmma_fused),
for the three encodings of the speedup targets (K2/V2 g32 and g128, K4/V4
g128) both tensor-core passes reading their codes as fp16 normals
(mma-codes=normal, _mma_vmma_normal: what the HADD2 a code pair that the
subnormal reads save is worth), and
kvc's own fp16 kernel (the bandwidth reference row).

The functions are attention_variants.py's (one `kvc.attend` of one f32
query token, `llvm.emit_c_interface`, `_mlir_ciface_<name>(binding, &q,
&out)`), named `bench_<its name>`. The sequence length is the cache's,
known only at run time, so one function serves every S. Residual window
128, split-tokens 512, 64-token pages; group-128 channel-axis keys need
128-token pages and get a module of their own.

Each attention variant `bench_<x>` has an append twin `bench_append_<x>` in
the same module: append_variants.py's `kvc.append` of one token per batch
entry to the same cache type (`ptr _mlir_ciface_bench_append_<x>(binding,
&k, &v)`), which the benchmark times per decode step next to the
attention. Outputs, in OUTDIR:

  bench_p<P>_s<S>[_mma][_vmma][_l2bulk][_ks2][_vs2][_fused][_normal].mlir
                         one module per (page-tokens, split-tokens,
                         key-product, value-product, l2-prefetch,
                         key-stages, value-stages, combine, mma-codes)
  bench_modules.txt      attention_variants.py's module index
  bench_manifest.txt     attention_variants.py's manifest format (the
                         attention variants; the append twins go by name)

usage: bench_variants.py OUTDIR [--split-tokens N]

--split-tokens (default 512) sets the tokens per split block of every
variant (names then end in _s<N>): the benchmark's knob for the split-K
parallelism, which decides how many blocks a batch-1 call has.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import append_variants  # noqa: E402
import attention_variants as av  # noqa: E402

QUERY_HEADS = 32
KV_HEADS = 8
HEAD_DIM = 128
BATCHES = (1, 8, 32)

# (key, value) side specs, in the order of the table.
ENCODINGS = (
    ("fp16", "fp16"),
    ("q2:channel:g32", "q2:token:g32"),
    ("q2:channel:g128", "q2:token:g128"),
    ("q4:channel:g32", "q2:token:g32"),
    ("q4:channel:g128", "q4:token:g128"),
    ("q8:channel:g128", "q8:token:g128"),
)


class BenchVariant(av.Variant):
    def name(self):
        return "bench_" + super().name()


def page_tokens(key):
    """The page size: a multiple of 64 and of a channel-axis key group."""
    if key.startswith("q") and ":channel:" in key:
        return max(av.PAGE_TOKENS, int(key.rsplit(":g", 1)[1]))
    return av.PAGE_TOKENS


def stages_apply(key):
    """Whether the key pass's key-stages=2 applies to `key`: channel-axis
    2-, 4- and 8-bit keys."""
    return key.split(":")[0] in ("q2", "q4", "q8") and ":channel:" in key


def variants(split=av.SPLIT_TOKENS):
    # Each encoding with the CUDA-core passes, the tensor-core key pass
    # (key-product=mma), both tensor-core passes (value-product=mma too)
    # and those with the L2 prefetch (l2-prefetch=bulk); kvc's fp16
    # reference row only with the first; the last two again with the
    # key pass's two cp.async key stages (key-stages=2) where they apply,
    # the last with the value pass's too (value-stages=2); for the
    # 2-bit encodings only, three stages on both passes with the prefetch
    # (whether one unit in flight is enough); and both tensor-core passes
    # with the splits merged by the split kernels (combine=fused: one
    # launch a call).
    for products in (("fma", "fma", "none", 0, 0, "kernel"),
                     ("mma", "fma", "none", 0, 0, "kernel"),
                     ("mma", "mma", "none", 0, 0, "kernel"),
                     ("mma", "mma", "bulk", 0, 0, "kernel"),
                     ("mma", "mma", "none", 2, 0, "kernel"),
                     ("mma", "mma", "bulk", 2, 2, "kernel"),
                     ("mma", "mma", "bulk", 3, 3, "kernel"),
                     ("mma", "mma", "none", 0, 0, "fused")):
        for key, value in ENCODINGS:
            if products[0] != "fma" and key == "fp16":
                continue
            if products[3] and not stages_apply(key):
                continue
            if products[3] == 3 and not key.startswith("q2:"):
                continue
            for batch in BATCHES:
                yield BenchVariant(key, value, batch,
                                   QUERY_HEADS // KV_HEADS, HEAD_DIM,
                                   kv_heads=KV_HEADS,
                                   page_tokens=page_tokens(key),
                                   split=split, key_product=products[0],
                                   value_product=products[1],
                                   l2_prefetch=products[2],
                                   key_stages=products[3],
                                   value_stages=products[4],
                                   combine=products[5])
    # The speedup targets' encodings with the codes read as fp16 normals.
    for key, value in (("q2:channel:g32", "q2:token:g32"),
                       ("q2:channel:g128", "q2:token:g128"),
                       ("q4:channel:g128", "q4:token:g128")):
        for batch in BATCHES:
            yield BenchVariant(key, value, batch, QUERY_HEADS // KV_HEADS,
                               HEAD_DIM, kv_heads=KV_HEADS,
                               page_tokens=page_tokens(key), split=split,
                               key_product="mma", value_product="mma",
                               mma_codes="normal")


class AppendTwin(append_variants.Variant):
    """The one-token append to an attention variant's cache."""

    def __init__(self, attention):
        super().__init__(attention.key, attention.value, attention.batch,
                         attention.page_tokens, tokens=1,
                         residual=attention.residual)
        assert (self.heads, self.head_dim) == (attention.kv_heads,
                                               attention.head_dim)
        self.attention_name = attention.name()

    def name(self):
        return "bench_append_" + self.attention_name[len("bench_"):]


def main():
    parser = argparse.ArgumentParser(
        description="Writes the GPU benchmark's attention variants.")
    parser.add_argument("outdir")
    parser.add_argument("--split-tokens", type=int, default=av.SPLIT_TOKENS,
                        help="tokens per split block (a multiple of 128)")
    args = parser.parse_args()
    if args.split_tokens <= 0 or args.split_tokens % 128:
        parser.error("--split-tokens must be a positive multiple of 128 "
                     "(the largest page size)")
    outdir = args.outdir
    attention = list(variants(args.split_tokens))
    count, modules = av.write_variants(
        outdir, attention, stem="bench",
        manifest="bench_manifest.txt", modules="bench_modules.txt")
    # Each append twin joins its attention variant's module (the pipeline
    # options are the same; appends ignore split-tokens).
    for v in attention:
        module = os.path.join(outdir, av.module_name("bench", v))
        with open(module, "a") as out:
            out.write(append_variants.function(AppendTwin(v)))
    print(f"bench_variants: {count} attention variants and their append "
          f"twins in {modules} modules under {outdir}")


if __name__ == "__main__":
    main()
