#!/usr/bin/env python3
"""Accuracy harness: bits/byte of the tiny LM on dev.txt under kvc's
compressed-KV semantics (teacher forcing, context 1024, positions >= 256
scored, fp16 residual window R = 128; see tinylm.py).

  run_tinylm.py [--configs fp16,kivi2,...] [--max-windows N] [--json out.json]
                [--allocations allocations.json] [--plot out.png]

Prints a table last. The uniform schemes are named here; cost-model
allocations come from --allocations (written by calibrate.py + select.py).
"""
import argparse
import json
import multiprocessing
import os
import sys
import time

# One BLAS thread per process: the matrices are small, and spinning BLAS
# threads on a loaded 2-core machine cost 3x. Run configurations in
# parallel processes instead (--jobs).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinylm  # noqa: E402

SHARED = os.environ.get("KVC_SHARED_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
MODEL_DIR = os.path.join(SHARED, "models", "tiny-lm")

# name -> (key, value); None means the fp16 cache.
UNIFORM = {
    "fp16": None,
    "kivi2": ("q2:channel:g32", "q2:token:g32"),
    "kivi4": ("q4:channel:g32", "q4:token:g32"),
    "k2v2-token": ("q2:token:g32", "q2:token:g32"),
    "k4v2": ("q4:channel:g32", "q2:token:g32"),
    "k2v4": ("q2:channel:g32", "q4:token:g32"),
}
# Uniform schemes with keys stored Hadamard-rotated (kvc-rotate-keys).
ROTATED = {"kivi2-rot": "kivi2", "k4v2-rot": "k4v2", "k2v4-rot": "k2v4"}

# ../shared/models/README.md's reference figures (dev.txt bits/byte).
REFERENCE = {"fp16": 0.8941, "kivi2": 0.9203, "kivi4": 0.8950, "k2v2-token": 0.9392}


def average_bits(policy, model, context=None):
    """Average stored bits per K/V element over layers and heads, metadata
    included, residual window excluded. With `context`, the policy's fp16
    sink tokens are charged as that share of a `context`-token cache."""
    import kvc
    if policy is None:
        return 16.0
    total, count = 0.0, 0
    for key, value in policy.layers:
        for side in (key, value):
            heads = side if isinstance(side, (list, tuple)) else [side] * model.num_kv_heads
            for enc in heads:
                total += kvc.bits_per_element(enc, model.head_dim)
                count += 1
    bits = total / count
    if context and policy.sink:
        bits += policy.sink * (16.0 - bits) / context
    return bits


def policy_for(name, model, allocations):
    if name in ROTATED:
        return tinylm.KVPolicy.uniform(model.num_layers, *UNIFORM[ROTATED[name]],
                                       residual=128, name=name, rotate_keys=True)
    if name in UNIFORM:
        sides = UNIFORM[name]
        if sides is None:
            return None
        return tinylm.KVPolicy.uniform(model.num_layers, *sides, residual=128, name=name)
    if name in allocations:
        entry = allocations[name]
        layers = [(l["key"], l["value"]) for l in entry["layers"]]
        return tinylm.KVPolicy(layers, residual=entry.get("residual", 128), name=name,
                               rotate_keys=entry.get("rotate_keys", False),
                               sink=entry.get("sink", 0))
    raise SystemExit(f"unknown config '{name}' (uniform: "
                     f"{', '.join(list(UNIFORM) + list(ROTATED))}; "
                     f"allocations: {', '.join(allocations) or 'none'})")


_MODEL = None


def _evaluate(work):
    """bits/byte of one configuration (in a worker process)."""
    global _MODEL
    name, text, allocations, max_windows = work
    if _MODEL is None:
        _MODEL = tinylm.TinyLM.load(MODEL_DIR)
    with open(text, "rb") as f:
        data = f.read()
    policy = policy_for(name, _MODEL, allocations)
    start = time.time()
    bpb = tinylm.bits_per_byte(_MODEL, data, policy, max_windows=max_windows)
    row = {"config": name, "bits_per_element": average_bits(policy, _MODEL),
           "bits_per_byte": bpb, "seconds": time.time() - start}
    print(f"{name}: {bpb:.4f} bits/byte ({row['seconds']:.0f} s)", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default=",".join(UNIFORM))
    parser.add_argument("--max-windows", type=int, default=None,
                        help="evaluate only the first N windows of 1024 bytes")
    parser.add_argument("--allocations", default=None,
                        help="JSON of cost-model allocations (select.py)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--text", default=os.path.join(MODEL_DIR, "dev.txt"))
    parser.add_argument("--jobs", type=int, default=1,
                        help="configurations evaluated in parallel processes")
    args = parser.parse_args()

    allocations = {}
    if args.allocations:
        with open(args.allocations) as f:
            allocations = json.load(f)
    names = [n for n in args.configs.split(",") if n]
    if "all" in names:
        names = [n for n in names if n != "all"] + list(allocations)
    model = tinylm.TinyLM.load(MODEL_DIR)
    for name in names:  # unknown names fail before any work
        policy_for(name, model, allocations)
    work = [(name, args.text, allocations, args.max_windows) for name in names]
    if args.jobs > 1:
        with multiprocessing.Pool(min(args.jobs, len(work))) as pool:
            rows = pool.map(_evaluate, work, chunksize=1)
    else:
        rows = [_evaluate(w) for w in work]
    base = next((r["bits_per_byte"] for r in rows if r["config"] == "fp16"), None)
    for r in rows:
        r["delta"] = None if base is None else r["bits_per_byte"] - base
        ref = REFERENCE.get(r["config"]) if args.max_windows is None else None
        r["reference"] = ref
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"windows": args.max_windows, "rows": rows}, f, indent=1)
    print()
    print("| config | avg bits/elem | bits/byte | Δ vs fp16 | reference |")
    print("|---|---|---|---|---|")
    for r in rows:
        delta = "" if r["delta"] is None else f"{r['delta']:+.4f}"
        ref = "" if r["reference"] is None else f"{r['reference']:.4f} ({r['bits_per_byte'] - r['reference']:+.4f})"
        print(f"| {r['config']} | {r['bits_per_element']:.2f} | {r['bits_per_byte']:.4f} | {delta} | {ref} |")


if __name__ == "__main__":
    main()
