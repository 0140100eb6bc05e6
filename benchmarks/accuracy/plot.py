#!/usr/bin/env python3
"""Plot of run_tinylm.py --json results: average bits per element (metadata
included) vs Δ bits/byte against the fp16 cache.

  plot.py RESULTS.json OUT.png [--title TEXT]
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results")
    parser.add_argument("out")
    parser.add_argument("--title", default="tiny LM, dev.txt: KV-cache bits vs loss")
    args = parser.parse_args()
    with open(args.results) as f:
        rows = [r for r in json.load(f)["rows"] if r["delta"] is not None and r["config"] != "fp16"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series = {}
    for r in rows:
        kind = r["config"].rsplit("-", 1)[0] if r["config"].startswith("cost") else "uniform"
        series.setdefault(kind, []).append(r)
    for kind, points in sorted(series.items()):
        points.sort(key=lambda r: r["bits_per_element"])
        xs = [r["bits_per_element"] for r in points]
        ys = [r["delta"] for r in points]
        if kind == "uniform":
            ax.scatter(xs, ys, color="tab:gray", zorder=3, label="uniform schemes")
            for r in points:
                ax.annotate(r["config"], (r["bits_per_element"], r["delta"]),
                            textcoords="offset points", xytext=(4, 4), fontsize=8)
        else:
            ax.plot(xs, ys, marker="o", label=f"kvc cost model ({kind.split('-', 1)[1]})")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("average bits per K/V element (scales and zeros included)")
    ax.set_ylabel("Δ bits/byte vs fp16 cache")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
