"""Writes the decode-attention variants of the GPU benchmark
(scripts/gpu_attention_build.sh, benchmarks/gpu/attention_bench.cpp):
Llama-3-8B attention, 32 query heads over 8 KV heads of head_dim 128, at
batch 1, 8 and 32, for each encoding of issue 5 and kvc's own fp16 kernel
(the bandwidth reference row).

The functions are attention_variants.py's (one `kvc.attend` of one f32
query token, `llvm.emit_c_interface`, `_mlir_ciface_<name>(binding, &q,
&out)`), named `bench_<its name>`. The sequence length is the cache's,
known only at run time, so one function serves every S. Residual window
128, split-tokens 512, 64-token pages; group-128 channel-axis keys need
128-token pages and get a module of their own. Outputs, in OUTDIR:

  bench_p<P>_s<S>.mlir   one module per (page-tokens, split-tokens)
  bench_modules.txt      "<file> <page_tokens> <split_tokens>" per module
  bench_manifest.txt     attention_variants.py's manifest format

usage: bench_variants.py OUTDIR
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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


def variants():
    for key, value in ENCODINGS:
        for batch in BATCHES:
            yield BenchVariant(key, value, batch, QUERY_HEADS // KV_HEADS,
                               HEAD_DIM, kv_heads=KV_HEADS,
                               page_tokens=page_tokens(key))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    count, modules = av.write_variants(
        sys.argv[1], variants(), stem="bench",
        manifest="bench_manifest.txt", modules="bench_modules.txt")
    print(f"bench_variants: {count} variants in {modules} modules under "
          f"{sys.argv[1]}")


if __name__ == "__main__":
    main()
