"""Writes the decode-attention variants of the GPU correctness check
(scripts/gpu_attention_build.sh, benchmarks/gpu/attention_check.cpp).

Each variant is one `func.func @<name>` holding one `kvc.attend` of one
query token over a `!kvc.cache<B x Hkv x ? x D x f16>`, with
`llvm.emit_c_interface`, so that after kvc-gpu-pipeline the host can call
`_mlir_ciface_<name>(binding, &q, &out)` (q and out are rank-4 f32 memref
descriptors; the out-parameter comes last).

Variants are grouped into modules by the pipeline options they need
(page-tokens, split-tokens, key-product, value-product, split-blocks,
l2-prefetch, key-stages, value-stages, combine, mma-codes): one MLIR file
per group.
Outputs, in OUTDIR:

  variants_p<P>_s<S>[_sb<N>][_mma][_vmma][_l2<kind>][_ks<N>][_vs<N>]
  [_fused][_normal].mlir    one module per option group
  modules.txt               "<file> <page_tokens> <split_tokens>
                            <key_product> <value_product> [<split_blocks>
                            [<l2_prefetch> [<key_stages>
                            [<value_stages> [<combine> [<mma_codes>]]]]]]"
                            per module (no split_blocks or "-": the
                            build's default; no l2_prefetch: none; no
                            key_stages or value_stages: 0; no combine:
                            kernel; no mma_codes: subnormal)
  manifest.txt              one line per variant, whitespace separated:
      name B Hq Hkv D key value residual page_tokens split [window=W]
      [softcap=C] [key_product=mma] [value_product=mma]
      [l2_prefetch=lines|bulk] [key_stages=N] [value_stages=N]
      [combine=fused] [mma_codes=normal] [mask=<f32|f16>[:heads]]
    key / value are side specs: `q<bits>:<channel|token>:g<group>`,
    `fp16` or `fp8:<e4m3|e5m2>`; a comma-separated list of Hkv specs gives
    each KV head its own encoding (kvc.head_encodings).

Coverage: the full cross product GQA {1,4,7,8} x head_dim {64,128} x
batch {1,8,32} for the KIVI-style K2/V2 and K4/V4 encodings (channel-axis
keys, token-axis values, group 32); the other bits, fp16, fp8, token-axis
keys, channel-axis values, group 64, residual windows 0 and 64, per-head
encodings, a sliding window and a softcap at fewer shapes; smaller splits
(many splits per sequence) and 128-token pages with group-128 keys in
modules of their own; and the tensor-core key pass (key-product=mma,
names ending in _mma) for K2/V2 and K4/V4 at every GQA and head_dim, and
for every other key encoding, window, softcap and split once; the
tensor-core value pass (value-product=mma, names ending in _vmma) alike
for every value encoding, alone and with the tensor-core key pass, and
values in groups of the whole head (folded scales) at 2, 4 and 8 bits and
both head dims; per-call
split sizes (split-blocks, names with _sb<N>) with every pass; and the L2
prefetch of the page blocks (l2-prefetch=lines or bulk, names ending in
_l2lines or _l2bulk) with both key and value passes, per-call splits,
windows, per-head encodings and 128-token pages; and the tensor-core key
pass's cp.async key stages (key-stages=2 or 3, names ending in _ks<N>,
both passes on tensor cores) for K2/V2 at every GQA and head_dim
(batches 1 and 8), K4/V4, 8-bit keys at head_dim 64, group-128 keys on
128-token pages, a window with a softcap, per-call splits (some shorter
than the stages), the L2 prefetch, residual 64 and per-head encodings;
and the value pass's stages (value-stages=2 or 3, names ending in
_vs<N>, with the key stages) for K2/V2 at GQA 1, 4 and 8, K4/V4, values in
groups of the whole head (folded scales) on 128-token pages, 8-bit values,
per-call splits and the L2 prefetch; and the split kernels merging the
splits themselves (combine=fused, names ending in _fused: the last block
of each sequence and KV head) with both passes on CUDA and on tensor
cores, at batches 1, 8 and 32, GQA 1, 4 and 8, many per-call splits, a
window (empty splits), per-head encodings (one counter array, several
split kernels), whole-head value groups, and the stages and the
prefetch; and the tensor-core passes reading the codes whose scales they
fold as fp16 normals (mma-codes=normal, names ending in _normal: no
code reaches the tensor cores as a subnormal) for 2-, 4- and 8-bit
channel-axis keys and whole-head value groups, with stages and the fused
combine; and attention with a mask operand (names ending in _m32 or _m16,
_m32h or _m16h with a row a query head): left padding masked with -inf
or the dtype's lowest value over whole splits, biases on the other
tokens, on both passes, with per-call splits, the fused combine and a
window; and head_dims 96 and 192 (CUDA cores), whose value spans leave a
warp out of the value pass.

usage: attention_variants.py OUTDIR
"""
import os
import sys

K2 = "q2:channel:g32"
V2 = "q2:token:g32"
K4 = "q4:channel:g32"
V4 = "q4:token:g32"
RESIDUAL = 128
PAGE_TOKENS = 64
SPLIT_TOKENS = 512


class Variant:
    def __init__(self, key, value, batch, group, head_dim, kv_heads=2,
                 residual=RESIDUAL, page_tokens=PAGE_TOKENS,
                 split=SPLIT_TOKENS, window=None, softcap=None,
                 key_product="fma", split_blocks=None,
                 value_product="fma", l2_prefetch="none", key_stages=0,
                 value_stages=0, combine="kernel", mma_codes="subnormal",
                 mask=None):
        self.key, self.value = key, value
        self.batch, self.group, self.head_dim = batch, group, head_dim
        self.kv_heads, self.residual = kv_heads, residual
        self.page_tokens, self.split = page_tokens, split
        self.window, self.softcap = window, softcap
        self.key_product = key_product
        self.value_product = value_product
        # kvc-gpu-pipeline's split-blocks for this variant's module (None:
        # the build's default).
        self.split_blocks = split_blocks
        # kvc-gpu-pipeline's l2-prefetch: none, lines or bulk.
        self.l2_prefetch = l2_prefetch
        # kvc-gpu-pipeline's key-stages: 0 (none) or the shared-memory
        # stages of the tensor-core key pass's cp.async copies (>= 2).
        self.key_stages = key_stages
        # kvc-gpu-pipeline's value-stages, the same for the value pass.
        self.value_stages = value_stages
        # kvc-gpu-pipeline's combine: kernel or fused.
        self.combine = combine
        # kvc-gpu-pipeline's mma-codes: subnormal or normal.
        self.mma_codes = mma_codes
        # kvc.attend's mask operand: None, or "<f32|f16>" (one row for
        # every query head) or "<f32|f16>:heads" (a row a query head).
        self.mask = mask

    @property
    def query_heads(self):
        return self.group * self.kv_heads

    def name(self):
        def short(specs):
            # q2:channel:g32 -> 2c32, fp8:e4m3 -> e4m3, fp16 -> f16; heads
            # of a per-head list joined by x.
            def one(spec):
                if spec == "fp16":
                    return "f16"
                if spec.startswith("fp8:"):
                    return spec[4:]
                bits, axis, group = spec.split(":")
                return f"{bits[1:]}{axis[0]}{group[1:]}"
            return "x".join(one(s) for s in specs.split(","))
        parts = [f"k{short(self.key)}", f"v{short(self.value)}",
                 f"r{self.residual}", f"b{self.batch}",
                 f"h{self.query_heads}x{self.kv_heads}", f"d{self.head_dim}"]
        if self.page_tokens != PAGE_TOKENS:
            parts.append(f"p{self.page_tokens}")
        if self.split != SPLIT_TOKENS:
            parts.append(f"s{self.split}")
        if self.window is not None:
            parts.append(f"w{self.window}")
        if self.softcap is not None:
            parts.append(f"c{int(self.softcap)}")
        if self.split_blocks is not None:
            parts.append(f"sb{self.split_blocks}")
        if self.key_product != "fma":
            parts.append(self.key_product)
        if self.value_product != "fma":
            parts.append("v" + self.value_product)
        if self.l2_prefetch != "none":
            parts.append("l2" + self.l2_prefetch)
        if self.key_stages:
            parts.append(f"ks{self.key_stages}")
        if self.value_stages:
            parts.append(f"vs{self.value_stages}")
        if self.combine != "kernel":
            parts.append(self.combine)
        if self.mma_codes != "subnormal":
            parts.append(self.mma_codes)
        if self.mask is not None:
            dtype, _, heads = self.mask.partition(":")
            parts.append(f"m{dtype[1:]}" + ("h" if heads else ""))
        return "_".join(parts)

    def manifest_line(self):
        fields = [self.name(), self.batch, self.query_heads, self.kv_heads,
                  self.head_dim, self.key, self.value, self.residual,
                  self.page_tokens, self.split]
        if self.window is not None:
            fields.append(f"window={self.window}")
        if self.softcap is not None:
            fields.append(f"softcap={self.softcap}")
        if self.key_product != "fma":
            fields.append(f"key_product={self.key_product}")
        if self.value_product != "fma":
            fields.append(f"value_product={self.value_product}")
        if self.l2_prefetch != "none":
            fields.append(f"l2_prefetch={self.l2_prefetch}")
        if self.key_stages:
            fields.append(f"key_stages={self.key_stages}")
        if self.value_stages:
            fields.append(f"value_stages={self.value_stages}")
        if self.combine != "kernel":
            fields.append(f"combine={self.combine}")
        if self.mma_codes != "subnormal":
            fields.append(f"mma_codes={self.mma_codes}")
        if self.mask is not None:
            fields.append(f"mask={self.mask}")
        return " ".join(str(f) for f in fields)


def variants():
    # The main encodings: every shape.
    for key, value in ((K2, V2), (K4, V4)):
        for group in (1, 4, 7, 8):
            for head_dim in (64, 128):
                for batch in (1, 8, 32):
                    # Llama-like 4 KV heads at head_dim 128, 2 otherwise.
                    kv_heads = 4 if head_dim == 128 else 2
                    yield Variant(key, value, batch, group, head_dim, kv_heads)
    # Every other bit width on each side, against a 2-bit other side.
    for bits in (3, 8):
        for head_dim in (64, 128):
            yield Variant(f"q{bits}:channel:g32", V2, 8, 4, head_dim)
            yield Variant(K2, f"q{bits}:token:g32", 8, 4, head_dim)
        yield Variant(f"q{bits}:channel:g32", f"q{bits}:token:g32", 8, 7,
                      128)
    # fp16 and fp8 sides.
    for group in (1, 8):
        for head_dim in (64, 128):
            yield Variant("fp16", "fp16", 8, group, head_dim)
    yield Variant("fp8:e4m3", V2, 8, 4, 128)
    yield Variant("fp8:e4m3", "fp8:e4m3", 32, 8, 64)
    yield Variant("fp8:e5m2", V4, 8, 4, 128)
    yield Variant(K4, "fp8:e5m2", 1, 4, 64)
    # Other axes and groups.
    yield Variant("q4:token:g32", V2, 8, 4, 128)
    yield Variant("q2:token:g64", "q4:token:g64", 8, 1, 128)
    yield Variant(K2, "q2:channel:g32", 8, 4, 64)
    yield Variant("q2:channel:g64", "q2:token:g64", 8, 4, 128)
    # Residual windows: none (every token compressed at once) and 64.
    yield Variant("fp8:e4m3", V4, 8, 4, 128, residual=0)
    yield Variant("fp16", "q2:token:g32", 8, 8, 64, residual=0)
    yield Variant(K2, V2, 8, 4, 128, residual=64)
    # Per-KV-head encodings: one split kernel per run of equal heads.
    yield Variant(f"{K4},fp8:e4m3,fp8:e4m3", f"{V2},{V2},{V2}", 8, 2, 64,
                  kv_heads=3, residual=64)
    yield Variant(f"{K2},{K2},{K4},{K4}", f"{V2},{V4},{V4},fp16", 8, 4, 128,
                  kv_heads=4)
    # Sliding window (shorter and longer than a split) and softcap.
    yield Variant(K2, V2, 8, 4, 128, window=300)
    yield Variant(K4, V4, 8, 8, 64, window=1000, softcap=30.0)
    yield Variant(K2, V2, 1, 7, 128, softcap=50.0)
    # Many splits per sequence (split-tokens=128).
    for key, value in ((K2, V2), (K4, V4)):
        for group in (4, 8):
            yield Variant(key, value, 8, group, 128, kv_heads=4, split=128)
    yield Variant(K2, V2, 32, 1, 64, split=128, window=200)
    # 128-token pages with group-128 channel-axis keys.
    yield Variant("q2:channel:g128", V2, 8, 4, 128, page_tokens=128)
    yield Variant("q4:channel:g128", "q4:token:g128", 1, 8, 128,
                  page_tokens=128)
    yield Variant(K2, V2, 8, 4, 64, page_tokens=128)
    # The tensor-core key pass: the main encodings at every GQA and
    # head_dim, every other key layout once, window, softcap, many splits,
    # 128-token pages.
    mma = "mma"
    for key, value in ((K2, V2), (K4, V4)):
        for group in (1, 4, 7, 8):
            for head_dim in (64, 128):
                kv_heads = 4 if head_dim == 128 else 2
                yield Variant(key, value, 8, group, head_dim, kv_heads,
                              key_product=mma)
    for key in ("q3:channel:g32", "q8:channel:g32", "q4:token:g32",
                "q2:channel:g64", "fp16", "fp8:e4m3", "fp8:e5m2"):
        yield Variant(key, V2, 8, 4, 128, key_product=mma)
    yield Variant("q2:token:g64", "q4:token:g64", 32, 7, 64, key_product=mma)
    yield Variant("q2:token:g32", V2, 1, 4, 128, residual=0, key_product=mma)
    yield Variant(K2, V2, 8, 4, 128, window=300, key_product=mma)
    yield Variant(K4, V4, 8, 8, 64, window=1000, softcap=30.0,
                  key_product=mma)
    yield Variant(K2, V2, 8, 4, 128, kv_heads=4, split=128, key_product=mma)
    yield Variant("q2:channel:g128", V2, 8, 4, 128, page_tokens=128,
                  key_product=mma)
    yield Variant(f"{K2},{K2},{K4},{K4}", f"{V2},{V4},{V4},fp16", 8, 4, 128,
                  kv_heads=4, key_product=mma)
    # Per-call split sizes (split-blocks): 1024 gives 64-token splits at
    # these sizes (128 for B = 8 at S = 4096); 400 gives 96 and 352 tokens,
    # splits that end inside a 128-token group or a window.
    for product in ("fma", mma):
        yield Variant(K2, V2, 8, 4, 128, kv_heads=4, key_product=product,
                      split_blocks=1024)
        yield Variant(K2, V2, 8, 4, 128, window=300, softcap=50.0,
                      key_product=product, split_blocks=400)
    # The tensor-core value pass: the main encodings at every GQA and
    # head_dim (with the CUDA-core and the tensor-core key pass), every
    # other value layout once, residual windows, per-head encodings,
    # window, softcap, many splits, 128-token pages and per-call splits.
    for key, value in ((K2, V2), (K4, V4)):
        for group in (1, 4, 7, 8):
            for head_dim in (64, 128):
                kv_heads = 4 if head_dim == 128 else 2
                for product in ("fma", mma):
                    yield Variant(key, value, 8, group, head_dim, kv_heads,
                                  key_product=product, value_product=mma)
    for value in ("q3:token:g32", "q8:token:g32", "q4:token:g64",
                  "q2:channel:g32", "q3:channel:g32", "q8:channel:g64",
                  "fp16", "fp8:e4m3", "fp8:e5m2"):
        yield Variant(K2, value, 8, 4, 128, value_product=mma)
    yield Variant(K4, "q4:channel:g32", 32, 7, 64, key_product=mma,
                  value_product=mma)
    yield Variant("fp16", "fp16", 1, 8, 64, residual=0, value_product=mma)
    yield Variant(K2, V2, 8, 4, 128, residual=64, value_product=mma)
    yield Variant(f"{K2},{K2},{K4},{K4}", f"{V2},{V4},{V4},fp16", 8, 4, 128,
                  kv_heads=4, key_product=mma, value_product=mma)
    yield Variant(K2, V2, 8, 4, 128, window=300, value_product=mma)
    yield Variant(K4, V4, 8, 8, 64, window=1000, softcap=30.0,
                  key_product=mma, value_product=mma)
    yield Variant(K2, V2, 8, 4, 128, kv_heads=4, split=128,
                  value_product=mma)
    yield Variant("q4:channel:g128", "q4:token:g128", 1, 8, 128,
                  page_tokens=128, key_product=mma, value_product=mma)
    # Values in groups of the whole head (the value pass folds their
    # scales): 2- and 8-bit at head_dim 128 (the benchmark's K2/V2 and
    # K8/V8 g128, split B columns), at head_dim 64 with 7 and 2 query
    # heads a KV head, and with the CUDA-core key pass.
    yield Variant("q2:channel:g128", "q2:token:g128", 8, 4, 128, kv_heads=4,
                  page_tokens=128, key_product=mma, value_product=mma)
    yield Variant("q8:channel:g128", "q8:token:g128", 8, 4, 128, kv_heads=4,
                  page_tokens=128, key_product=mma, value_product=mma)
    yield Variant(K2, "q2:token:g64", 8, 7, 64, key_product=mma,
                  value_product=mma)
    yield Variant(K4, "q8:token:g64", 32, 2, 64, value_product=mma)
    yield Variant(K2, V2, 8, 4, 128, kv_heads=4, key_product=mma,
                  value_product=mma, split_blocks=1024)
    yield Variant(K2, V2, 8, 4, 128, window=300, softcap=50.0,
                  value_product=mma, split_blocks=400)
    yield Variant(K4, V4, 1, 8, 128, kv_heads=4, split_blocks=1024)
    yield Variant("q2:channel:g128", V2, 8, 4, 128, kv_heads=4,
                  page_tokens=128, split_blocks=400)
    yield Variant("fp16", "fp16", 32, 8, 64, split_blocks=1024)
    # The L2 prefetch of the split's page blocks: bulk with both passes on
    # tensor cores (the benchmark's K2/V2 g32 and K8/V8 g128 shapes), with
    # per-call splits that start inside a page, a window, per-head
    # encodings (blocks at each head's offset); lines with the CUDA-core
    # passes, 128-token pages and fp16 pages (one page a split: 16 KB).
    for prefetch, products in (("bulk", (mma, mma)), ("lines", ("fma", "fma"))):
        yield Variant(K2, V2, 8, 4, 128, kv_heads=4, key_product=products[0],
                      value_product=products[1], l2_prefetch=prefetch)
    yield Variant("q8:channel:g128", "q8:token:g128", 8, 4, 128, kv_heads=4,
                  page_tokens=128, key_product=mma, value_product=mma,
                  l2_prefetch="bulk")
    yield Variant(K2, V2, 8, 4, 128, window=300, softcap=50.0,
                  key_product=mma, value_product=mma, split_blocks=400,
                  l2_prefetch="bulk")
    yield Variant(f"{K2},{K2},{K4},{K4}", f"{V2},{V4},{V4},fp16", 8, 4, 128,
                  kv_heads=4, key_product=mma, value_product=mma,
                  l2_prefetch="bulk")
    # 512-token splits: the fp16 head's 16 KB blocks stop at the byte
    # budget's 3 pages of 8, the others' do not.
    yield Variant(f"{K2},{K2},{K4},{K4}", f"{V2},{V4},{V4},fp16", 8, 4, 128,
                  kv_heads=4, split_blocks=0, l2_prefetch="lines")
    yield Variant("q4:channel:g128", "q4:token:g128", 1, 8, 128,
                  page_tokens=128, l2_prefetch="lines")
    yield Variant("fp16", "fp16", 8, 4, 64, l2_prefetch="lines")
    # The tensor-core key pass copying its next 32-token key units into
    # shared-memory stages with cp.async (key-stages, names ending in
    # _ks<N>; channel-axis 2-, 4- and 8-bit keys only), both passes on
    # tensor cores: K2/V2 at every GQA and head_dim (batches 1 and 8 in
    # turn), K4/V4 and 8-bit keys (at head_dim 128 in more than 48 KB of
    # dynamic shared memory), three stages (and 64-token splits, fewer
    # units than stages), group-128 keys on 128-token pages, a window with a softcap,
    # per-call splits that end inside a unit, the L2 prefetch, a residual
    # window of 64 (channel-axis keys need one) and per-head encodings.
    both = dict(key_product=mma, value_product=mma)
    for group in (1, 4, 7, 8):
        for head_dim in (64, 128):
            kv_heads = 4 if head_dim == 128 else 2
            batch = 8 if (group + head_dim // 64) % 2 else 1
            yield Variant(K2, V2, batch, group, head_dim, kv_heads,
                          key_stages=2, **both)
    yield Variant(K4, V4, 8, 4, 128, kv_heads=4, key_stages=2, **both)
    yield Variant("q8:channel:g32", V2, 8, 4, 64, key_stages=2, **both)
    yield Variant("q8:channel:g32", "q8:token:g32", 8, 4, 128, kv_heads=4,
                  key_stages=2, **both)
    yield Variant(K2, V2, 8, 4, 128, kv_heads=4, key_stages=3, **both)
    yield Variant(K4, V4, 8, 8, 64, split_blocks=1024, key_stages=3, **both)
    yield Variant("q2:channel:g128", "q2:token:g128", 8, 4, 128, kv_heads=4,
                  page_tokens=128, key_stages=2, **both)
    yield Variant(K2, V2, 8, 4, 128, window=300, softcap=50.0, key_stages=2,
                  **both)
    yield Variant(K2, V2, 8, 4, 128, kv_heads=4, split_blocks=400,
                  key_stages=2, **both)
    yield Variant(K2, V2, 8, 4, 128, kv_heads=4, l2_prefetch="bulk",
                  key_stages=2, **both)
    yield Variant(K2, V2, 8, 4, 128, residual=64, key_stages=2, **both)
    yield Variant(f"{K2},{K2},{K4},{K4}", f"{V2},{V4},{V4},fp16", 8, 4, 128,
                  kv_heads=4, key_stages=2, **both)
    # The value pass's 16-token blocks staged too (value-stages, names
    # ending in _vs<N>; token-axis 2-, 4- and 8-bit values only), with the
    # key stages: K2/V2 at GQA 1, 4 and 8, K4/V4, whole-head value groups
    # (folded scales) on 128-token pages, 8-bit values, K8/V8 g128 at
    # head_dim 128 (the benchmark's, past 48 KB), three stages with
    # per-call splits, and the L2 prefetch.
    staged = dict(key_stages=2, value_stages=2, **both)
    yield Variant(K2, V2, 1, 1, 128, kv_heads=4, **staged)
    yield Variant(K2, V2, 8, 4, 128, kv_heads=4, **staged)
    yield Variant(K2, V2, 8, 8, 64, **staged)
    yield Variant(K4, V4, 8, 4, 128, kv_heads=4, **staged)
    yield Variant("q2:channel:g128", "q2:token:g128", 8, 4, 128, kv_heads=4,
                  page_tokens=128, **staged)
    yield Variant("q4:channel:g32", "q8:token:g32", 8, 4, 64, **staged)
    yield Variant("q8:channel:g128", "q8:token:g128", 8, 4, 128, kv_heads=4,
                  page_tokens=128, **staged)
    yield Variant(K2, V4, 8, 4, 128, kv_heads=4, split_blocks=400,
                  key_stages=2, value_stages=3, **both)
    yield Variant(K2, V2, 8, 4, 128, kv_heads=4, l2_prefetch="bulk",
                  **staged)
    # The splits merged by the split kernels' last blocks (combine=fused).
    fused = dict(combine="fused")
    yield Variant(K2, V2, 8, 4, 128, kv_heads=4, **fused)
    yield Variant(K2, V2, 1, 8, 64, split_blocks=1024, **fused)
    yield Variant(K4, V4, 32, 1, 128, **fused)
    yield Variant("fp16", "fp16", 8, 8, 64, **fused)
    yield Variant(K2, V2, 8, 4, 128, window=300, softcap=50.0, **fused)
    yield Variant(f"{K2},{K2},{K4},{K4}", f"{V2},{V4},{V4},fp16", 8, 4, 128,
                  kv_heads=4, **both, **fused)
    yield Variant("q2:channel:g128", "q2:token:g128", 1, 4, 128, kv_heads=8,
                  page_tokens=128, **both, **fused)
    yield Variant(K2, V2, 8, 4, 128, kv_heads=4, l2_prefetch="bulk",
                  **staged, **fused)
    # GQA 7 and 8 at head_dim 128 on both tensor-core passes (Llama-3-70B's
    # 8): the merge's registers once made ptxas spill there.
    yield Variant(K2, V2, 8, 8, 128, **both, **fused)
    yield Variant(K4, V4, 1, 7, 128, **both, **fused)
    # The folded reads as fp16 normals (mma-codes=normal): 2-, 4- and 8-bit
    # channel-axis keys, whole-head value groups at 2 and 8 bits (128-token
    # pages), GQA 7 at head_dim 64, the key stages, the fused combine at
    # batch 1.
    normal = dict(mma_codes="normal", **both)
    yield Variant(K2, V2, 8, 4, 128, kv_heads=4, **normal)
    yield Variant(K4, V4, 8, 7, 64, **normal)
    yield Variant("q2:channel:g128", "q2:token:g128", 8, 4, 128, kv_heads=4,
                  page_tokens=128, **normal)
    yield Variant("q8:channel:g128", "q8:token:g128", 32, 4, 128,
                  kv_heads=4, page_tokens=128, **normal)
    yield Variant(K2, "q2:token:g64", 8, 7, 64, key_stages=2, **normal)
    yield Variant("q4:channel:g128", "q4:token:g128", 1, 4, 128, kv_heads=8,
                  page_tokens=128, combine="fused", **normal)
    # kvc.attend's mask operand (_m32, _m16; _m32h, _m16h with a row a
    # query head): every sequence of a batch equally long, the padding at
    # its start masked with -inf or the dtype's lowest value (whole splits
    # with no key), on CUDA and tensor cores, f32 and f16, many per-call
    # splits, the fused combine, group-128 pages and a window.
    yield Variant(K2, V2, 8, 4, 128, kv_heads=4, mask="f32")
    yield Variant(K2, V2, 1, 8, 64, mask="f16:heads", **both)
    yield Variant("q2:channel:g128", "q2:token:g128", 32, 1, 128, kv_heads=4,
                  page_tokens=128, mask="f32:heads", **both, **fused)
    yield Variant(K4, V4, 8, 7, 64, split_blocks=1024, key_product=mma,
                  mask="f16")
    yield Variant("fp16", "fp16", 8, 4, 128, window=300, mask="f32")
    # head_dims whose CUDA-core value spans do not fill the block, so that
    # a warp sits that pass out: 96 (Phi-3-mini's) and 192, with many
    # per-call splits and the fused combine.
    yield Variant(K2, V2, 8, 1, 96, kv_heads=4)
    yield Variant(K4, V4, 1, 8, 96, combine="fused")
    yield Variant("fp8:e4m3", "q3:token:g96", 8, 4, 96, residual=0)
    yield Variant(K2, V2, 32, 4, 96, split_blocks=1024)
    yield Variant("q2:channel:g64", "q2:token:g64", 8, 4, 192)


def side_attr(spec):
    """A side spec as its MLIR attribute."""
    if spec == "fp16":
        return "#kvc.plain"
    if spec.startswith("fp8:"):
        return f"#kvc.fp8<{spec[4:]}>"
    bits, axis, group = spec.split(":")
    assert bits[0] == "q" and group[0] == "g", spec
    return (f"#kvc.quant<bits = {bits[1:]}, axis = {axis}, "
            f"group = {group[1:]}>")


def encoding_attr(key, value, residual):
    return (f"#kvc.encoding<key = {side_attr(key)}, value = "
            f"{side_attr(value)}, residual = {residual}>")


def function(v):
    keys, values = v.key.split(","), v.value.split(",")
    per_head = len(keys) > 1 or len(values) > 1
    if per_head:
        assert len(keys) == len(values) == v.kv_heads, v.name()
    encodings = [encoding_attr(k, val, v.residual)
                 for k, val in zip(keys, values)]
    cache = f"!kvc.cache<{v.batch}x{v.kv_heads}x?x{v.head_dim}xf16, " \
            f"{encodings[0]}>"
    query = f"tensor<{v.batch}x{v.query_heads}x1x{v.head_dim}xf32>"
    mask_param = mask_operand = ""
    if v.mask is not None:
        dtype, _, heads = v.mask.partition(":")
        mask = (f"tensor<{v.batch}x{v.query_heads if heads else 1}x1x?x"
                f"{dtype}>")
        mask_param = f", %mask: {mask}"
        mask_operand = f" mask(%mask : {mask})"
    cache_attrs = (f" {{kvc.head_encodings = [{', '.join(encodings)}]}}"
                   if per_head else "")
    attend_attrs = []
    if v.window is not None:
        attend_attrs.append(f"window = {v.window} : i64")
    if v.softcap is not None:
        attend_attrs.append(f"softcap = {v.softcap} : f32")
    attrs = f" {{{', '.join(attend_attrs)}}}" if attend_attrs else ""
    return (f"func.func @{v.name()}(%cache: {cache}{cache_attrs}, "
            f"%q: {query}{mask_param}) -> {query} attributes "
            f"{{llvm.emit_c_interface}} {{\n"
            f"  %o = kvc.attend %q, %cache{mask_operand}{attrs} : {query}, "
            f"{cache} -> {query}\n"
            f"  return %o : {query}\n}}\n")


def module_name(stem, v):
    """The module holding variant `v` (one per pipeline-option group)."""
    suffix = "" if v.split_blocks is None else f"_sb{v.split_blocks}"
    suffix += "" if v.key_product == "fma" else f"_{v.key_product}"
    suffix += "" if v.value_product == "fma" else f"_v{v.value_product}"
    suffix += "" if v.l2_prefetch == "none" else f"_l2{v.l2_prefetch}"
    suffix += f"_ks{v.key_stages}" if v.key_stages else ""
    suffix += f"_vs{v.value_stages}" if v.value_stages else ""
    suffix += "" if v.combine == "kernel" else f"_{v.combine}"
    suffix += "" if v.mma_codes == "subnormal" else f"_{v.mma_codes}"
    return f"{stem}_p{v.page_tokens}_s{v.split}{suffix}.mlir"


def write_variants(outdir, variants, stem="variants",
                   manifest="manifest.txt", modules="modules.txt"):
    """Writes `variants` into OUTDIR grouped by pipeline options: one
    module `<stem>_p<P>_s<S>.mlir` per group, the module index `modules`
    and the manifest `manifest` (formats above). Returns (variants,
    modules) written."""
    os.makedirs(outdir, exist_ok=True)
    groups = {}
    seen = set()
    for v in variants:
        assert v.name() not in seen, f"duplicate variant {v.name()}"
        seen.add(v.name())
        groups.setdefault((v.page_tokens, v.split, v.key_product,
                           v.value_product,
                           v.split_blocks if v.split_blocks is not None
                           else -1, v.l2_prefetch, v.key_stages,
                           v.value_stages, v.combine, v.mma_codes),
                          []).append(v)
    with open(os.path.join(outdir, manifest), "w") as manifest_file, \
            open(os.path.join(outdir, modules), "w") as index:
        for (page_tokens, split, product, value_product, blocks,
             prefetch, stages, value_stages, combine,
             codes), group in sorted(groups.items()):
            name = module_name(stem, group[0])
            with open(os.path.join(outdir, name), "w") as out:
                out.write("".join(function(v) for v in group))
            # Optional trailing columns: split_blocks ("-": the build's
            # default), l2_prefetch, key_stages, value_stages, combine,
            # mma_codes; each written only when it or a later one is not
            # the default.
            line = f"{name} {page_tokens} {split} {product} {value_product}"
            if codes != "subnormal":
                line += (f" {blocks if blocks >= 0 else '-'} {prefetch}"
                         f" {stages} {value_stages} {combine} {codes}")
            elif combine != "kernel":
                line += (f" {blocks if blocks >= 0 else '-'} {prefetch}"
                         f" {stages} {value_stages} {combine}")
            elif value_stages:
                line += (f" {blocks if blocks >= 0 else '-'} {prefetch}"
                         f" {stages} {value_stages}")
            elif stages:
                line += (f" {blocks if blocks >= 0 else '-'} {prefetch}"
                         f" {stages}")
            elif prefetch != "none":
                line += f" {blocks if blocks >= 0 else '-'} {prefetch}"
            elif blocks >= 0:
                line += f" {blocks}"
            index.write(line + "\n")
            for v in group:
                manifest_file.write(v.manifest_line() + "\n")
    return len(seen), len(groups)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    count, modules = write_variants(sys.argv[1], variants())
    print(f"attention_variants: {count} variants in {modules} "
          f"modules under {sys.argv[1]}")


if __name__ == "__main__":
    main()
