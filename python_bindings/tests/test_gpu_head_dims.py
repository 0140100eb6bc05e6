"""Head dims whose value spans do not fill the GPU kernels' 128-thread
blocks (96, Phi-3's; 192): whole warps sit the CUDA-core value pass out.
The emulated kernels match the CPU-compiled step over 150 decode steps
(the residual flushing, 64-token splits merged)."""
import numpy as np
import pytest

import kvc


def quant(bits, axis, group):
    return f"#kvc.quant<bits = {bits}, axis = {axis}, group = {group}>"


def decode_step(head_dim, query_heads, kv_heads, key, value):
    encoding = f"#kvc.encoding<key = {key}, value = {value}, residual = 64>"
    cache = f"!kvc.cache<2x{kv_heads}x?x{head_dim}xf16, {encoding}>"
    q = f"tensor<2x{query_heads}x1x{head_dim}xf32>"
    kv = f"tensor<2x{kv_heads}x1x{head_dim}xf32>"
    return f"""
func.func @step(%c: {cache} {{kvc.layer = 0 : i64}},
                %q: {q} {{kvc.name = "q"}}, %k: {kv} {{kvc.name = "k"}},
                %v: {kv} {{kvc.name = "v"}}) -> ({q} {{kvc.name = "out"}}, {cache}) {{
  %a = kvc.append %c, %k, %v : {cache}, {kv}, {kv}
  %o = kvc.attend %q, %a {{causal}} : {q}, {cache} -> {q}
  return %o, %a : {q}, {cache}
}}
"""


@pytest.mark.parametrize("head_dim,query_heads,kv_heads,key,value,options", [
    # Phi-3-mini's 96 channels, GQA 1: 12 spans of 8, three warps.
    (96, 4, 4, quant(2, "channel", 32), quant(2, "token", 32), ""),
    # GQA 8: spans of 2 channels; the fused combine.
    (96, 16, 2, quant(4, "channel", 32), quant(4, "token", 32),
     "combine=fused"),
    (96, 8, 2, "#kvc.fp8<e4m3>", quant(3, "token", 96), ""),
    (96, 8, 2, quant(4, "token", 32), quant(2, "channel", 32),
     "l2-prefetch=lines"),
    (192, 8, 2, quant(2, "channel", 64), quant(2, "token", 64), ""),
])
def test_emulated_kernels_match_the_cpu(head_dim, query_heads, kv_heads, key,
                                        value, options):
    ir = decode_step(head_dim, query_heads, kv_heads, key, value)
    cpu = kvc.compile(ir, entry="step")
    emulated = kvc.compile(
        ir, entry="step",
        gpu_emulator=f"split-tokens=64 split-blocks=0 {options}".strip())
    rng = np.random.default_rng(head_dim + query_heads)
    caches = [f.new_cache(max_sequences=2, max_tokens=160)
              for f in (cpu, emulated)]
    seqs = [[c.new_sequence(), c.new_sequence()] for c in caches]
    worst = 0.0
    for _ in range(150):
        inputs = {
            "q": rng.standard_normal((2, query_heads, 1, head_dim)),
            "k": rng.standard_normal((2, kv_heads, 1, head_dim)),
            "v": rng.standard_normal((2, kv_heads, 1, head_dim))}
        inputs = {name: x.astype(np.float32) for name, x in inputs.items()}
        want, got = (f(inputs, cache=c, sequences=s)["out"]
                     for f, c, s in zip((cpu, emulated), caches, seqs))
        # np.maximum, unlike max(), keeps a NaN error.
        worst = np.maximum(worst, np.abs(got - want).max() /
                           np.abs(want).max())
    assert worst <= 1e-5, worst
