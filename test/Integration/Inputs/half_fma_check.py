#!/usr/bin/env python3
"""Inputs for half-fma-exact.mlir and the check of its results.

  half_fma_check.py make INPUTS.safetensors [--seed S]
  half_fma_check.py check INPUTS.safetensors OUTPUTS.safetensors

`make` writes fp16 operands a, b, c: random bit patterns (every class:
NaN, infinities, subnormals, signed zeros), products and addends of
mixed scales, and sums a hair beside the midpoint between two fp16
values (where rounding twice goes wrong). `check`
compares the compiled fma with the correctly rounded fp16 fma, computed
exactly with integers, bit for bit (any NaN for a NaN), prints the count
of differences and how many of the cases a sum rounded to f32 first and
then to fp16 gets wrong (the test must contain such cases), and exits 1 on
a difference.
"""

import argparse
import sys

import numpy as np

from kvc import safetensors

N = 1 << 17


def exact_fma(a, b, c):
    """The correctly rounded (to nearest even) fp16 a·b + c."""
    a, b, c = float(a), float(b), float(c)
    if any(np.isnan(x) for x in (a, b, c)):
        return np.float16(np.nan)
    if np.isinf(a) or np.isinf(b):
        if a == 0 or b == 0:
            return np.float16(np.nan)
        product_sign = np.copysign(1.0, a) * np.copysign(1.0, b)
        if np.isinf(c) and np.copysign(1.0, c) != product_sign:
            return np.float16(np.nan)
        return np.float16(product_sign * np.inf)
    if np.isinf(c):
        return np.float16(c)
    # Every finite fp16 is an integer times 2^-24: the sum in units of 2^-48.
    ia, ib, ic = (int(x * 2**24) for x in (a, b, c))
    total = ia * ib + ic * 2**24
    if total == 0:
        # An exact zero is +0, unless both terms are -0 (or the product is
        # -0 and c is -0).
        negative = (np.copysign(1.0, a) * np.copysign(1.0, b) < 0
                    and np.copysign(1.0, c) < 0 and ia * ib == 0 and ic == 0)
        return np.float16(-0.0 if negative else 0.0)
    magnitude = abs(total)
    exponent = magnitude.bit_length() - 1 - 48  # floor(log2 |value|)
    ulp = max(exponent, -14) - 10  # fp16's unit in the last place
    unit = 2 ** (ulp + 48)
    q, r = divmod(magnitude, unit)
    if 2 * r > unit or (2 * r == unit and q % 2 == 1):
        q += 1
    value = q * 2.0**ulp  # exact in f64; above 65504 it becomes inf
    with np.errstate(over="ignore"):
        return np.float16(value if total > 0 else -value)


def make(path, seed):
    rng = np.random.default_rng(seed)
    quarter = N // 4
    # Random bit patterns: every class of fp16.
    bits = rng.integers(0, 1 << 16, size=(3, quarter), dtype=np.uint32)
    patterns = bits.astype(np.uint16).view(np.float16)
    # Mixed scales: significands in [1, 2), exponents over fp16's range.
    def scaled(size, low, high):
        m = rng.uniform(1, 2, size) * rng.choice([-1, 1], size)
        return (m * 2.0 ** rng.integers(low, high, size)).astype(np.float16)
    mixed = np.stack([scaled(quarter, -14, 8), scaled(quarter, -14, 8),
                      scaled(quarter, -20, 15)])
    # Sums a hair beside a midpoint between two fp16 values: a·b =
    # ±2^s (1 - n²·2^-20) (a = 2^k (1 + n·2^-10), b = 2^(s-k) (1 - n·2^-10))
    # and c = ±2^(s+11) (1 + m·2^-10), whose fp16 ulp is 2^(s+1): c + a·b
    # lies n²·2^(s-20) from the midpoint c ± 2^s, less than half an f32 ulp,
    # so a sum rounded to f32 first lands on the midpoint and then rounds
    # to even: wrong whenever c's significand is odd (m odd).
    count = N - 2 * quarter
    n = rng.integers(1, 12, count)
    s = rng.integers(-10, 5, count)
    k = s // 2
    sign = lambda: rng.choice([-1.0, 1.0], count)
    a = sign() * 2.0**k * (1 + n * 2.0**-10)
    b = sign() * 2.0 ** (s - k) * (1 - n * 2.0**-10)
    c = sign() * 2.0 ** (s + 11) * (1 + rng.integers(0, 1024, count) * 2.0**-10)
    near = np.stack([a, b, c]).astype(np.float16)
    assert (near.astype(np.float64) == np.stack([a, b, c])).all()
    operands = np.concatenate([patterns, mixed, near], axis=1)
    safetensors.write(path, {"a": operands[0], "b": operands[1],
                             "c": operands[2]})


def check(inputs, outputs):
    tensors, _ = safetensors.read(inputs)
    a, b, c = (tensors[k] for k in ("a", "b", "c"))
    results, _ = safetensors.read(outputs)
    (got,) = results.values()
    differ = 0
    twice_wrong = 0
    with np.errstate(all="ignore"):
        twice = (a.astype(np.float32) * b.astype(np.float32)
                 + c.astype(np.float32)).astype(np.float16)
    for i in range(len(a)):
        want = exact_fma(a[i], b[i], c[i])
        same = (np.isnan(want) and np.isnan(got[i])) or (
            want.view(np.uint16) == got[i].view(np.uint16))
        if not same:
            if differ < 10:
                print(f"fma({a[i]!r}, {b[i]!r}, {c[i]!r}) = {got[i]!r}, "
                      f"correctly rounded {want!r}")
            differ += 1
        if not np.isnan(want) and twice[i].view(np.uint16) != want.view(
                np.uint16):
            twice_wrong += 1
    print(f"{len(a)} fp16 fmas, {differ} differ from the correctly rounded "
          f"ones")
    print(f"rounded to f32 first, then to fp16: "
          f"{'some' if twice_wrong else 'none'} wrong ({twice_wrong})")
    return differ == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["make", "check"])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if args.mode == "make":
        make(args.paths[0], args.seed)
        return 0
    return 0 if check(*args.paths) else 1


if __name__ == "__main__":
    sys.exit(main())
