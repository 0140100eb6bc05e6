"""kvc.quantize / dequantize / round_trip against an independent numpy model
of the numerics in DESIGN.md, and their error handling."""
import numpy as np
import pytest

import kvc


def numpy_quant_token_axis(x, bits, group):
    """DESIGN.md's quantizer, written independently: per token, groups of
    `group` channels; fp16 scale and zero; round half to even."""
    t, d = x.shape
    g = x.reshape(t, d // group, group).astype(np.float64)
    lo, hi = g.min(axis=-1, keepdims=True), g.max(axis=-1, keepdims=True)
    scale = ((hi - lo) / (2 ** bits - 1)).astype(np.float16).astype(np.float64)
    zero = lo.astype(np.float16).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        code = np.where(scale > 0, np.rint((g - zero) / np.where(scale > 0, scale, 1)), 0)
    code = np.clip(code, 0, 2 ** bits - 1)
    return (code * scale + zero).reshape(t, d)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_token_axis_matches_numpy_model(bits):
    rng = np.random.default_rng(bits)
    x = rng.standard_normal((64, 128)).astype(np.float32)
    got = kvc.round_trip(x, f"q{bits}:token:g32")
    want = numpy_quant_token_axis(x, bits, 32)
    # The library computes in float32: a code may differ by one step where
    # (x - zero) / scale lands within rounding of a .5 boundary.
    step = np.abs(np.diff(np.sort(np.unique(want))))
    mismatch = np.abs(got - want) > 1e-6 * np.abs(want).max()
    assert mismatch.mean() < 1e-3
    assert np.abs(got - want).max() <= (want.max() - want.min()) / (2 ** bits - 1) * 1.01


@pytest.mark.parametrize("spec", ["q2:channel:g32", "q3:channel:g64", "q4:token:g32",
                                  "q8:token:g128", "fp8:e4m3", "fp8:e5m2", "fp16"])
def test_quantize_dequantize_is_round_trip(spec):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 128, 128)).astype(np.float32)
    q = kvc.quantize(x, spec)
    y = kvc.dequantize(q, spec, 128, 128)
    assert y.shape == x.shape
    np.testing.assert_array_equal(y, kvc.round_trip(x, spec))
    # Batched calls equal per-matrix calls.
    np.testing.assert_array_equal(y[1], kvc.round_trip(x[1], spec))


def test_packed_sizes_and_error_bound():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 64)).astype(np.float32)
    q = kvc.quantize(x, "q2:channel:g32")
    assert q["codes"].nbytes == 64 * 64 * 2 // 8  # 2 bits per element
    assert q["scales"].dtype == np.float16 and q["scales"].size == 2 * 64
    y = kvc.dequantize(q, "q2:channel:g32", 64, 64)
    scales = q["scales"].astype(np.float32).reshape(-1)
    assert np.abs(y - x).max() <= scales.max() / 2 * 1.01 + 1e-3


def test_constant_group_is_exact():
    x = np.full((32, 64), 0.75, np.float32)
    np.testing.assert_array_equal(kvc.round_trip(x, "q2:channel:g32"), x)


def test_simulate_cache_side_keeps_the_residual():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 64)).astype(np.float32)
    y = kvc.simulate_cache_side(x, "q2:token:g32", 128)
    np.testing.assert_array_equal(y[256:], x[256:].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(y[:256], kvc.round_trip(x[:256], "q2:token:g32"))


def test_bits_per_element():
    assert kvc.bits_per_element("q2:channel:g32", 64) == 3.0
    assert kvc.bits_per_element("q2:token:g128", 64) == 2.25
    assert kvc.bits_per_element("fp16", 64) == 16.0
    assert kvc.bits_per_element("fp8:e4m3", 64) == 8.25


@pytest.mark.parametrize("spec,message", [
    ("q5:channel:g32", "bits must be 2, 3, 4 or 8"),
    ("q2:diagonal:g32", "diagonal"),
    ("q2:token:g33", "33"),
    ("int4", "int4"),
])
def test_bad_encodings_raise(spec, message):
    with pytest.raises(ValueError, match=message):
        kvc.round_trip(np.zeros((32, 64), np.float32), spec)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        kvc.round_trip(np.zeros((30, 64), np.float32), "q2:channel:g32")  # tokens % G
    with pytest.raises(ValueError):
        kvc.round_trip(np.zeros((32, 48), np.float32), "q2:token:g32")  # channels % G
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        kvc.round_trip(np.zeros(64, np.float32), "fp16")
    q = kvc.quantize(np.zeros((32, 64), np.float32), "q2:token:g32")
    with pytest.raises(ValueError, match="do not match"):
        kvc.dequantize(q, "q2:token:g32", 64, 64)
