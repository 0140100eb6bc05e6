"""kvc.compile: functions JIT-compiled for the CPU (or for the GPU, their
kernels run by kvc's GPU emulator), called on numpy arrays and on runtime
caches that persist between calls."""
import numpy as np
import pytest

import kvc

ENCODING = ("#kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, "
            "group = 32>, value = #kvc.quant<bits = 2, axis = token, "
            "group = 32>, residual = 64>")
CACHE = f"!kvc.cache<2x2x?x64xf16, {ENCODING}>"

# Two layers, batch 2, 4 query / 2 KV heads: what a raised decoder step is.
STEP = f"""
func.func @step(%c0: {CACHE} {{kvc.layer = 0 : i64}},
                %c1: {CACHE} {{kvc.layer = 1 : i64}},
                %q: tensor<2x4x1x64xf32> {{kvc.name = "q"}},
                %k: tensor<2x2x1x64xf32> {{kvc.name = "k"}},
                %v: tensor<2x2x1x64xf32> {{kvc.name = "v"}})
    -> (tensor<2x4x1x64xf32> {{kvc.name = "out0"}},
        tensor<2x4x1x64xf32> {{kvc.name = "out1"}}, {CACHE}, {CACHE}) {{
  %a0 = kvc.append %c0, %k, %v : {CACHE}, tensor<2x2x1x64xf32>, tensor<2x2x1x64xf32>
  %o0 = kvc.attend %q, %a0 {{causal}} : tensor<2x4x1x64xf32>, {CACHE} -> tensor<2x4x1x64xf32>
  %a1 = kvc.append %c1, %v, %k : {CACHE}, tensor<2x2x1x64xf32>, tensor<2x2x1x64xf32>
  %o1 = kvc.attend %q, %a1 {{causal}} : tensor<2x4x1x64xf32>, {CACHE} -> tensor<2x4x1x64xf32>
  return %o0, %o1, %a0, %a1 : tensor<2x4x1x64xf32>, tensor<2x4x1x64xf32>, {CACHE}, {CACHE}
}}
"""

ADD = """
func.func @add(%a: tensor<2x?xf32> {kvc.name = "a"}, %b: tensor<2x?xf32>)
    -> tensor<2x3xf32> {
  %0 = tensor.empty() : tensor<2x3xf32>
  %c0 = arith.constant 0 : index
  %a3 = tensor.extract_slice %a[0, 0] [2, 3] [1, 1] : tensor<2x?xf32> to tensor<2x3xf32>
  %b3 = tensor.extract_slice %b[0, 0] [2, 3] [1, 1] : tensor<2x?xf32> to tensor<2x3xf32>
  %1 = linalg.add ins(%a3, %b3 : tensor<2x3xf32>, tensor<2x3xf32>) outs(%0 : tensor<2x3xf32>) -> tensor<2x3xf32>
  return %1 : tensor<2x3xf32>
}
"""


@pytest.fixture(scope="module")
def step():
    return kvc.compile(STEP, entry="step")


def reference(q, keys, values, key_enc, value_enc, residual):
    """fp64 attention of one query token over what the cache reads back."""
    hq, d = q.shape[0], q.shape[-1]
    group = hq // keys.shape[0]
    out = np.zeros((hq, d))
    for h in range(hq):
        k = kvc.simulate_cache_side(keys[h // group], key_enc, residual)
        v = kvc.simulate_cache_side(values[h // group], value_enc, residual)
        s = k.astype(np.float64) @ q[h, 0].astype(np.float64) / np.sqrt(d)
        p = np.exp(s - s.max())
        out[h] = (p / p.sum()) @ v.astype(np.float64)
    return out


def test_signature(step):
    caches = [a for a in step.arguments if a["kind"] == "cache"]
    assert [c["layer"] for c in caches] == [0, 1]
    assert caches[0] == {"name": "arg0", "kind": "cache", "layer": 0,
                         "batch": 2, "kv_heads": 2, "head_dim": 64,
                         "key": "q2:channel:g32", "value": "q2:token:g32",
                         "residual": 64, "rotated_keys": False}
    tensors = [a for a in step.arguments if a["kind"] == "tensor"]
    assert [(t["name"], t["dtype"], t["shape"]) for t in tensors] == [
        ("q", "F32", [2, 4, 1, 64]), ("k", "F32", [2, 2, 1, 64]),
        ("v", "F32", [2, 2, 1, 64])]
    assert [r["name"] for r in step.results] == ["out0", "out1"]


def test_decode_steps_match_the_oracle(step):
    """150 steps: the 64-token residual flushes twice in compiled appends."""
    run_steps_against_the_oracle(step)


def test_gpu_kernels_in_the_emulator_match_the_oracle():
    """The same steps compiled with kvc-gpu-pipeline: append and attention
    kernels run by kvc's GPU emulator on the CPU cache (64-token splits, so
    the combine kernel merges up to three)."""
    emulated = kvc.compile(STEP, entry="step",
                           gpu_emulator="split-tokens=64 split-blocks=0")
    assert emulated.arguments == kvc.compile(STEP, entry="step").arguments
    run_steps_against_the_oracle(emulated)


# Layer 1's query is layer 0's output: the first attention's result feeds
# the second. On a GPU the kernels write results only into the caller's
# buffers, so it must be returned too ({returned}).
CHAINED = """
func.func @step(%c0: {cache} {{kvc.layer = 0 : i64}},
                %c1: {cache} {{kvc.layer = 1 : i64}},
                %q: tensor<2x4x1x64xf32> {{kvc.name = "q"}},
                %k: tensor<2x2x1x64xf32> {{kvc.name = "k"}},
                %v: tensor<2x2x1x64xf32> {{kvc.name = "v"}})
    -> ({result_types}{cache}, {cache}) {{
  %a0 = kvc.append %c0, %k, %v : {cache}, tensor<2x2x1x64xf32>, tensor<2x2x1x64xf32>
  %o0 = kvc.attend %q, %a0 {{causal}} : tensor<2x4x1x64xf32>, {cache} -> tensor<2x4x1x64xf32>
  %a1 = kvc.append %c1, %v, %k : {cache}, tensor<2x2x1x64xf32>, tensor<2x2x1x64xf32>
  %o1 = kvc.attend %o0, %a1 {{causal}} : tensor<2x4x1x64xf32>, {cache} -> tensor<2x4x1x64xf32>
  return {returned}, %a0, %a1 : {result_types}{cache}, {cache}
}}
"""
T = "tensor<2x4x1x64xf32>"


def test_gpu_results_must_be_returned():
    """An attention result that is not returned would be a host allocation
    the kernels write: an error for the GPU pipeline and for the emulator,
    which accepts what a GPU can run; the CPU pipeline takes it."""
    only_last = CHAINED.format(cache=CACHE, returned="%o1",
                               result_types=f"{T}, ")
    kvc.compile(only_last, entry="step")
    with pytest.raises(kvc.CompileError,
                       match="result #0 is not returned by the function"):
        kvc.compile(only_last, entry="step", gpu_emulator="")


def test_gpu_emulator_chained_attention_matches_the_cpu():
    """Returned, the first result is the caller's buffer the second
    attention reads: the emulated step matches the CPU-compiled one."""
    both = CHAINED.format(cache=CACHE, returned="%o0, %o1",
                          result_types=f"{T}, {T}, ")
    cpu = kvc.compile(both, entry="step")
    emulated = kvc.compile(both, entry="step", gpu_emulator="")
    rng = np.random.default_rng(1)
    caches = [f.new_cache(max_sequences=2, max_tokens=128)
              for f in (cpu, emulated)]
    seqs = [[c.new_sequence(), c.new_sequence()] for c in caches]
    for _ in range(70):
        inputs = {name: rng.standard_normal(shape).astype(np.float32)
                  for name, shape in (("q", (2, 4, 1, 64)),
                                      ("k", (2, 2, 1, 64)),
                                      ("v", (2, 2, 1, 64)))}
        want = cpu(inputs, cache=caches[0], sequences=seqs[0])
        got = emulated(inputs, cache=caches[1], sequences=seqs[1])
        for name in ("result0", "result1"):
            np.testing.assert_allclose(
                got[name], want[name], rtol=1e-4,
                atol=1e-4 * np.abs(want[name]).max())


def test_gpu_emulator_options_are_checked():
    with pytest.raises(kvc.CompileError, match="format is set by the caller"):
        kvc.compile(STEP, entry="step", gpu_emulator="format=isa")
    with pytest.raises(kvc.CompileError, match="split-tokens"):
        kvc.compile(STEP, entry="step", gpu_emulator="split-tokens=100")


def run_steps_against_the_oracle(step):
    rng = np.random.default_rng(0)
    cache = step.new_cache(max_sequences=2, max_tokens=256)
    seqs = [cache.new_sequence(), cache.new_sequence()]
    keys = np.zeros((2, 2, 0, 64), np.float32)
    values = np.zeros((2, 2, 0, 64), np.float32)
    worst = shift = 0.0
    for t in range(150):
        q = rng.standard_normal((2, 4, 1, 64)).astype(np.float32)
        k = rng.standard_normal((2, 2, 1, 64)).astype(np.float32)
        k[..., ::16] *= 8  # outlier channels, as real keys have
        v = rng.standard_normal((2, 2, 1, 64)).astype(np.float32)
        out = step({"q": q, "k": k, "v": v}, cache=cache, sequences=seqs)
        keys = np.concatenate([keys, k.astype(np.float16).astype(np.float32)], 2)
        values = np.concatenate(
            [values, v.astype(np.float16).astype(np.float32)], 2)
        if t % 10 != 9:
            continue
        for b in range(2):
            expected0 = reference(q[b], keys[b], values[b], "q2:channel:g32",
                                  "q2:token:g32", 64)
            # Layer 1 stores v as keys and k as values.
            expected1 = reference(q[b], values[b], keys[b], "q2:channel:g32",
                                  "q2:token:g32", 64)
            plain = reference(q[b], keys[b], values[b], "fp16", "fp16", 64)
            scale = np.abs(expected0).max()
            # np.max, unlike max(), keeps a NaN error.
            worst = np.max([worst,
                            np.abs(out["out0"][b, :, 0] - expected0).max() / scale,
                            np.abs(out["out1"][b, :, 0] - expected1).max() /
                            np.abs(expected1).max()])
            shift = max(shift, np.abs(plain - expected0).max() / scale)
    assert cache.length(seqs[0], 0) == 150 and cache.length(seqs[1], 1) == 150
    assert cache.layer_stats(0)["compressed_tokens"] == 2 * 128
    assert worst < 1e-4, worst
    assert shift > 1e-2, shift  # the encoding really applies
    cache.verify()


def test_tensor_function():
    add = kvc.compile(ADD, entry="add")
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 5), 0.5, np.float32)
    out = add({"a": a, "arg1": b})
    assert list(out) == ["result0"]
    np.testing.assert_array_equal(out["result0"], a[:, :3] + 0.5)
    # Strided views are copied to a dense buffer first.
    out = add({"a": np.ascontiguousarray(a.T).T, "arg1": b})
    np.testing.assert_array_equal(out["result0"], a[:, :3] + 0.5)


def test_bad_calls(step):
    add = kvc.compile(ADD, entry="add")
    b = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="input 'a' is float64"):
        add({"a": np.zeros((2, 3)), "arg1": b})
    with pytest.raises(KeyError, match="no input 'arg1'"):
        add({"a": b})
    with pytest.raises(KeyError, match="no tensor argument 'c'"):
        add({"a": b, "arg1": b, "c": b})
    with pytest.raises(RuntimeError, match=r"shape \[3,3\] does not fit \[2,\?\]"):
        add({"a": np.zeros((3, 3), np.float32), "arg1": b})
    with pytest.raises(TypeError, match="must be a numpy array"):
        add({"a": [[1.0]], "arg1": b})
    q = np.zeros((2, 4, 1, 64), np.float32)
    kv = np.zeros((2, 2, 1, 64), np.float32)
    with pytest.raises(ValueError, match="pass cache= and sequences="):
        step({"q": q, "k": kv, "v": kv})
    cache = step.new_cache(max_sequences=2)
    with pytest.raises(ValueError, match="cache of batch 2, got 1 sequences"):
        step({"q": q, "k": kv, "v": kv}, cache=cache,
             sequences=[cache.new_sequence()])
    # A cache whose encodings are not the compiled ones is refused before
    # anything runs: nothing is appended.
    other = kvc.CPUCache([("q2:channel:g32", "q2:token:g32", 64),
                          ("fp16", "fp16", 64)], kv_heads=2, head_dim=64)
    seqs = [other.new_sequence(), other.new_sequence()]
    with pytest.raises(RuntimeError, match=r"argument 'arg1' \(layer 1, key "
                       r"q2:channel:g32, value q2:token:g32, residual 64\) "
                       "does not fit the cache: KVC_RT_ERROR_ENCODING_MISMATCH"):
        step({"q": q, "k": kv, "v": kv}, cache=other, sequences=seqs)
    assert other.length(seqs[0], 0) == 0


def test_compile_errors():
    with pytest.raises(kvc.CompileError, match="no function @nope"):
        kvc.compile(ADD, entry="nope")
    with pytest.raises(kvc.CompileError, match="<python>:2:"):
        kvc.compile("func.func @f() {\n  %0 = arith.bogus\n}", entry="f")
    dynamic = ("func.func @f(%a: tensor<?xf32>) -> tensor<?xf32> {\n"
               "  return %a : tensor<?xf32>\n}")
    with pytest.raises(kvc.CompileError,
                       match=r"result #0 \('result0'\) must be a static"):
        kvc.compile(dynamic, entry="f")
    with pytest.raises(ValueError, match="takes no cache"):
        kvc.compile(ADD, entry="add").new_cache()


def test_rotated_keys_match_the_oracle():
    """kvc-rotate-keys: the cache stores K·H, attention reads with q·H. The
    oracle rotates with the numerics' own transform (kvc.hadamard_rotate)."""
    rotated = kvc.run_pipeline(STEP, "builtin.module(kvc-rotate-keys)")
    assert rotated.count("kvc.rotated_keys") == 6  # 4 ops, 2 arguments
    step = kvc.compile(rotated, entry="step")
    assert all(a["rotated_keys"] for a in step.arguments if a["kind"] == "cache")
    rng = np.random.default_rng(1)
    cache = step.new_cache(max_sequences=2, max_tokens=256)
    seqs = [cache.new_sequence(), cache.new_sequence()]
    keys = np.zeros((2, 2, 0, 64), np.float32)
    values = np.zeros((2, 2, 0, 64), np.float32)
    worst = 0.0
    for t in range(100):
        q = rng.standard_normal((2, 4, 1, 64)).astype(np.float32)
        k = rng.standard_normal((2, 2, 1, 64)).astype(np.float32)
        k[..., ::16] *= 8
        v = rng.standard_normal((2, 2, 1, 64)).astype(np.float32)
        out = step({"q": q, "k": k, "v": v}, cache=cache, sequences=seqs)
        keys = np.concatenate([keys, kvc.hadamard_rotate(k)], 2)
        values = np.concatenate([values, v], 2)
        if t % 10 != 9:
            continue
        for b in range(2):
            # Layer 0: rotated keys; values as they are.
            stored = keys[b].astype(np.float16).astype(np.float32)
            expected = reference(kvc.hadamard_rotate(q[b]), stored,
                                 values[b].astype(np.float16).astype(np.float32),
                                 "q2:channel:g32", "q2:token:g32", 64)
            scale = np.abs(expected).max()
            worst = np.maximum(worst, np.abs(out["out0"][b, :, 0] - expected).max() / scale)
    assert worst < 1e-4, worst


def masked_step(heads):
    """A decode step whose attention takes a mask: batch x heads x 1 x
    tokens, added to the scores (Hugging Face decoders pass a padding mask,
    a large negative number on padded tokens, with heads 1), its size taken
    from the call."""
    mask = f"tensor<2x{heads}x1x?xf32>"
    return f"""
func.func @step(%c: {CACHE} {{kvc.layer = 0 : i64}},
                %q: tensor<2x4x1x64xf32> {{kvc.name = "q"}},
                %k: tensor<2x2x1x64xf32> {{kvc.name = "k"}},
                %v: tensor<2x2x1x64xf32> {{kvc.name = "v"}},
                %m: {mask} {{kvc.name = "mask"}})
    -> (tensor<2x4x1x64xf32> {{kvc.name = "out"}}, {CACHE}) {{
  %a = kvc.append %c, %k, %v : {CACHE}, tensor<2x2x1x64xf32>, tensor<2x2x1x64xf32>
  %o = kvc.attend %q, %a mask(%m : {mask}) {{causal}} : tensor<2x4x1x64xf32>, {CACHE} -> tensor<2x4x1x64xf32>
  return %o, %a : tensor<2x4x1x64xf32>, {CACHE}
}}
"""


def step_inputs(rng):
    return {name: rng.standard_normal(shape).astype(np.float32)
            for name, shape in (("q", (2, 4, 1, 64)), ("k", (2, 2, 1, 64)),
                                ("v", (2, 2, 1, 64)))}


@pytest.mark.parametrize("heads,options,reads", [
    (1, "split-tokens=64 split-blocks=0", ("rows", "f32")),
    (4, "split-tokens=64 split-blocks=0", ("rows", "f32")),
    (1, "split-tokens=64 split-blocks=0", ("parts", "f16")),
    (4, "combine=fused", ("parts", "f16"))])
def test_gpu_emulator_masked_attention_matches_the_cpu(heads, options, reads):
    """The mask operand (one row for all query heads, or one a head) in the
    split kernels: the emulated step matches the CPU-compiled one over 150
    steps (the residual flushing twice; 64-token splits merged), a fifth of
    the tokens masked out and a random bias on the others. With fp16 reads
    (the tensor-core passes on the GPU, which fold the keys' scales into the
    queries where the CPU loops dequantize) a looser tolerance, still 100x
    below what the mask changes (a third, unmasked cache measures that)."""
    ir = masked_step(heads)
    key_reads, value_reads = reads
    cpu = kvc.compile(ir, entry="step", key_reads=key_reads,
                      value_reads=value_reads)
    emulated = kvc.compile(ir, entry="step", gpu_emulator=options,
                           key_reads=key_reads, value_reads=value_reads)
    rng = np.random.default_rng(2)
    caches = [f.new_cache(max_sequences=2, max_tokens=160)
              for f in (cpu, emulated, cpu)]
    seqs = [[c.new_sequence(), c.new_sequence()] for c in caches]
    tolerance = 3e-3 if key_reads == "parts" else 1e-4
    worst = moved = 0.0
    for n in range(1, 151):
        mask = rng.standard_normal((2, heads, 1, n)).astype(np.float32)
        mask[:, :, :, rng.random(n) < 0.2] = np.finfo(np.float32).min
        inputs = step_inputs(rng)
        want, got, unmasked = (
            f(dict(inputs, mask=m), cache=c, sequences=s)["out"]
            for f, m, c, s in zip((cpu, emulated, cpu),
                                  (mask, mask, np.zeros_like(mask)),
                                  caches, seqs))
        scale = np.abs(want).max()
        worst = np.maximum(worst, float(np.abs(got - want).max() / scale))
        moved = np.maximum(moved, float(np.abs(unmasked - want).max() / scale))
    assert worst <= tolerance
    assert moved > 100 * tolerance


@pytest.mark.parametrize("options", ["split-tokens=64 split-blocks=0",
                                     "split-tokens=64 split-blocks=0 "
                                     "combine=fused"])
def test_gpu_emulator_left_padding_masked_with_minus_infinity(options):
    """Left padding masked with -inf (as exports that build the mask with
    Where(-inf) do): the first sequence's first 100 tokens, so whole 64-token
    splits see no key. Their weights must be 0, not exp(-inf - -inf) = NaN,
    and the merge must skip them: the emulated step matches the CPU one."""
    ir = masked_step(1)
    cpu = kvc.compile(ir, entry="step")
    emulated = kvc.compile(ir, entry="step", gpu_emulator=options)
    rng = np.random.default_rng(4)
    caches = [f.new_cache(max_sequences=2, max_tokens=200)
              for f in (cpu, emulated)]
    seqs = [[c.new_sequence(), c.new_sequence()] for c in caches]
    worst = 0.0
    for n in range(1, 181):
        mask = np.zeros((2, 1, 1, n), np.float32)
        # The newest token is never padding.
        mask[0, :, :, :min(100, n - 1)] = -np.inf
        inputs = step_inputs(rng)
        want, got = (f(dict(inputs, mask=mask), cache=c, sequences=s)["out"]
                     for f, c, s in zip((cpu, emulated), caches, seqs))
        assert np.isfinite(want).all()
        worst = np.maximum(worst, float(np.abs(got - want).max() /
                                 np.abs(want).max()))
    assert worst <= 1e-4, worst


def test_gpu_emulator_mask_of_another_length_gives_nan():
    """A sequence whose token count is not the mask's would be read past the
    mask's end: its outputs are NaN instead, on the CPU and in the GPU
    kernels alike, and the other sequence's are computed."""
    ir = masked_step(1)
    rng = np.random.default_rng(3)
    for function in (kvc.compile(ir, entry="step"),
                     kvc.compile(ir, entry="step", gpu_emulator="")):
        cache = function.new_cache(max_sequences=2, max_tokens=16)
        seqs = [cache.new_sequence(), cache.new_sequence()]
        # The first sequence holds 2 tokens before the step, the second 0.
        cache.append(seqs[0], 0, *rng.standard_normal((2, 2, 2, 64),
                                                      dtype=np.float32))
        got = function(dict(step_inputs(rng),
                            mask=np.zeros((2, 1, 1, 1), np.float32)),
                       cache=cache, sequences=seqs)["out"]
        assert np.isnan(got[0]).all()
        assert np.isfinite(got[1]).all()


def test_read_options_are_checked():
    with pytest.raises(kvc.CompileError,
                       match="key-reads must be `rows` or `parts`, not `bogus`"):
        kvc.compile(STEP, entry="step", key_reads="bogus")
    with pytest.raises(kvc.CompileError,
                       match="value-reads must be `f32` or `f16`, not `f64`"):
        kvc.compile(STEP, entry="step", gpu_emulator="", value_reads="f64")
