#!/usr/bin/env python3
"""Inputs for quantize-loops.mlir and the check of its results.

  quantize_check.py make INPUTS.safetensors [--seed S]
  quantize_check.py check INPUTS.safetensors OUTPUTS.safetensors FUNCTION

`make` writes one input per function of quantize-loops.mlir: random values
at a different scale per row, plus the cases the numerics library defines
specially (a constant group, -0.0, values beyond the fp16 range, fp16
subnormals, a NaN and an infinity that poison their groups; for fp8 also
the rows of fp8_rows). `check`
compares the compiled kvc.quantize's codes, scales and zeros with the
numerics library's (kvc.quantize) bit for bit and exits 1 on a difference.
"""

import argparse
import sys

import numpy as np

import kvc
from kvc import safetensors

# function -> (input shape, dtype, encoding spec); quantize-loops.mlir.
FUNCTIONS = {
    "token_q2": ((2, 4, 64), np.float32, "q2:token:g32"),
    "token_q3": ((4, 96), np.float32, "q3:token:g32"),
    "token_q4": ((3, 128), np.float16, "q4:token:g64"),
    "token_q8": ((4, 64), np.float32, "q8:token:g32"),
    "channel_q2": ((64, 8), np.float32, "q2:channel:g32"),
    "channel_q3": ((2, 64, 4), np.float32, "q3:channel:g64"),
    "channel_q4": ((32, 6), np.float32, "q4:channel:g32"),
    "channel_q8": ((64, 3), np.float32, "q8:channel:g64"),
    "fp8_e4m3": ((8, 64), np.float32, "fp8:e4m3"),
    "fp8_e5m2": ((2, 4, 128), np.float32, "fp8:e5m2"),
    "fp8_e4m3_f16": ((6, 64), np.float16, "fp8:e4m3"),
}


def fp8_rows(flat, spec):
    """Rows whose codes land on fp8's special cases: scale exactly 1 (the
    largest value is the format's largest finite), values halfway between
    subnormal and normal codes (ties to even), below a quarter unit, and
    beyond the largest finite (saturation after the fp16 scale rounds
    down); and an all-zero row (scale 0 is stored as the smallest
    subnormal)."""
    e4m3 = spec == "fp8:e4m3"
    top, unit = (448.0, 2.0 ** -9) if e4m3 else (57344.0, 2.0 ** -16)
    step = 2.0 ** -3 if e4m3 else 2.0 ** -2  # mantissa step at 1.0
    row = flat[4 % len(flat)]
    row[:] = 0.37
    row[0] = top
    ties = [0.5, 1.5, 2.5, 0.75, 1.25, 0.2, 3.5]
    row[1:1 + len(ties)] = [t * unit for t in ties]
    row[8:12] = [1 + step / 2, 1 + 3 * step / 2, -(1 + step / 2), 2 - step / 2]
    row[12] = -top
    flat[5 % len(flat), :] = 0.0
    # 449/448 of the top: amax / top rounds down in fp16, so x / scale
    # exceeds the largest finite value and saturates.
    over = flat[6 % len(flat)]
    over[0] = top * 1.0004
    over[1] = -top * 1.0004


def make_input(shape, dtype, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    x *= np.exp(rng.uniform(-6, 6, shape[:-1] + (1,))).astype(np.float32)
    flat = x.reshape(-1, shape[-1])
    flat[0, :] = 0.75                 # a constant row: constant groups
    flat[1, 0::3] = -0.0
    flat[1, 1] = 1.0e6                # beyond fp16: saturates to 65504
    flat[1, 2] = -3.0e38
    flat[3 % len(flat), :] = np.abs(flat[3 % len(flat), :])
    flat[3 % len(flat), 0::4] = -0.0  # the minimum is -0.0: zero is +0
    flat[-1, :] *= 1.0e-6             # fp16 subnormals
    if dtype == np.float32:
        flat[2 % len(flat), 1] = np.nan    # poisons its group
        flat[-2, -1] = np.inf
    with np.errstate(over="ignore"):  # fp16 inputs: +-inf, poisoned too
        return x.astype(dtype)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["make", "check"])
    parser.add_argument("inputs")
    parser.add_argument("outputs", nargs="?")
    parser.add_argument("function", nargs="?")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()

    if args.mode == "make":
        seed = args.seed if args.seed is not None else np.random.SeedSequence().entropy
        rng = np.random.default_rng(seed)
        tensors = {}
        for name, (shape, dtype, spec) in FUNCTIONS.items():
            x = make_input(shape, dtype, rng)
            if spec.startswith("fp8:"):
                x = x.astype(np.float32)
                fp8_rows(x.reshape(-1, shape[-1]), spec)
                with np.errstate(over="ignore"):
                    x = x.astype(dtype)
            tensors[f"x_{name}"] = x
        safetensors.write(args.inputs, tensors)
        print(f"quantize_check: wrote {len(FUNCTIONS)} inputs (seed {seed})")
        return 0

    shape, dtype, spec = FUNCTIONS[args.function]
    inputs, _ = safetensors.read(args.inputs)
    outputs, _ = safetensors.read(args.outputs)
    x = inputs[f"x_{args.function}"].astype(np.float32)
    want = kvc.quantize(x, spec)
    lead = shape[:-2]
    failures = 0
    results = [("codes", outputs["result0"]), ("scales", outputs["result1"])]
    if "zeros" in want:
        results.append(("zeros", outputs["result2"]))
    for name, got in results:
        got_bits = got.view(np.uint8 if name == "codes" else np.uint16)
        want_bits = want[name].view(np.uint8 if name == "codes" else np.uint16)
        got_bits = got_bits.reshape(lead + (-1,))
        if "zeros" not in want:  # fp8: the library's codes keep [T, D]
            want_bits = want_bits.reshape(lead + (-1,))
        if got_bits.shape != want_bits.shape:
            print(f"FAIL {args.function} {name}: shape {got_bits.shape}, "
                  f"the library's {want_bits.shape}")
            failures += 1
            continue
        diff = np.argwhere(got_bits != want_bits)
        if len(diff):
            at = tuple(diff[0])
            print(f"FAIL {args.function} {name}: {len(diff)} of "
                  f"{got_bits.size} differ, first at {at}: "
                  f"{got_bits[at]:#x} vs {want_bits[at]:#x}")
            failures += 1
    groups = want["scales"].size
    poisoned = int(np.isnan(want["scales"]).sum())
    if failures:
        return 1
    if "zeros" in want:
        print(f"{args.function} ({want['encoding']}): {groups} groups "
              f"({poisoned} poisoned), codes, scales and zeros identical to "
              "the numerics library")
        return 0
    codes = want["codes"].reshape(-1)
    e4m3 = "e4m3" in want["encoding"]
    top = 0x7E if e4m3 else 0x7B
    magnitude = codes & 0x7F
    subnormal = int(((magnitude > 0) & (magnitude < (8 if e4m3 else 4))).sum())
    saturated = int((magnitude == top).sum())
    print(f"{args.function} ({want['encoding']}): {groups} tokens "
          f"({poisoned} poisoned), {subnormal} subnormal and {saturated} "
          "largest-finite codes, codes and scales identical to the numerics "
          "library")
    return 0


if __name__ == "__main__":
    sys.exit(main())
