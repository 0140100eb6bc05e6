#!/usr/bin/env python3
"""Calibration statistics for kvc-select-bitwidths from the tiny LM running
on calibration text (docs/cost-model.md describes the file).

  calibrate.py OUT.safetensors [--windows 4] [--text calib.txt] [--rotate-keys]

Writes post-RoPE Q/K/V of every layer on the first window of the text
(`layer{L}.q [Hq,T,D]`, `layer{L}.k/.v [Hkv,T,D]`, fp16), and measures each
layer's loss sensitivity: the increase of bits/byte on `--windows` windows
when only that layer's keys (or values) use the reference encoding
(2-bit, keys per channel and values per token, groups of 32), with its
standard error over windows; a change below the noise is recorded as the
noise. The cost model
turns those into a per-(layer, side) weight of the attention-output error,
so it learns that key noise costs more than value noise where the model
says so. With --rotate-keys (for kvc-compress{rotate-keys}) the queries and
keys are written Hadamard-rotated (the basis the cache stores) and the key
sensitivities are measured with rotated keys.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see run_tinylm.py
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinylm  # noqa: E402
from run_tinylm import MODEL_DIR  # noqa: E402

REFERENCE_ENCODING = {"key": "q2:channel:g32", "value": "q2:token:g32"}


def rotate_queries_and_keys(capture):
    """Puts captured `layer{L}.q/.k` in the basis kvc-rotate-keys stores keys
    in (x·H; scores unchanged), in place; values stay as they are."""
    import kvc
    for name in capture:
        if name.endswith(".q") or name.endswith(".k"):
            capture[name] = kvc.hadamard_rotate(capture[name])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--text", default=os.path.join(MODEL_DIR, "calib.txt"))
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--residual", type=int, default=128)
    parser.add_argument("--score-from", type=int, default=256)
    parser.add_argument("--rotate-keys", action="store_true")
    args = parser.parse_args()
    from kvc import safetensors

    model = tinylm.TinyLM.load(MODEL_DIR)
    with open(args.text, "rb") as f:
        data = f.read()
    tokens = np.frombuffer(data, dtype=np.uint8).astype(np.int64)

    capture = {}
    model.forward(tokens[:1024], None, capture=capture)
    if args.rotate_keys:
        rotate_queries_and_keys(capture)
    tensors = {name: array.astype(np.float16) for name, array in capture.items()}

    def per_window(policy):
        bits = tinylm.window_bits(model, data, policy, score_from=args.score_from,
                                  max_windows=args.windows)
        return np.array([b / n for b, n in bits])

    start = time.time()
    base = per_window(tinylm.KVPolicy.uniform(model.num_layers, "fp16", "fp16", args.residual))
    rotation = "hadamard" if args.rotate_keys else "none"
    metadata = {"kvc.stats.version": "1", "kvc.stats.score_from": str(args.score_from),
                "kvc.stats.source": f"tiny-lm on {os.path.basename(args.text)}, "
                                    f"{args.windows} windows of 1024 bytes",
                "kvc.calib.base_bits_per_byte": f"{base.mean():.6f}",
                "kvc.calib.key_rotation": rotation}
    print(f"fp16 cache: {base.mean():.4f} bits/byte on {args.windows} windows")
    for layer in range(model.num_layers):
        for side in ("key", "value"):
            layers = [("fp16", "fp16")] * model.num_layers
            enc = REFERENCE_ENCODING[side]
            layers[layer] = (enc, "fp16") if side == "key" else ("fp16", enc)
            diff = per_window(tinylm.KVPolicy(layers, args.residual,
                                              rotate_keys=args.rotate_keys)) - base
            measured = diff.mean()
            stderr = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else abs(measured)
            # A loss change below the measurement noise is recorded as the
            # noise: the cost model then keeps that side cheap, but not free.
            dloss = max(measured, stderr, 1e-6)
            metadata[f"kvc.calib.layer{layer}.{side}.encoding"] = enc
            metadata[f"kvc.calib.layer{layer}.{side}.dloss"] = f"{dloss:.6g}"
            metadata[f"kvc.calib.layer{layer}.{side}.measured"] = f"{measured:.6g}"
            metadata[f"kvc.calib.layer{layer}.{side}.stderr"] = f"{stderr:.6g}"
            print(f"layer {layer} {side:5s} {enc}: Δ {measured:+.5f} ± {stderr:.5f} "
                  f"bits/byte -> {dloss:.5f}", flush=True)
    safetensors.write(args.out, tensors, metadata)
    print(f"wrote {args.out} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
