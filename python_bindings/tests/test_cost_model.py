"""kvc.select_bitwidths and kvc.candidate_errors: the cost model from Python."""
import os

import pytest

import kvc

SHARED = os.environ.get("KVC_SHARED_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
QKV = os.path.join(SHARED, "models", "tiny-lm", "qkv_layers.safetensors")
needs_qkv = pytest.mark.skipif(not os.path.exists(QKV), reason="tiny-lm Q/K/V dump absent")


@pytest.mark.parametrize("budget", [2.5, 3.0, 4.0, 6.0])
def test_analytic_selection_meets_the_budget(budget):
    report = kvc.select_bitwidths(num_layers=4, kv_heads=2, head_dim=64, budget=budget)
    assert report["model"] == "analytic"
    assert report["average_bits"] <= budget + 1e-9
    assert len(report["slots"]) == 4 * 2  # (layer, key|value)
    bits = [s["bits_per_element"] for s in report["slots"]]
    assert sum(bits) / len(bits) == pytest.approx(report["average_bits"])
    # More budget never predicts more loss.
    if budget > 2.5:
        tighter = kvc.select_bitwidths(4, 2, 64, budget - 0.5)
        assert report["predicted_loss"] <= tighter["predicted_loss"] + 1e-12


def test_infeasible_budget_and_bad_arguments_raise():
    with pytest.raises(ValueError, match="budget"):
        kvc.select_bitwidths(2, 2, 64, budget=1.0)
    with pytest.raises(ValueError, match="granularity"):
        kvc.select_bitwidths(2, 2, 64, budget=3.0, granularity="token")
    with pytest.raises(ValueError, match="no-such-file"):
        kvc.select_bitwidths(2, 2, 64, budget=3.0, stats="/no-such-file.safetensors")


@needs_qkv
def test_measured_errors_on_real_keys():
    errors = kvc.candidate_errors(QKV, layer=4, side="key",
                                  candidates=["q2:channel:g32", "q2:token:g32",
                                              "q4:channel:g32", "fp16"])
    e = {entry["candidate"]: entry for entry in errors}
    # KIVI's observation on real keys: per-channel beats per-token at 2 bits.
    assert e["q2:channel:g32"]["error"] < e["q2:token:g32"]["error"]
    assert e["q4:channel:g32"]["error"] < e["q2:channel:g32"]["error"] / 4
    assert e["fp16"]["error"] == 0.0
    assert len(e["q2:channel:g32"]["head_errors"]) == 2
    with pytest.raises(ValueError, match="bits"):
        kvc.candidate_errors(QKV, 0, "key", ["q6:channel:g32"])
    with pytest.raises(ValueError, match="side"):
        kvc.candidate_errors(QKV, 0, "query", ["fp16"])


@needs_qkv
def test_selection_on_real_statistics_per_head():
    report = kvc.select_bitwidths(6, 2, 64, budget=3.0, stats=QKV, granularity="head")
    assert report["model"] == "attention-error"  # the dump has no calibration entries
    assert report["average_bits"] <= 3.0 + 1e-9
    assert {s["head"] for s in report["slots"]} == {0, 1}
