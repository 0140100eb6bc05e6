#!/usr/bin/env python3
"""Cost-model allocations for the accuracy harness.

  select_allocations.py STATS --budgets 2.5,3.0,3.5,4.0 [--granularity layer|head]
                        --out allocations.json

Runs kvc's cost model (the selection kvc-select-bitwidths makes) for the
tiny LM's 6 layers x 2 KV heads x head_dim 64 under each budget, and writes
the chosen encodings in the form run_tinylm.py --allocations reads, with the
cost model's report beside them.
"""
import argparse
import json

import kvc


def allocation(report, num_layers, kv_heads):
    layers = [{"key": [None] * kv_heads, "value": [None] * kv_heads} for _ in range(num_layers)]
    for slot in report["slots"]:
        heads = range(kv_heads) if slot["head"] == "all" else [slot["head"]]
        for h in heads:
            layers[slot["layer"]][slot["side"]][h] = slot["encoding"]
    for layer in layers:
        for side in ("key", "value"):
            if len(set(layer[side])) == 1:
                layer[side] = layer[side][0]
    return layers


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stats", nargs="?", default=None,
                        help="statistics file (calibrate.py); none: analytic proxy")
    parser.add_argument("--budgets", default="2.5,3.0,3.5,4.0")
    parser.add_argument("--granularity", default="layer", choices=["layer", "head"])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--residual", type=int, default=128)
    parser.add_argument("--page-tokens", type=int, default=128,
                        help="runtime page size the encodings must fit (channel-axis "
                             "groups divide it); the runtime allows 128-token pages")
    parser.add_argument("--prune", action="store_true",
                        help="also consider key channel pruning")
    parser.add_argument("--prefix", default="cost")
    parser.add_argument("--rotate-keys", action="store_true",
                        help="the stats are rotated (calibrate.py --rotate-keys) and "
                             "the allocations store keys rotated")
    parser.add_argument("--context", type=int, default=0,
                        help="with --evict-fractions: the context length token budgets "
                             "are planned for (0: no eviction candidates)")
    parser.add_argument("--evict-fractions", default="",
                        help="token budgets as fractions of --context (H2O), e.g. "
                             "1,0.75,0.5")
    parser.add_argument("--sink", type=int, default=0,
                        help="the allocations keep this many sink tokens in fp16 "
                             "(tinylm.KVPolicy.sink; calibrate_smollm2.py --sink stats)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = {}
    evict = {}
    if args.evict_fractions:
        evict = {"context": args.context,
                 "evict_fractions": [float(f) for f in args.evict_fractions.split(",")]}
    for budget in [float(b) for b in args.budgets.split(",")]:
        report = kvc.select_bitwidths(args.layers, args.kv_heads, args.head_dim, budget,
                                      stats=args.stats, granularity=args.granularity,
                                      residual=args.residual,
                                      page_tokens=args.page_tokens, prune=args.prune,
                                      **evict)
        name = f"{args.prefix}-{args.granularity}-{budget:g}"
        result[name] = {"budget": budget, "residual": args.residual,
                        "rotate_keys": args.rotate_keys, "sink": args.sink,
                        "layers": allocation(report, args.layers, args.kv_heads),
                        "report": report}
        print(f"{name}: {report['average_bits']:.3f} bits/elem, predicted loss "
              f"{report['predicted_loss']:.5f} ({report['model']})")
        evictions = {e["layer"]: e["evict"] for e in report.get("evictions", [])}
        for layer, entry in enumerate(result[name]["layers"]):
            if layer in evictions:
                entry["evict"] = evictions[layer]
            print(f"  layer {layer}: key {entry['key']}, value {entry['value']}"
                  + (f", evict {evictions[layer]}" if layer in evictions else ""))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
