#!/usr/bin/env python3
"""Checks which dot precision produced jax_llama_decode_step.ref.npz.

  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/stablehlo/tf32_reference_check.py \
      [--module M.stablehlo.mlir] [--reference R.npz] [--dump DIR]

(defaults: ../shared/models/stablehlo/jax_llama_decode_step.*; ~30 s, one core.)

XLA on the CPU runs the pretty-form module (as
test/Frontend/StableHLO/Inputs/run_stablehlo_cpu.py does) once per variant; a
variant rewrites the module's text so that the stablehlo.dot_general ops see
their f32 operands rounded the way a GPU's DEFAULT precision would, with f32
accumulation. Prints the max abs error of each result against the reference,
and of the new K/V cache rows (position `pos`) of each layer on their own:
layer 0's rows depend only on the embedding, an RMSNorm, one projection dot
and RoPE, so they isolate the projection dots' precision.

Variants:
  f32            the module as shipped (precision = DEFAULT is f32 on the CPU)
  f32-highest    precision = HIGHEST: the same on the CPU
  f64            everything in f64: how much f32 rounding alone moves results
  tf32-rne       every dot's operands rounded to 10 mantissa bits, ties to even
  tf32-rna       ... ties away from zero (PTX cvt.rna.tf32.f32)
  tf32-trunc     ... low 13 bits cleared (raw f32 bits fed to tensor cores)
  tf32-rne-proj  tf32-rne on the weight projections only; the two attention
                 dots (batching_dims, one side a vector per batch) stay f32
  tf32-rna-proj  the same with ties away
  +exp-1e-6      tf32-rne-proj with each exp element scaled by 1 +- 2^-20: how
                 far a 1e-6 difference in one elementwise function moves results
  bf16           operands rounded to bf16 (one pass; TPU DEFAULT)
  bf16x3         hi*lo + lo*hi + hi*hi with bf16 parts (BF16_BF16_F32_X3)
  tf32x3         the same split with tf32 parts (TF32_TF32_F32_X3)

Findings (JAX 0.10.2 CPU here; the reference came from JAX 0.11 on a GPU):
layer 0's new K/V rows match tf32-rne(-proj) to 8e-7, against 3e-4 for f32,
9e-4 for truncation and 2e-3 for bf16: the projections ran as TF32 rounded
to nearest. The attention dots were not TF32 (rounding them makes layer 1
worse). What remains (2-3e-4 in layer 1 and the logits) is not a dot
setting: a TF32 operand turns a few-ulp difference in any elementwise op
before a dot (the GPU's exp, rsqrt, divide) into a flipped 11-bit rounding,
~1e-4 absolute; the last line shows a 1e-6 exp perturbation alone moving
results by 2-4e-4. So no CPU emulation reaches 1e-4 on all results.
"""
import argparse
import os
import re
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.extend.backend  # noqa: E402
import numpy as np  # noqa: E402
from jax._src.lib import xla_client  # noqa: E402

# Lets device_put keep the f64 variant's inputs in f64; f32 stays f32.
jax.config.update("jax_enable_x64", True)

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "..", "shared", "models", "stablehlo")

# `%r = stablehlo.dot_general %a, %b, <attrs> : (TA, TB) -> TC`
DOT = re.compile(r"^(?P<indent>\s*)(?P<res>%\w+) = stablehlo\.dot_general "
                 r"(?P<lhs>%\w+), (?P<rhs>%\w+), (?P<attrs>.*) : "
                 r"\((?P<lty>tensor<[^>]*>), (?P<rty>tensor<[^>]*>)\) -> "
                 r"(?P<oty>tensor<[^>]*>)$")

# Bits of the f32 mantissa a format drops: tf32 keeps 10, bf16 keeps 7.
DROPPED_BITS = {"tf32": 13, "bf16": 16}


def as_int_type(f32_type):
    return f32_type.replace("xf32>", "xui32>").replace("<f32>", "<ui32>")


def rounding_function(name, f32_type, dropped, mode):
    """A private func rounding each f32 to (23 - dropped) mantissa bits."""
    int_type = as_int_type(f32_type)
    half = 1 << (dropped - 1)
    mask = (0xFFFFFFFF << dropped) & 0xFFFFFFFF
    lines = [f"  func.func private @{name}(%x: {f32_type}) -> {f32_type} {{",
             f"    %bits = stablehlo.bitcast_convert %x : ({f32_type}) -> {int_type}"]
    if mode == "rne":
        # bias = half - 1 + (lowest kept bit): ties go to the even neighbour.
        lines += [
            f"    %shift = stablehlo.constant dense<{dropped}> : {int_type}",
            f"    %one = stablehlo.constant dense<1> : {int_type}",
            f"    %kept = stablehlo.shift_right_logical %bits, %shift : {int_type}",
            f"    %lsb = stablehlo.and %kept, %one : {int_type}",
            f"    %half = stablehlo.constant dense<{half - 1}> : {int_type}",
            f"    %bias = stablehlo.add %half, %lsb : {int_type}",
            f"    %biased = stablehlo.add %bits, %bias : {int_type}"]
    elif mode == "rna":
        lines += [
            f"    %bias = stablehlo.constant dense<{half}> : {int_type}",
            f"    %biased = stablehlo.add %bits, %bias : {int_type}"]
    elif mode == "trunc":
        lines += [f"    %zero = stablehlo.constant dense<0> : {int_type}",
                  f"    %biased = stablehlo.add %bits, %zero : {int_type}"]
    else:
        raise ValueError(f"unknown rounding mode {mode}")
    lines += [
        f"    %mask = stablehlo.constant dense<{mask}> : {int_type}",
        f"    %rounded = stablehlo.and %biased, %mask : {int_type}",
        f"    %y = stablehlo.bitcast_convert %rounded : ({int_type}) -> {f32_type}",
        f"    return %y : {f32_type}",
        "  }"]
    return "\n".join(lines)


class DotRewriter:
    """Rewrites every dot_general of a module into `passes` rounded products."""

    def __init__(self, fmt, mode, passes, batched=True):
        self.dropped = DROPPED_BITS[fmt]
        self.fmt, self.mode, self.passes = fmt, mode, passes
        # batched=False leaves the attention dots (batching_dims) in f32.
        self.batched = batched
        self.functions = {}
        self.counter = 0

    def round_fn(self, f32_type):
        key = re.sub(r"\W", "_", f32_type)
        name = f"round_{self.fmt}_{self.mode}_{key}"
        if name not in self.functions:
            self.functions[name] = rounding_function(name, f32_type,
                                                     self.dropped, self.mode)
        return name

    def split(self, indent, value, f32_type, out):
        """Emits hi = R(v), lo = R(v - hi); returns their names."""
        fn = self.round_fn(f32_type)
        tag = f"%dot{self.counter}_{value[1:]}"
        out.append(f"{indent}{tag}_hi = call @{fn}({value}) : "
                   f"({f32_type}) -> {f32_type}")
        if self.passes == 1:
            return f"{tag}_hi", None
        out.append(f"{indent}{tag}_rest = stablehlo.subtract {value}, "
                   f"{tag}_hi : {f32_type}")
        out.append(f"{indent}{tag}_lo = call @{fn}({tag}_rest) : "
                   f"({f32_type}) -> {f32_type}")
        return f"{tag}_hi", f"{tag}_lo"

    def rewrite_line(self, match):
        g = match.groupdict()
        out = []
        self.counter += 1
        a_hi, a_lo = self.split(g["indent"], g["lhs"], g["lty"], out)
        b_hi, b_lo = self.split(g["indent"], g["rhs"], g["rty"], out)

        def dot(result, lhs, rhs):
            out.append(f"{g['indent']}{result} = stablehlo.dot_general {lhs}, "
                       f"{rhs}, {g['attrs']} : ({g['lty']}, {g['rty']}) -> "
                       f"{g['oty']}")

        if self.passes == 1:
            dot(g["res"], a_hi, b_hi)
            return out
        # XLA's X3 algorithms add the two small cross terms first.
        tag = f"%dot{self.counter}"
        dot(f"{tag}_hl", a_hi, b_lo)
        dot(f"{tag}_lh", a_lo, b_hi)
        dot(f"{tag}_hh", a_hi, b_hi)
        out.append(f"{g['indent']}{tag}_cross = stablehlo.add {tag}_hl, "
                   f"{tag}_lh : {g['oty']}")
        out.append(f"{g['indent']}{g['res']} = stablehlo.add {tag}_cross, "
                   f"{tag}_hh : {g['oty']}")
        return out

    def __call__(self, text):
        self.functions, self.counter = {}, 0
        lines, dots = [], 0
        for line in text.splitlines():
            match = DOT.match(line)
            if match and (self.batched or "batching_dims" not in line):
                lines.extend(self.rewrite_line(match))
                dots += 1
            elif match:
                lines.append(line)
                dots += 1
            else:
                lines.append(line)
        if dots != text.count("stablehlo.dot_general"):
            raise SystemExit("error: some dot_general lines did not parse")
        closing = max(i for i, line in enumerate(lines) if line.strip() == "}")
        lines[closing:closing] = list(self.functions.values())
        return "\n".join(lines) + "\n"


def highest_precision(text):
    return text.replace("precision = [DEFAULT, DEFAULT]",
                        "precision = [HIGHEST, HIGHEST]")


EXP = re.compile(r"^(?P<indent>\s*)(?P<res>%\w+) = stablehlo\.exponential "
                 r"(?P<arg>%\w+) : (?P<ty>tensor<[^>]*>)$")


def perturb_exp(text, seed=0):
    """Scales each element of every exp by 1 + 2^-20 or 1 - 2^-20 (a random
    sign per element, ~8 ulp): the size of a GPU's exp differing from XLA
    CPU's. (One scale for all would cancel in the softmax.)"""
    rng = np.random.default_rng(seed)
    out = []
    for line in text.splitlines():
        match = EXP.match(line)
        if not match:
            out.append(line)
            continue
        g = match.groupdict()
        shape = [int(d) for d in
                 re.match(r"tensor<((?:\d+x)*)f32>", g["ty"]).group(1)
                 .split("x")[:-1]]
        scale = 1 + 2.0**-20 * rng.choice([-1.0, 1.0], shape)
        literal = np.array2string(scale.astype(np.float32), separator=", ",
                                  threshold=sys.maxsize, floatmode="unique",
                                  max_line_width=sys.maxsize)
        literal = literal.replace("\n", "")
        tag = f"%exp_{g['res'][1:]}"  # `%7_x` would not parse
        out += [f"{g['indent']}{tag}_exact = stablehlo.exponential "
                f"{g['arg']} : {g['ty']}",
                f"{g['indent']}{tag}_scale = stablehlo.constant "
                f"dense<{literal}> : {g['ty']}",
                f"{g['indent']}{g['res']} = stablehlo.multiply "
                f"{tag}_exact, {tag}_scale : {g['ty']}"]
    return "\n".join(out) + "\n"


def to_f64(text):
    # Hex float literals are bit patterns: -inf must be respelled for f64.
    text = text.replace("0xFF800000", "0xFFF0000000000000")
    text = text.replace("0x7F800000", "0x7FF0000000000000")
    return re.sub(r"\bf32\b", "f64", text).replace("xf32>", "xf64>")


VARIANTS = [
    ("f32", lambda t: t, False),
    ("f32-highest", highest_precision, False),
    ("f64", to_f64, True),
    ("tf32-rne", DotRewriter("tf32", "rne", 1), False),
    ("tf32-rna", DotRewriter("tf32", "rna", 1), False),
    ("tf32-trunc", DotRewriter("tf32", "trunc", 1), False),
    ("tf32-rne-proj", DotRewriter("tf32", "rne", 1, batched=False), False),
    ("tf32-rna-proj", DotRewriter("tf32", "rna", 1, batched=False), False),
    ("+exp-1e-6", lambda t: perturb_exp(
        DotRewriter("tf32", "rne", 1, batched=False)(t)), False),
    ("bf16", DotRewriter("bf16", "rne", 1), False),
    ("bf16x3", DotRewriter("bf16", "rne", 3), False),
    ("tf32x3", DotRewriter("tf32", "rne", 3), False),
]


def run(text, args):
    backend = jax.extend.backend.get_backend("cpu")
    device = backend.devices()[0]
    executable = backend.compile_and_load(text, backend.devices()[:1],
                                          xla_client.CompileOptions())
    results = executable.execute([jax.device_put(a, device) for a in args])
    return [np.asarray(r) for r in results]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--module", default=os.path.join(
        MODELS, "jax_llama_decode_step.stablehlo.mlir"))
    parser.add_argument("--reference", default=os.path.join(
        MODELS, "jax_llama_decode_step.ref.npz"))
    parser.add_argument("--dump", metavar="DIR",
                        help="also write each variant's module here")
    options = parser.parse_args()

    text = open(options.module, encoding="utf-8").read()
    ref = np.load(options.reference)
    count = sum(1 for key in ref.files if key.startswith("arg"))
    args = [ref[f"arg{i}"] for i in range(count)]
    expected = [ref[f"result{i}"] for i in range(3)]

    pos = int(ref["arg22"]) if "arg22" in ref.files else None
    print("max |ref|: " + "  ".join(
        f"result{i} {np.abs(e).max():.4g}" for i, e in enumerate(expected)))
    columns = ["result0", "result1", "result2"]
    if pos is not None:
        columns += ["L0 K/V row", "L1 K/V row"]
    print(f"{'variant':<14}" + "".join(f"{c:>11}" for c in columns))
    outputs = {}
    for name, transform, wide in VARIANTS:
        variant = transform(text)
        if options.dump:
            os.makedirs(options.dump, exist_ok=True)
            with open(os.path.join(options.dump, f"{name}.mlir"), "w",
                      encoding="utf-8") as f:
                f.write(variant)
        inputs = [a.astype(np.float64) if wide and a.dtype == np.float32
                  else a for a in args]
        outputs[name] = [r.astype(np.float64) for r in run(variant, inputs)]
        diffs = [np.abs(r - e.astype(np.float64))
                 for r, e in zip(outputs[name], expected)]
        errors = [d.max() for d in diffs]
        if pos is not None:
            # Caches are [layer, batch, kv_head, position, head_dim].
            errors += [max(diffs[1][layer, :, :, pos].max(),
                           diffs[2][layer, :, :, pos].max())
                       for layer in (0, 1)]
        print(f"{name:<14}" + "".join(f"{e:>11.2e}" for e in errors))
    moved = [np.abs(a - b).max() for a, b in
             zip(outputs["+exp-1e-6"], outputs["tf32-rne-proj"])]
    print("max |(+exp-1e-6) - (tf32-rne-proj)|: " + "  ".join(
        f"result{i} {m:.2e}" for i, m in enumerate(moved)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
