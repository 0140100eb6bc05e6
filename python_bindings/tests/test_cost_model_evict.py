"""kvc.select_bitwidths with token budgets (context, evict_fractions)."""
import os

import pytest

import kvc

SHARED = os.environ.get("KVC_SHARED_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
QKV = os.path.join(SHARED, "models", "tiny-lm", "qkv_layers.safetensors")
needs_qkv = pytest.mark.skipif(not os.path.exists(QKV), reason="tiny-lm Q/K/V dump absent")


@needs_qkv
def test_token_budgets_on_real_statistics():
    # 2 of the 6 layers keep the calibration cheap; below the cheapest
    # encoding (2.25 bits) only token budgets fit.
    report = kvc.select_bitwidths(2, 2, 64, budget=1.5, stats=QKV, context=2048,
                                  evict_fractions=[1, 0.5])
    assert report["context"] == 2048
    assert report["evict_fractions"] == [1, 0.5]
    assert report["average_bits"] <= 1.5 + 1e-9
    assert [e["layer"] for e in report["evictions"]] == [0, 1]
    for e in report["evictions"]:
        assert e["evict"] == "h2o:sink=4:window=128:budget=1024"
        assert e["keep_fraction"] == 0.5
        assert e["calibration_budget"] == 512
        assert e["error"] > 0
    for s in report["slots"]:
        assert s["evict"] == "h2o:sink=4:window=128:budget=1024"
        assert s["keep_fraction"] == 0.5
        assert s["bytes_per_token"] == pytest.approx(
            s["bits_per_element"] * 2 * 64 / 8 * 0.5)
    # Keeping every token is the choice without token budgets.
    plain = kvc.select_bitwidths(2, 2, 64, budget=3.0, stats=QKV)
    keep = kvc.select_bitwidths(2, 2, 64, budget=3.0, stats=QKV, context=2048,
                                evict_fractions=[1])
    assert [s["encoding"] for s in keep["slots"]] == [s["encoding"] for s in plain["slots"]]
    assert all(e["evict"] is None for e in keep["evictions"])
    assert "evict" not in plain["slots"][0] and "context" not in plain


@needs_qkv
def test_per_head_token_budgets_on_real_statistics():
    # granularity="head": every KV head chooses its own budget. At 2.5 bits
    # layer 0's heads differ on the tiny LM's statistics: one keeps every
    # token (budget = context), the other half of them.
    report = kvc.select_bitwidths(2, 2, 64, budget=2.5, stats=QKV, context=2048,
                                  evict_fractions=[1, 0.5], granularity="head")
    assert report["average_bits"] <= 2.5 + 1e-9
    layer0 = report["evictions"][0]
    assert layer0["evict"] == "h2o:sink=4:window=128:budget=2048:heads=2048,1024"
    assert layer0["head_budgets"] == [2048, 1024]
    assert layer0["calibration_head_budgets"] == [1024, 512]
    assert layer0["keep_fraction"] == 0.75
    # The spec is one kvc.select_kept_tokens and the runtime read.
    assert kvc.check_evict_policy(layer0["evict"]) == layer0["evict"]
    budgets = {e["layer"]: e for e in report["evictions"]}
    for s in report["slots"]:
        layer = budgets[s["layer"]]
        assert s["evict"] == layer["evict"]
        own = layer["head_budgets"][s["head"]] if "head_budgets" in layer \
            else int(layer["evict"].split("=")[-1])
        assert s["token_budget"] == own
        assert s["keep_fraction"] == own / 2048
        assert s["bytes_per_token"] == pytest.approx(
            s["bits_per_element"] * 64 / 8 * s["keep_fraction"])


def test_token_budget_arguments_raise():
    with pytest.raises(ValueError, match="context"):
        kvc.select_bitwidths(2, 2, 64, budget=3.0, context=-1)
    with pytest.raises(ValueError, match="need statistics"):
        kvc.select_bitwidths(2, 2, 64, budget=3.0, context=1024)
    with pytest.raises(ValueError, match="evict_fractions needs context"):
        kvc.select_bitwidths(2, 2, 64, budget=3.0, evict_fractions=[0.5])


@needs_qkv
def test_bad_evict_fractions_raise():
    with pytest.raises(ValueError, match=r"evict fraction 1.5 is not in \(0, 1\]"):
        kvc.select_bitwidths(2, 2, 64, budget=3.0, stats=QKV, context=1024,
                             evict_fractions=[0.5, 1.5])
    with pytest.raises(ValueError, match="listed twice"):
        kvc.select_bitwidths(2, 2, 64, budget=3.0, stats=QKV, context=1024,
                             evict_fractions=[0.5, 0.5])
