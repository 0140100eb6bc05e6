"""Per-KV-head encodings (kvc-select-bitwidths granularity=head) through the
runtime cache and compiled code: each head is stored and read with its own
encoding."""
import numpy as np
import pytest

import kvc

H0 = ("#kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>, "
      "value = #kvc.quant<bits = 2, axis = token, group = 32>, residual = 64>")
H1 = ("#kvc.encoding<key = #kvc.quant<bits = 2, axis = channel, group = 32>, "
      "value = #kvc.fp8<e5m2>, residual = 64>")
TYPE = ("#kvc.encoding<key = #kvc.quant<bits = 4, axis = channel, group = 32>, "
        "value = #kvc.fp8<e5m2>, residual = 64>")
CACHE = f"!kvc.cache<1x2x?x64xf32, {TYPE}>"
HEADS = [("q4:channel:g32", "q2:token:g32", 64),
         ("q2:channel:g32", "fp8:e5m2", 64)]

STEP = f"""
func.func @step(%c: {CACHE} {{kvc.layer = 0 : i64, kvc.head_encodings = [{H0}, {H1}]}},
                %q: tensor<1x4x1x64xf32> {{kvc.name = "q"}},
                %k: tensor<1x2x1x64xf32> {{kvc.name = "k"}},
                %v: tensor<1x2x1x64xf32> {{kvc.name = "v"}})
    -> (tensor<1x4x1x64xf32> {{kvc.name = "out"}}, {CACHE}) {{
  %a = kvc.append %c, %k, %v : {CACHE}, tensor<1x2x1x64xf32>, tensor<1x2x1x64xf32>
  %o = kvc.attend %q, %a {{causal}} : tensor<1x4x1x64xf32>, {CACHE} -> tensor<1x4x1x64xf32>
  return %o, %a : tensor<1x4x1x64xf32>, {CACHE}
}}
"""


def attention(q, keys, values):
    """fp64 attention of one query token per query head (GQA)."""
    group = q.shape[0] // keys.shape[0]
    out = np.zeros(q.shape)
    for h in range(q.shape[0]):
        k = keys[h // group].astype(np.float64)
        s = k @ q[h].astype(np.float64) / np.sqrt(q.shape[-1])
        p = np.exp(s - s.max())
        out[h] = (p / p.sum()) @ values[h // group].astype(np.float64)
    return out


@pytest.fixture(scope="module")
def step():
    return kvc.compile(STEP, entry="step")


def test_signature_lists_the_heads(step):
    cache = step.arguments[0]
    assert cache["key"] == "q4:channel:g32" and cache["value"] == "fp8:e5m2"
    assert cache["head_encodings"] == HEADS


def test_cache_stores_each_head_with_its_encoding():
    rng = np.random.default_rng(1)
    cache = kvc.CPUCache([HEADS], kv_heads=2, head_dim=64)
    seq = cache.new_sequence()
    # fp16-representable tokens: the runtime stores fp16 first.
    keys = rng.standard_normal((2, 200, 64)).astype(np.float16).astype(np.float32)
    values = rng.standard_normal((2, 200, 64)).astype(np.float16).astype(np.float32)
    cache.append(seq, 0, keys, values)
    got_k, got_v = cache.gather(seq, 0)
    for h, (key_enc, value_enc, residual) in enumerate(HEADS):
        np.testing.assert_array_equal(
            got_k[h], kvc.simulate_cache_side(keys[h], key_enc, residual))
        np.testing.assert_array_equal(
            got_v[h], kvc.simulate_cache_side(values[h], value_enc, residual))
    # The two heads' blocks have different sizes; the stats add them up.
    uniform = kvc.CPUCache([HEADS[0]], kv_heads=2, head_dim=64)
    useq = uniform.new_sequence()
    uniform.append(useq, 0, keys, values)
    assert (cache.layer_stats(0)["k_page_bytes_used"]
            < uniform.layer_stats(0)["k_page_bytes_used"])
    cache.verify()


def test_decode_steps_match_the_per_head_oracle(step):
    """150 steps: the 64-token residual window flushes twice."""
    rng = np.random.default_rng(0)
    cache = step.new_cache(max_sequences=1, max_tokens=256)
    seqs = [cache.new_sequence()]
    keys = np.zeros((2, 0, 64), np.float32)
    values = np.zeros((2, 0, 64), np.float32)
    worst = shift = 0.0
    for t in range(150):
        q = rng.standard_normal((1, 4, 1, 64)).astype(np.float32)
        k = rng.standard_normal((1, 2, 1, 64)).astype(np.float32)
        k[..., ::16] *= 8
        v = rng.standard_normal((1, 2, 1, 64)).astype(np.float32)
        out = step({"q": q, "k": k, "v": v}, cache=cache, sequences=seqs)
        keys = np.concatenate([keys, k[0].astype(np.float16).astype(np.float32)], 1)
        values = np.concatenate(
            [values, v[0].astype(np.float16).astype(np.float32)], 1)
        if t % 10 != 9:
            continue
        sim_k = np.stack([kvc.simulate_cache_side(keys[h], e[0], e[2])
                          for h, e in enumerate(HEADS)])
        sim_v = np.stack([kvc.simulate_cache_side(values[h], e[1], e[2])
                          for h, e in enumerate(HEADS)])
        expected = attention(q[0, :, 0], sim_k, sim_v)
        # The type's (widest) encoding for every head is a different cache.
        widest = attention(
            q[0, :, 0],
            np.stack([kvc.simulate_cache_side(x, "q4:channel:g32", 64)
                      for x in keys]),
            np.stack([kvc.simulate_cache_side(x, "fp8:e5m2", 64)
                      for x in values]))
        scale = np.abs(expected).max()
        worst = np.maximum(worst, np.abs(out["out"][0, :, 0] - expected).max() / scale)
        shift = max(shift, np.abs(widest - expected).max() / scale)
    assert worst < 1e-4, worst
    assert shift > 1e-2, shift  # per-head encodings really differ
    cache.verify()


def test_bad_per_head_caches(step):
    q = np.zeros((1, 4, 1, 64), np.float32)
    kv = np.zeros((1, 2, 1, 64), np.float32)
    # A cache with the type's encoding for both heads is refused before
    # anything runs.
    uniform = kvc.CPUCache([("q4:channel:g32", "fp8:e5m2", 64)], kv_heads=2,
                           head_dim=64)
    seq = uniform.new_sequence()
    with pytest.raises(RuntimeError, match="per-head encodings\\) does not "
                       "fit the cache: KVC_RT_ERROR_ENCODING_MISMATCH"):
        step({"q": q, "k": kv, "v": kv}, cache=uniform, sequences=[seq])
    assert uniform.length(seq, 0) == 0
    with pytest.raises(ValueError, match="layer 0 lists 1 head encodings "
                       "for 2 KV heads"):
        kvc.CPUCache([[HEADS[0]]], kv_heads=2, head_dim=64)
    with pytest.raises(RuntimeError, match="KVC_RT_ERROR_INVALID_ARGUMENT"):
        kvc.CPUCache([[HEADS[0], ("q2:channel:g32", "fp16", 128)]],
                     kv_heads=2, head_dim=64)
