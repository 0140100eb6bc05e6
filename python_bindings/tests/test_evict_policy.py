"""kvc.select_kept_tokens / kvc.check_evict_policy: the numerics library's
eviction rule (kvc/Numerics/Evict.h) on numpy rows."""
import numpy as np
import pytest

import kvc


def brute_force(scores, keep, sink, window, budget):
    n = scores.shape[-1]
    keep = keep.copy()
    live = [t for t in range(n) if keep[t]]
    if len(live) <= budget:
        return keep
    protected = [t for t in live if t < sink or t >= n - window]
    middle = sorted((t for t in live if not (t < sink or t >= n - window)),
                    key=lambda t: (scores[t], t), reverse=True)
    for t in middle[budget - len(protected):]:
        keep[t] = 0
    return keep


def test_h2o_rows_match_brute_force():
    rng = np.random.default_rng(0)
    scores = np.floor(rng.random((3, 5, 40)) * 4).astype(np.float32)
    keep = (rng.random((3, 5, 40)) < 0.9).astype(np.uint8)
    out = kvc.select_kept_tokens("h2o:sink=2:window=5:budget=16", scores, keep)
    assert out.shape == scores.shape and out.dtype == np.uint8
    for index in np.ndindex(3, 5):
        expected = brute_force(scores[index], keep[index], 2, 5, 16)
        np.testing.assert_array_equal(out[index], expected)
        assert out[index].sum() <= 16
    # The input keep mask is not modified.
    assert keep.sum() > out.sum()


def test_streaming_needs_no_scores():
    out = kvc.select_kept_tokens("streaming:sink=4:window=8", num_tokens=30)
    expected = np.zeros(30, np.uint8)
    expected[:4] = 1
    expected[-8:] = 1
    np.testing.assert_array_equal(out, expected)


def test_check_evict_policy_normalizes():
    assert kvc.check_evict_policy("snapkv:window=16:budget=64") == \
        "snapkv:sink=0:window=16:budget=64"


@pytest.mark.parametrize("spec, message", [
    ("lru:budget=8", "unknown eviction policy 'lru'"),
    ("h2o:sink=8:window=8:budget=8", "must not exceed the budget"),
    ("streaming:sink=4:window=8:budget=20", "budget must equal 12"),
    ("h2o:sink=1:window=0:budget=8", "window must be at least 1"),
    ("h2o:sink=x:window=1:budget=8", "not a token count"),
])
def test_bad_policies_raise(spec, message):
    with pytest.raises(ValueError, match=message):
        kvc.check_evict_policy(spec)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="pass scores"):
        kvc.select_kept_tokens("h2o:sink=1:window=1:budget=4", num_tokens=8)
    with pytest.raises(ValueError, match="NaN"):
        kvc.select_kept_tokens("h2o:sink=1:window=1:budget=4",
                               np.array([0, np.nan, 1, 2, 3], np.float32))
    with pytest.raises(ValueError, match="same shape"):
        kvc.select_kept_tokens("h2o:sink=1:window=1:budget=4",
                               np.zeros(5, np.float32), np.ones(6, np.uint8))


def test_per_head_budgets_apply_to_the_kv_head_axis():
    rng = np.random.default_rng(3)
    scores = rng.random((2, 3, 50)).astype(np.float32)
    out = kvc.select_kept_tokens("h2o:sink=2:window=4:heads=30,10,20", scores)
    for b in range(2):
        for h, budget in enumerate((30, 10, 20)):
            expected = brute_force(scores[b, h], np.ones(50, np.uint8), 2, 4, budget)
            np.testing.assert_array_equal(out[b, h], expected)
    assert kvc.check_evict_policy("h2o:sink=2:window=4:heads=30,10,20") == \
        "h2o:sink=2:window=4:budget=30:heads=30,10,20"
    with pytest.raises(ValueError, match=r"3 per-head budgets: the arrays must be \[\.\.\., 3 kv_heads"):
        kvc.select_kept_tokens("h2o:sink=2:window=4:heads=30,10,20", scores[:, :2])
    with pytest.raises(ValueError, match="KV head 1"):
        kvc.check_evict_policy("h2o:sink=2:window=4:heads=30,5,20")
