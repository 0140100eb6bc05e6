"""kvc.CPUCache: the runtime's paged cache from Python."""
import numpy as np
import pytest

import kvc

KIVI2 = ("q2:channel:g32", "q2:token:g32", 128)


def fp16(x):
    return x.astype(np.float16).astype(np.float32)


def tokens(rng, n, heads=2, dim=64):
    return rng.standard_normal((heads, n, dim)).astype(np.float32)


def test_append_then_gather_is_the_simulated_cache():
    rng = np.random.default_rng(0)
    cache = kvc.CPUCache([KIVI2, ("q4:channel:g32", "fp8:e4m3", 64)], kv_heads=2, head_dim=64)
    seq = cache.new_sequence()
    for layer, (key, value, residual) in enumerate([KIVI2, ("q4:channel:g32", "fp8:e4m3", 64)]):
        k, v = tokens(rng, 300), tokens(rng, 300)
        # In pieces: flushes happen at multiples of R whatever the chunking.
        for lo, hi in [(0, 1), (1, 130), (130, 300)]:
            cache.append(seq, layer, k[:, lo:hi], v[:, lo:hi])
        gk, gv = cache.gather(seq, layer)
        # The runtime stores appended tokens as fp16 (docs/layout.md), then
        # compresses those.
        k16, v16 = fp16(k), fp16(v)
        for h in range(2):
            np.testing.assert_array_equal(gk[h], kvc.simulate_cache_side(k16[h], key, residual))
            np.testing.assert_array_equal(gv[h], kvc.simulate_cache_side(v16[h], value, residual))
        assert cache.length(seq, layer) == 300
    stats = cache.layer_stats(0)
    assert stats["tokens"] == 300 and stats["compressed_tokens"] == 256
    # Decoupled: 2-bit keys and values take equal pages here, fp8 values more.
    assert cache.layer_stats(1)["v_page_bytes_used"] > cache.layer_stats(1)["k_page_bytes_used"]
    cache.verify()


def test_fork_shares_then_copies_on_write():
    rng = np.random.default_rng(1)
    cache = kvc.CPUCache([KIVI2], kv_heads=2, head_dim=64)
    parent = cache.new_sequence()
    k = tokens(rng, 256)
    cache.append(parent, 0, k, k)
    child = cache.fork(parent)
    assert cache.layer_stats(0)["pages_shared"] > 0
    extra = tokens(rng, 128)
    cache.append(child, 0, extra, extra)
    np.testing.assert_array_equal(cache.gather(parent, 0)[0], cache.gather(child, 0)[0][:, :256])
    assert cache.length(parent, 0) == 256 and cache.length(child, 0) == 384
    cache.free(child)
    cache.free(parent)
    assert cache.layer_stats(0)["pages_used"] == 0
    cache.verify()


def test_errors_leave_the_cache_unchanged():
    rng = np.random.default_rng(2)
    cache = kvc.CPUCache([KIVI2], kv_heads=2, head_dim=64, max_sequences=1, max_tokens=256)
    seq = cache.new_sequence()
    k = tokens(rng, 200)
    cache.append(seq, 0, k, k)
    with pytest.raises(RuntimeError, match="CAPACITY_EXCEEDED"):
        cache.append(seq, 0, tokens(rng, 100), tokens(rng, 100))
    assert cache.length(seq, 0) == 200
    with pytest.raises(RuntimeError, match="INVALID_ARGUMENT"):
        cache.append(seq, 3, k, k)
    with pytest.raises(RuntimeError, match="SHAPE_MISMATCH"):
        cache.append(seq, 0, tokens(rng, 4, heads=3), tokens(rng, 4, heads=3))
    with pytest.raises(ValueError, match="one shape"):
        cache.append(seq, 0, tokens(rng, 4), tokens(rng, 5))
    with pytest.raises(RuntimeError):
        cache.new_sequence()  # max_sequences = 1
    cache.free(seq)
    with pytest.raises(RuntimeError, match="INVALID_SEQUENCE"):
        cache.free(seq)
    cache.verify()


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="bits"):
        kvc.CPUCache([("q7:channel:g32", "fp16", 128)], kv_heads=2, head_dim=64)
    with pytest.raises(RuntimeError):
        kvc.CPUCache([("q2:channel:g64", "fp16", 96)], kv_heads=2, head_dim=64)


def test_evict_releases_pages_and_matches_the_numerics_rule():
    rng = np.random.default_rng(5)
    cache = kvc.CPUCache([KIVI2], kv_heads=2, head_dim=64, page_tokens=64,
                         max_sequences=1, max_tokens=512)
    seq = cache.new_sequence()
    cache.append(seq, 0, tokens(rng, 400), tokens(rng, 400))
    used_before = cache.layer_stats(0)["pages_used"]
    scores = rng.random((2, 400)).astype(np.float32)
    # Heavy hitters only among the first 256 tokens: pages 4 and 5 (tokens
    # 256..383) keep no token in either head, apart from the window.
    scores[:, 256:] = 0.0
    policy = "h2o:sink=4:window=16:budget=100"
    cache.evict(seq, 0, policy, scores)
    live = cache.live_tokens(seq, 0)
    np.testing.assert_array_equal(live, kvc.select_kept_tokens(policy, scores))
    assert live.sum(axis=1).tolist() == [100, 100]
    stats = cache.layer_stats(0)
    assert stats["tokens_live"] == 200 and stats["tokens_evicted"] == 600
    assert stats["pages_used"] < used_before
    cache.verify()
    # Evicted tokens read back as NaN, live ones as before.
    gk, _ = cache.gather(seq, 0)
    assert np.isnan(gk[live == 0]).all() and not np.isnan(gk[live == 1]).any()


def test_evict_bad_input_raises_and_changes_nothing():
    rng = np.random.default_rng(6)
    cache = kvc.CPUCache([KIVI2], kv_heads=2, head_dim=64, max_sequences=1,
                         max_tokens=256)
    seq = cache.new_sequence()
    cache.append(seq, 0, tokens(rng, 50), tokens(rng, 50))
    with pytest.raises(ValueError, match="unknown eviction policy"):
        cache.evict(seq, 0, "lru:budget=4")
    with pytest.raises(ValueError, match=r"scores must be \[kv_heads, tokens\]"):
        cache.evict(seq, 0, "h2o:sink=1:window=1:budget=8",
                    np.zeros((2, 49), np.float32))
    with pytest.raises(RuntimeError, match="kvc_rt_evict"):
        cache.evict(seq, 0, "h2o:sink=1:window=1:budget=8")  # no scores
    assert cache.live_tokens(seq, 0).all()
    cache.verify()


def test_evict_with_per_head_budgets():
    rng = np.random.default_rng(7)
    cache = kvc.CPUCache([KIVI2], kv_heads=2, head_dim=64, max_sequences=1,
                         max_tokens=512)
    seq = cache.new_sequence()
    cache.append(seq, 0, tokens(rng, 300), tokens(rng, 300))
    scores = rng.random((2, 300)).astype(np.float32)
    policy = "h2o:sink=4:window=16:heads=120,40"
    with pytest.raises(ValueError, match="3 per-head budgets for 2 KV heads"):
        cache.evict(seq, 0, "h2o:sink=4:window=16:heads=120,40,40", scores)
    assert cache.live_tokens(seq, 0).all()
    cache.evict(seq, 0, policy, scores)
    live = cache.live_tokens(seq, 0)
    np.testing.assert_array_equal(live, kvc.select_kept_tokens(policy, scores))
    assert live.sum(axis=1).tolist() == [120, 40]
    stats = cache.layer_stats(0)
    assert stats["tokens_live"] == 160 and stats["tokens_evicted"] == 440
    cache.verify()


def test_evict_demote_keeps_evicted_tokens_at_a_cheaper_encoding():
    rng = np.random.default_rng(8)
    cache = kvc.CPUCache([("q4:channel:g32", "q4:token:g32", 64)], kv_heads=2,
                         head_dim=64, max_sequences=1, max_tokens=512)
    seq = cache.new_sequence()
    cache.append(seq, 0, tokens(rng, 300), tokens(rng, 300))
    keys_before, values_before = cache.gather(seq, 0)
    scores = rng.random((2, 300)).astype(np.float32)
    policy = "h2o:sink=4:window=16:budget=100"
    with pytest.raises(RuntimeError, match="channel axis"):
        cache.evict(seq, 0, policy, scores, demote=("q2:channel:g32", "q2:token:g32"))
    assert cache.live_tokens(seq, 0).all()
    cache.evict(seq, 0, policy, scores, demote=("q2:token:g32", "q2:token:g32"))
    live = cache.live_tokens(seq, 0)
    np.testing.assert_array_equal(live, kvc.select_kept_tokens(policy, scores))
    keys, values = cache.gather(seq, 0)
    # Live rows unchanged; evicted rows are the q2 per-token round trip of
    # the rows read before (not NaN), close to them but not equal.
    np.testing.assert_array_equal(keys[live == 1], keys_before[live == 1])
    evicted = live == 0
    want = kvc.round_trip(keys_before[evicted], "q2:token:g32")
    np.testing.assert_array_equal(keys[evicted], want)
    assert not np.array_equal(values[evicted], values_before[evicted])
    stats = cache.layer_stats(0)
    assert stats["tokens_demoted"] == stats["tokens_evicted"] == 400
    assert stats["demoted_bytes"] > 0
    assert cache.stats()["demoted_bytes"] == stats["demoted_bytes"]
    with pytest.raises(RuntimeError, match="kvc_rt_evict_demote"):
        cache.evict(seq, 0, "h2o:sink=4:window=16:budget=50", scores)
    cache.verify()
