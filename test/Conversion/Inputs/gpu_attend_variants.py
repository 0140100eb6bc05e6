"""Writes one decode-attention function per kernel variant the GPU path
supports, for the ptxas checks of kvc-gpu-pipeline: every side encoding
(bits 2/3/4/8 x channel/token axis x groups 32/64, fp16, fp8 e4m3/e5m2) as
keys and as values, at head_dim 64 and 128, GQA 4; and GQA 1, 7 and 8 for
a few encodings. 64-token pages, residual 128.

usage: gpu_attend_variants.py OUT.mlir [--stageable-keys]
                              [--stageable-values]

--stageable-keys: only the variants kvc-lower-to-gpu's key-stages=2 takes:
channel-axis 2-, 4- and 8-bit keys (8-bit ones at head_dim 128 need more
than 48 KB of shared memory, which kvc-gpu-pipeline allows on sm_80 and
sm_90).
--stageable-values: only those value-stages takes: token-axis 2-, 4- and
8-bit values.
"""
import argparse
import re

SIDES = ([f"#kvc.quant<bits = {b}, axis = {axis}, group = {g}>"
          for b in (2, 3, 4, 8) for axis in ("channel", "token")
          for g in (32, 64)]
         + ["#kvc.plain", "#kvc.fp8<e4m3>", "#kvc.fp8<e5m2>"])
K2 = "#kvc.quant<bits = 2, axis = channel, group = 32>"
V2 = "#kvc.quant<bits = 2, axis = token, group = 32>"
K4 = "#kvc.quant<bits = 4, axis = channel, group = 32>"
V4 = "#kvc.quant<bits = 4, axis = token, group = 32>"


def variants():
    for d in (64, 128):
        for side in SIDES:
            yield side, V2, d, 4
            yield K2, side, d, 4
    for key, value in ((K2, V2), (K4, V4), ("#kvc.plain", "#kvc.plain")):
        for group in (1, 7, 8):
            yield key, value, 128, group


def function(index, key, value, d, group):
    enc = (f"#kvc.encoding<key = {key}, value = {value}, residual = 128>")
    cache = f"!kvc.cache<1x2x?x{d}xf16, {enc}>"
    q = f"tensor<1x{2 * group}x1x{d}xf32>"
    return (f"func.func @v{index}(%c: {cache}, %q: {q}) -> {q} {{\n"
            f"  %o = kvc.attend %q, %c : {q}, {cache} -> {q}\n"
            f"  return %o : {q}\n}}\n")


def stageable_keys(key):
    return re.match(r"#kvc.quant<bits = [248], axis = channel", key)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--stageable-keys", action="store_true")
    parser.add_argument("--stageable-values", action="store_true")
    args = parser.parse_args()
    with open(args.out, "w") as out:
        for index, variant in enumerate(variants()):
            if args.stageable_keys and not stageable_keys(variant[0]):
                continue
            if args.stageable_values and not re.match(
                    r"#kvc.quant<bits = [248], axis = token", variant[1]):
                continue
            out.write(function(index, *variant))


if __name__ == "__main__":
    main()
