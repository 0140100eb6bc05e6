#!/usr/bin/env python3
"""Does the cost model's error proxy rank configurations the way the loss
does? Compares, over the configurations of a run_tinylm.py --json result,
the measured Δ bits/byte with two predictions computed by kvc's cost model
on a statistics file:
  - plain: the sum over layers of the attention-output error E (what
    attention error alone says; the model "attention-error");
  - calibrated: the sum of alpha * E, alpha = measured Δloss / E of the
    calibration encoding per (layer, side) (the model "calibrated").
Prints both and their Spearman rank correlation with the measurement.

  agreement.py RESULTS.json STATS.safetensors [--allocations A.json] [--md out.md]
"""
import argparse
import json
import os
import sys

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_tinylm import UNIFORM  # noqa: E402

import kvc  # noqa: E402
from kvc import safetensors  # noqa: E402


def side_encodings(config, allocations, num_layers, kv_heads):
    """[(layer, side, [enc per head])]."""
    if config in UNIFORM:
        key, value = UNIFORM[config]
        layers = [(key, value)] * num_layers
    else:
        layers = [(l["key"], l["value"]) for l in allocations[config]["layers"]]
    out = []
    for layer, (key, value) in enumerate(layers):
        for side, enc in (("key", key), ("value", value)):
            heads = enc if isinstance(enc, list) else [enc] * kv_heads
            out.append((layer, side, heads))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results")
    parser.add_argument("stats")
    parser.add_argument("--allocations", default=None)
    parser.add_argument("--md", default=None, help="also write the table here")
    args = parser.parse_args()
    with open(args.results) as f:
        rows = json.load(f)["rows"]
    allocations = {}
    if args.allocations:
        with open(args.allocations) as f:
            allocations = json.load(f)
    _, meta = safetensors.read(args.stats, names=set())
    num_layers = 1 + max(int(k.split(".")[2][len("layer"):]) for k in meta
                         if k.startswith("kvc.calib.layer"))
    kv_heads = 2
    cache = {}

    def errors(layer, side, enc):
        key = (layer, side, enc)
        if key not in cache:
            e = kvc.candidate_errors(args.stats, layer, side, [enc])[0]
            cache[key] = e["head_errors"]
        return cache[key]

    alpha = {}
    for layer in range(num_layers):
        for side in ("key", "value"):
            ref = meta[f"kvc.calib.layer{layer}.{side}.encoding"]
            dloss = float(meta[f"kvc.calib.layer{layer}.{side}.dloss"])
            alpha[(layer, side)] = dloss / np.mean(errors(layer, side, ref))

    table = []
    for row in rows:
        if row["config"] == "fp16" or row["delta"] is None:
            continue
        plain = calibrated = 0.0
        for layer, side, heads in side_encodings(row["config"], allocations, num_layers, kv_heads):
            e = np.mean([errors(layer, side, enc)[h] for h, enc in enumerate(heads)])
            plain += e
            calibrated += alpha[(layer, side)] * e
        table.append((row["config"], row["bits_per_element"], row["delta"], plain, calibrated))
    measured = [t[2] for t in table]
    rho_plain = spearmanr(measured, [t[3] for t in table]).statistic
    rho_cal = spearmanr(measured, [t[4] for t in table]).statistic
    lines = ["| config | bits/elem | measured Δ bits/byte | plain ΣE | calibrated Σ αE |",
             "|---|---|---|---|---|"]
    for name, bits, delta, plain, cal in table:
        lines.append(f"| {name} | {bits:.2f} | {delta:+.4f} | {plain:.4f} | {cal:+.4f} |")
    lines.append("")
    lines.append(f"Spearman rank correlation with the measured Δ over {len(table)} "
                 f"configurations: plain ΣE {rho_plain:.3f}, calibrated ΣαE {rho_cal:.3f}")
    text = "\n".join(lines)
    print(text)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
