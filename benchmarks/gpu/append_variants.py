"""Writes the kvc.append variants of the GPU append check
(scripts/gpu_attention_build.sh, benchmarks/gpu/append_check.cpp).

Each variant is one `func.func @<name>` holding one `kvc.append` of N
tokens per batch entry to a `!kvc.cache<B x H x ? x D x f16>`, with
`llvm.emit_c_interface`, so that after kvc-gpu-pipeline (or
kvc-cpu-pipeline with append=generated) the host can call
`ptr _mlir_ciface_<name>(binding, &k, &v)` (k and v are rank-4 f32 memref
descriptors [B][H][N][D]; the binding comes back as the result).

Variants are grouped into modules by page tokens (the one pipeline option
they differ in). Outputs, in OUTDIR:

  append_p<P>.mlir       one module per page size
  append_modules.txt     "<file> <page_tokens>" per module
  append_manifest.txt    one line per variant, whitespace separated:
      name B H D N key value residual page_tokens
    key / value are side specs as in attention_variants.py:
    `q<bits>:<channel|token>:g<group>`, `fp16` or `fp8:<e4m3|e5m2>`.

Coverage: bits {2,3,4,8} x (channel-axis keys / token-axis values, and
token-axis keys / channel-axis values) x (group 32 with 64-token pages,
group 128 with 128-token pages), fp16 / fp16 and fp8 e4m3 / e5m2, all
with residual 128,
8 KV heads of head_dim 128, batch 2 (KIVI-2, K2 channel / V2 token group
32, at batch 1 and 8 instead), one token per call; a few with 7 tokens per
call (flushes in the middle of a call), and residual 0 with token-axis
keys and values (every call compresses).

usage: append_variants.py OUTDIR
"""
import os
import sys

HEADS = 8
HEAD_DIM = 128
RESIDUAL = 128


class Variant:
    def __init__(self, key, value, batch, group_pages, tokens=1,
                 residual=RESIDUAL):
        self.key, self.value = key, value
        self.batch, self.page_tokens = batch, group_pages
        self.tokens, self.residual = tokens, residual
        self.heads, self.head_dim = HEADS, HEAD_DIM

    def name(self):
        def short(spec):
            # q2:channel:g32 -> 2c32, fp16 -> f16, fp8:e4m3 -> e4m3.
            if spec == "fp16":
                return "f16"
            if spec.startswith("fp8:"):
                return spec[4:]
            bits, axis, group = spec.split(":")
            return f"{bits[1:]}{axis[0]}{group[1:]}"
        parts = [f"k{short(self.key)}", f"v{short(self.value)}",
                 f"r{self.residual}", f"b{self.batch}", f"n{self.tokens}",
                 f"p{self.page_tokens}"]
        return "append_" + "_".join(parts)

    def manifest_line(self):
        fields = [self.name(), self.batch, self.heads, self.head_dim,
                  self.tokens, self.key, self.value, self.residual,
                  self.page_tokens]
        return " ".join(str(f) for f in fields)


def quant(bits, axis, group):
    return f"q{bits}:{axis}:g{group}"


def variants():
    for bits in (2, 3, 4, 8):
        for group, page_tokens in ((32, 64), (128, 128)):
            for key_axis, value_axis in (("channel", "token"),
                                         ("token", "channel")):
                key = quant(bits, key_axis, group)
                value = quant(bits, value_axis, group)
                kivi2 = bits == 2 and group == 32 and key_axis == "channel"
                for batch in ((1, 8) if kivi2 else (2,)):
                    yield Variant(key, value, batch, page_tokens)
    yield Variant("fp16", "fp16", 2, 64)
    yield Variant("fp8:e4m3", "fp8:e5m2", 2, 64)
    # Seven tokens per call: flushes in the middle of a call.
    yield Variant(quant(2, "channel", 32), quant(2, "token", 32), 8, 64,
                  tokens=7)
    yield Variant(quant(3, "token", 32), quant(3, "channel", 32), 2, 64,
                  tokens=7)
    yield Variant(quant(4, "channel", 128), quant(4, "token", 128), 2, 128,
                  tokens=7)
    yield Variant("fp16", "fp16", 2, 64, tokens=7)
    # No residual window: every call compresses its tokens at once.
    yield Variant(quant(4, "token", 32), quant(2, "token", 32), 2, 64,
                  residual=0)


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


def function(v):
    encoding = (f"#kvc.encoding<key = {side_attr(v.key)}, value = "
                f"{side_attr(v.value)}, residual = {v.residual}>")
    cache = f"!kvc.cache<{v.batch}x{v.heads}x?x{v.head_dim}xf16, {encoding}>"
    tokens = f"tensor<{v.batch}x{v.heads}x{v.tokens}x{v.head_dim}xf32>"
    return (f"func.func @{v.name()}(%c: {cache}, %k: {tokens}, "
            f"%v: {tokens}) -> {cache} attributes {{llvm.emit_c_interface}} "
            f"{{\n"
            f"  %c1 = kvc.append %c, %k, %v : {cache}, {tokens}, {tokens}\n"
            f"  return %c1 : {cache}\n}}\n")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    modules = {}
    seen = set()
    for v in variants():
        assert v.name() not in seen, f"duplicate variant {v.name()}"
        seen.add(v.name())
        modules.setdefault(v.page_tokens, []).append(v)
    with open(os.path.join(outdir, "append_manifest.txt"), "w") as manifest, \
            open(os.path.join(outdir, "append_modules.txt"), "w") as index:
        for page_tokens, group in sorted(modules.items()):
            name = f"append_p{page_tokens}.mlir"
            with open(os.path.join(outdir, name), "w") as out:
                out.write("".join(function(v) for v in group))
            index.write(f"{name} {page_tokens}\n")
            for v in group:
                manifest.write(v.manifest_line() + "\n")
    print(f"append_variants: {len(seen)} variants in {len(modules)} "
          f"modules under {outdir}")


if __name__ == "__main__":
    main()
