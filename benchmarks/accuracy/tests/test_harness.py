"""The accuracy harness: its cache semantics equal decoding over the
runtime's cache, and a short run behaves (the full run is run_tinylm.py)."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kvc  # noqa: E402
import tinylm  # noqa: E402
from run_tinylm import MODEL_DIR  # noqa: E402

needs_model = pytest.mark.skipif(not os.path.isdir(MODEL_DIR),
                                 reason="../shared/models/tiny-lm is absent")


def reference_decode_attention(q, keys, values):
    """fp64 attention of one query [Hq, D] over [Hkv, n, D]."""
    hq, d = q.shape
    group = hq // keys.shape[0]
    out = np.empty((hq, d))
    for h in range(hq):
        s = keys[h // group].astype(np.float64) @ q[h].astype(np.float64) / np.sqrt(d)
        p = np.exp(s - s.max())
        out[h] = (p / p.sum()) @ values[h // group].astype(np.float64)
    return out


def test_teacher_forcing_equals_decoding_over_the_runtime_cache():
    """Query t of the parallel computation reads exactly what a decode step
    at position t reads from kvc's paged cache after t + 1 appends."""
    rng = np.random.default_rng(0)
    hq, hkv, t, d = 4, 2, 320, 64
    q = rng.standard_normal((hq, t, d)).astype(np.float32)
    k = (rng.standard_normal((hkv, t, d)) * np.linspace(0.5, 4, d)).astype(np.float32)
    v = rng.standard_normal((hkv, t, d)).astype(np.float32)
    key, value, residual = "q2:channel:g32", "q3:token:g32", 64
    model = tinylm.TinyLM({"num_hidden_layers": 1, "hidden_size": hq * d,
                           "num_attention_heads": hq, "num_key_value_heads": hkv,
                           "head_dim": d, "rms_norm_eps": 1e-6}, {})
    parallel = model.attention(q, k, v, tinylm._compress_heads(kvc, k, key),
                               tinylm._compress_heads(kvc, v, value), residual)
    cache = kvc.CPUCache([(key, value, residual)], kv_heads=hkv, head_dim=d,
                         max_tokens=t)
    seq = cache.new_sequence()
    for pos in range(t):
        cache.append(seq, 0, k[:, pos:pos + 1], v[:, pos:pos + 1])
        if pos % 37 != 5 and pos != t - 1:
            continue
        keys, values = cache.gather(seq, 0)
        want = reference_decode_attention(q[:, pos], keys, values)
        np.testing.assert_allclose(parallel[:, pos], want, atol=2e-5, rtol=0)


@needs_model
def test_short_run_orders_the_schemes():
    model = tinylm.TinyLM.load(MODEL_DIR)
    with open(os.path.join(MODEL_DIR, "dev.txt"), "rb") as f:
        data = f.read()
    run = lambda policy: tinylm.bits_per_byte(model, data, policy, max_windows=1)  # noqa: E731
    fp16 = run(None)
    plain = run(tinylm.KVPolicy.uniform(model.num_layers, "fp16", "fp16"))
    kivi4 = run(tinylm.KVPolicy.uniform(model.num_layers, "q4:channel:g32", "q4:token:g32"))
    kivi2 = run(tinylm.KVPolicy.uniform(model.num_layers, "q2:channel:g32", "q2:token:g32"))
    assert 0.5 < fp16 < 1.2
    # An fp16 "encoding" is the fp16 cache (up to float32 summation order).
    assert plain == pytest.approx(fp16, abs=1e-5)
    assert fp16 < kivi4 < kivi2
    assert kivi2 - fp16 > 0.01  # 2 bits visibly hurt; 4 bits barely
    assert kivi4 - fp16 < 0.005


def test_sink_tokens_are_held_apart_from_the_compressed_stream():
    """With S sink tokens, query t reads the sinks in fp16 and token j >= S
    compressed iff j < S + floor((t + 1 - S) / R) * R, where the stream's
    groups and blocks start at token S (so the sinks never widen a group's
    range)."""
    rng = np.random.default_rng(2)
    hq, hkv, t, d, sink, residual = 4, 2, 300, 64, 4, 64
    q = rng.standard_normal((hq, t, d)).astype(np.float32)
    k = (rng.standard_normal((hkv, t, d)) * np.linspace(0.5, 4, d)).astype(np.float32)
    v = rng.standard_normal((hkv, t, d)).astype(np.float32)
    k[:, 0] *= 50  # a sink with outlier magnitude
    key, value = "q2:channel:g32", "q3:token:g32"
    model = tinylm.TinyLM({"num_hidden_layers": 1, "hidden_size": hq * d,
                           "num_attention_heads": hq, "num_key_value_heads": hkv,
                           "head_dim": d, "rms_norm_eps": 1e-6}, {})
    policy = tinylm.KVPolicy([(key, value)], residual, sink=sink)
    keys_read, values_read = model._read_views(policy, 0, q, k, v, None, np.arange(t))
    stream = slice(sink, sink + ((t - sink) // residual) * residual)
    np.testing.assert_array_equal(keys_read[:, :sink], tinylm._round_fp16(k[:, :sink]))
    np.testing.assert_array_equal(
        keys_read[:, stream], tinylm._compress_heads(kvc, np.ascontiguousarray(k[:, stream]), key))
    np.testing.assert_array_equal(
        values_read[:, stream], tinylm._compress_heads(kvc, np.ascontiguousarray(v[:, stream]), value))
    np.testing.assert_array_equal(keys_read[:, stream.stop:], tinylm._round_fp16(k[:, stream.stop:]))

    parallel = model.attention(q, k, v, keys_read, values_read, residual, sink=sink)
    k16, v16 = tinylm._round_fp16(k), tinylm._round_fp16(v)
    for pos in list(range(0, t, 23)) + [sink - 1, sink + residual - 1, sink + residual, t - 1]:
        c = sink + ((pos + 1 - sink) // residual) * residual if pos + 1 >= sink else 0
        keys = np.concatenate([keys_read[:, :c], k16[:, c:pos + 1]], axis=1)
        values = np.concatenate([values_read[:, :c], v16[:, c:pos + 1]], axis=1)
        want = reference_decode_attention(q[:, pos], keys, values)
        np.testing.assert_allclose(parallel[:, pos], want, atol=2e-5, rtol=0)

    # Without sinks the outlier token shares a group with tokens 1..31 and
    # widens their range; held apart it does not.
    plain = tinylm._compress_heads(kvc, np.ascontiguousarray(k[:, :256]), key)
    err_plain = np.abs(plain[:, 1:32] - k[:, 1:32]).mean()
    err_sink = np.abs(keys_read[:, sink:32] - k[:, sink:32]).mean()
    assert err_sink < 0.5 * err_plain
