#!/usr/bin/env python3
"""Calibration statistics for kvc-select-bitwidths from SmolLM2-135M on
calibration text held apart from run_smollm2.py's evaluation text
(docs/cost-model.md describes the file; calibrate.py does the same for the
tiny LM).

  calibrate_smollm2.py OUT.safetensors [--windows 2] [--summary S.json] [--rotate-keys]
                       [--sink 4]

Writes post-RoPE Q/K/V of every layer (`layer{L}.q [9,T,64]`, `.k/.v
[3,T,64]`, fp16) on one packed sequence of T = --capture-tokens tokens: the
Jargon File's essays, <|endoftext|>, tiny-lm's calib.txt (half each). It
measures each (layer, side)'s loss sensitivity: the increase of the loss
(bits per token) on --windows windows of 1024 tokens of each calibration
source when only that layer's keys (or values) use the reference encoding
(2-bit; keys per channel, values per token; groups of 32), with its
standard error over windows; a change below the noise is recorded as the
noise. A perturbed run resumes from the base run's input of that layer (the
layers before it are unchanged), which halves the work. With --rotate-keys
(for kvc-compress{rotate-keys}) the queries and keys are written
Hadamard-rotated (the basis the cache stores) and the sensitivities are
measured with keys stored rotated, as calibrate.py --rotate-keys does. With
--sink S the sensitivities are measured with the first S tokens of each
window held apart in fp16 (the harness's sink tokens, tinylm.KVPolicy).
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see run_tinylm.py
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smollm2  # noqa: E402
from calibrate import REFERENCE_ENCODING, rotate_queries_and_keys  # noqa: E402

ENDOFTEXT = 0  # <|endoftext|>


def capture_sequence(model, texts, tokens):
    """Half prose, then <|endoftext|>, then code: one packed sequence."""
    prose = model.encode(texts["jargon-essays"])[:tokens // 2]
    code = model.encode(texts["calib.txt"])[:tokens - len(prose) - 1]
    return np.concatenate([prose, [ENDOFTEXT], code]).astype(np.int64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--windows", type=int, default=2,
                        help="windows of 1024 tokens per calibration source")
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--capture-tokens", type=int, default=1024)
    parser.add_argument("--residual", type=int, default=128)
    parser.add_argument("--score-from", type=int, default=256)
    parser.add_argument("--summary", default=None,
                        help="also write the measured sensitivities as JSON here")
    parser.add_argument("--rotate-keys", action="store_true",
                        help="stats and key sensitivities in kvc-rotate-keys' basis")
    parser.add_argument("--sink", type=int, default=0,
                        help="sensitivities with this many fp16 sink tokens held apart")
    args = parser.parse_args()
    from kvc import safetensors

    model = smollm2.SmolLM2.load()
    texts = smollm2.calib_texts()
    if set(texts) != {"calib.txt", "jargon-essays"}:
        raise SystemExit(f"calibration text missing (have {sorted(texts)}): needs "
                         "../shared/models/tiny-lm/calib.txt and Debian's jargon-text")
    start = time.time()
    capture = {}
    model.hidden_states(capture_sequence(model, texts, args.capture_tokens), capture=capture)
    if args.rotate_keys:
        rotate_queries_and_keys(capture)
    tensors = {name: array.astype(np.float16) for name, array in capture.items()}

    windows = []
    for name in sorted(texts):
        windows += smollm2.windows(model.encode(texts[name]), args.context, args.windows)
    fp16 = smollm2.KVPolicy.uniform(model.num_layers, "fp16", "fp16", args.residual)
    inputs, base = [], []
    for window in windows:
        layer_inputs = []
        nll = model.window_nll(window, fp16, args.score_from, layer_inputs=layer_inputs)
        inputs.append(layer_inputs)
        base.append(nll.mean() / np.log(2.0))
    base = np.array(base)
    print(f"fp16 cache: {base.mean():.4f} bits/token on {len(windows)} windows "
          f"({time.time() - start:.0f} s)", flush=True)

    rotation = "hadamard" if args.rotate_keys else "none"
    metadata = {"kvc.stats.version": "1", "kvc.stats.score_from": str(args.score_from),
                "kvc.stats.source": f"SmolLM2-135M-Instruct (Q4_1 GGUF) on jargon-essays + "
                                    f"calib.txt; dloss in bits/token over {len(windows)} "
                                    f"windows of {args.context} tokens",
                "kvc.calib.base_bits_per_token": f"{base.mean():.6f}",
                "kvc.calib.key_rotation": rotation,
                "kvc.calib.sink_tokens": str(args.sink)}
    summary = {"base_bits_per_token": float(base.mean()), "windows": len(windows),
               "context": args.context, "score_from": args.score_from,
               "key_rotation": rotation, "sink_tokens": args.sink, "layers": []}
    for layer in range(model.num_layers):
        entry = {"layer": layer}
        for side in ("key", "value"):
            layers = [("fp16", "fp16")] * model.num_layers
            enc = REFERENCE_ENCODING[side]
            layers[layer] = (enc, "fp16") if side == "key" else ("fp16", enc)
            policy = smollm2.KVPolicy(layers, args.residual, rotate_keys=args.rotate_keys,
                                      sink=args.sink)
            bits = np.array([
                model.window_nll(window, policy, args.score_from, start_layer=layer,
                                 start_hidden=inputs[w][layer]).mean() / np.log(2.0)
                for w, window in enumerate(windows)])
            diff = bits - base
            measured = diff.mean()
            stderr = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else abs(measured)
            # Below the noise: recorded as the noise (cheap, but not free).
            dloss = max(measured, stderr, 1e-6)
            metadata[f"kvc.calib.layer{layer}.{side}.encoding"] = enc
            metadata[f"kvc.calib.layer{layer}.{side}.dloss"] = f"{dloss:.6g}"
            metadata[f"kvc.calib.layer{layer}.{side}.measured"] = f"{measured:.6g}"
            metadata[f"kvc.calib.layer{layer}.{side}.stderr"] = f"{stderr:.6g}"
            entry[side] = {"encoding": enc, "measured": float(measured),
                           "stderr": float(stderr), "dloss": float(dloss)}
            print(f"layer {layer:2d} {side:5s} {enc}: Δ {measured:+.5f} ± {stderr:.5f} "
                  f"bits/token -> {dloss:.5f}  ({time.time() - start:.0f} s)", flush=True)
        summary["layers"].append(entry)
    safetensors.write(args.out, tensors, metadata)
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=1)
    print(f"wrote {args.out} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
