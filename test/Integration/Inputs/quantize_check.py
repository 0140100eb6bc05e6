#!/usr/bin/env python3
"""Inputs for quantize-loops.mlir and the check of its results.

  quantize_check.py make INPUTS.safetensors [--seed S]
  quantize_check.py check INPUTS.safetensors OUTPUTS.safetensors FUNCTION

`make` writes one input per function of quantize-loops.mlir: random values
at a different scale per row, plus the cases the numerics library defines
specially (a constant group, -0.0, values beyond the fp16 range, fp16
subnormals, a NaN and an infinity that poison their groups). `check`
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
}


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
        safetensors.write(args.inputs, {
            f"x_{name}": make_input(shape, dtype, rng)
            for name, (shape, dtype, _) in FUNCTIONS.items()})
        print(f"quantize_check: wrote {len(FUNCTIONS)} inputs (seed {seed})")
        return 0

    shape, dtype, spec = FUNCTIONS[args.function]
    inputs, _ = safetensors.read(args.inputs)
    outputs, _ = safetensors.read(args.outputs)
    x = inputs[f"x_{args.function}"].astype(np.float32)
    want = kvc.quantize(x, spec)
    lead = shape[:-2]
    failures = 0
    for name, got in (("codes", outputs["result0"]),
                      ("scales", outputs["result1"]),
                      ("zeros", outputs["result2"])):
        got_bits = got.view(np.uint8 if name == "codes" else np.uint16)
        want_bits = want[name].view(np.uint8 if name == "codes" else np.uint16)
        got_bits = got_bits.reshape(lead + (-1,))
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
    print(f"{args.function} ({want['encoding']}): {groups} groups "
          f"({poisoned} poisoned), codes, scales and zeros identical to the "
          "numerics library")
    return 0


if __name__ == "__main__":
    sys.exit(main())
