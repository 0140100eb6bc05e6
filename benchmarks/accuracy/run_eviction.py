#!/usr/bin/env python3
"""Eviction quality study: bits/byte of the tiny LM on dev.txt at equal KV
memory for quantization only, eviction only (streaming, H2O), both, two-tier
caches and a cost-model report's choice (semantics: eviction.py).

  run_eviction.py [--configs a,b,...] [--max-windows N] [--report REPORT.json]
                  [--json out.json] [--plot out.png]
  run_eviction.py --model smollm2 [--max-windows 4] ...
  run_eviction.py --from-json out.json [--plot out.png]

--model smollm2 runs SmolLM2-135M-Instruct (smollm2.py) on --max-windows
windows of 1024 tokens of each of run_smollm2.py's evaluation texts and
reports bits per token and perplexity instead of bits/byte.

Memory is the average stored bits per K/V element over the scored steps
(residual-window tokens at 16 bits, see eviction.py), so it is not
run_tinylm.py's figure (which leaves the residual window out). Prints a
markdown table last.
"""
import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402,F401

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eviction  # noqa: E402
import tinylm  # noqa: E402
from run_tinylm import MODEL_DIR, REFERENCE, UNIFORM  # noqa: E402

CONTEXT, SCORE_FROM = 1024, 256
SMOLLM2_WINDOWS = 4  # per evaluation text, when --max-windows is not given
TOKEN2 = "q2:token:g32"


def _streaming(budget):
    return f"streaming:sink=4:window={budget - 4}"


def _h2o(budget):  # H2O's split: half heavy hitters, half recent tokens
    return f"h2o:sink=4:window={budget // 2}:budget={budget}"


# name -> (series, main (key, value) or None for fp16, evict spec, demoted
# (key, value) or None to drop).
CONFIGS = {
    "fp16": ("quantization", None, None, None),
    "kivi2": ("quantization", UNIFORM["kivi2"], None, None),
    "k4v2": ("quantization", UNIFORM["k4v2"], None, None),
    "kivi4": ("quantization", UNIFORM["kivi4"], None, None),
    **{f"stream{b}": ("streaming", None, _streaming(b), None) for b in (64, 128, 256, 512)},
    **{f"h2o{b}": ("h2o", None, _h2o(b), None) for b in (128, 256, 512)},
    "stream512+k4v2": ("both", UNIFORM["k4v2"], _streaming(512), None),
    "h2o512+k4v2": ("both", UNIFORM["k4v2"], _h2o(512), None),
    "h2o512+kivi4": ("both", UNIFORM["kivi4"], _h2o(512), None),
    "stream256+kivi4": ("both", UNIFORM["kivi4"], _streaming(256), None),
    "h2o256+kivi4": ("both", UNIFORM["kivi4"], _h2o(256), None),
    "stream128/fp16>k4v2tok": ("two-tier", None, _streaming(128), ("q4:token:g32", TOKEN2)),
    "stream256/k4v2>q2tok": ("two-tier", UNIFORM["k4v2"], _streaming(256), (TOKEN2, TOKEN2)),
    "h2o256/kivi4>q2tok": ("two-tier", UNIFORM["kivi4"], _h2o(256), (TOKEN2, TOKEN2)),
}

# A hand-written report in the form kvc.select_bitwidths(..., context=...)
# writes ("evict" on the slots and per-layer "evictions";
# eviction.config_from_report reads it), for the tests: 4-bit keys and 2-bit
# values everywhere, the first two layers unevicted, the others H2O with
# half the context. Real cost-model rows come from --report.
HAND_H2O = "h2o:sink=4:window=128:budget=512"
HAND_WRITTEN_REPORT = {
    "note": "hand-written stand-in for a cost-model report with token budgets",
    "context": CONTEXT,
    "slots": [{"layer": l, "side": side, "head": "all", "encoding": enc,
               "evict": None if l < 2 else HAND_H2O, "keep_fraction": 1.0 if l < 2 else 0.5}
              for l in range(6)
              for side, enc in (("key", "q4:channel:g32"), ("value", TOKEN2))],
    "evictions": [{"layer": l, "evict": None if l < 2 else HAND_H2O,
                   "keep_fraction": 1.0 if l < 2 else 0.5} for l in range(6)],
}


def build_config(name, model, report, report_config="cost-model"):
    if name == report_config:
        return "cost model", eviction.config_from_report(
            name, report, model.num_layers, model.num_kv_heads)
    if name not in CONFIGS:
        raise SystemExit(f"unknown config '{name}' (known: {', '.join(CONFIGS)}, cost-model)")
    series, sides, evict, demote = CONFIGS[name]
    return series, eviction.Config.uniform(name, model.num_layers, sides, evict, demote)


def _budgets(config):  # every layer's, and every KV head's if per head
    return sorted({b for e in config.evictions if e is not None
                   for b in (e.head_budgets or [e.budget])})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma-separated rows; 'cost-model' runs --report")
    parser.add_argument("--max-windows", type=int, default=None,
                        help="evaluate only the first N windows of 1024 bytes")
    parser.add_argument("--report", default=None,
                        help="cost-model report JSON (eviction.config_from_report), "
                             "FILE or FILE#NAME for one entry of a file of named "
                             "reports (select_allocations.py --context ...)")
    parser.add_argument("--report-config", default="cost-model",
                        help="the name of the --report row")
    parser.add_argument("--merge-into", default=None,
                        help="add the rows to (or replace them in) these earlier "
                             "results, run with the same --max-windows")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--plot", default=None, help="write the plot here (PNG)")
    parser.add_argument("--text", default=os.path.join(MODEL_DIR, "dev.txt"))
    parser.add_argument("--model", default="tinylm", choices=["tinylm", "smollm2"])
    parser.add_argument("--from-json", default=None,
                        help="only print the table (and --plot) of earlier results")
    args = parser.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            rows = json.load(f)["rows"]
        if args.plot:
            plot(rows, args.plot)
        print(table(rows))
        return

    report = None
    if "cost-model" in args.configs.split(",") and not args.report:
        raise SystemExit("the cost-model row needs --report (a report of "
                         "select_allocations.py --context ... --evict-fractions ...)")
    if args.report:
        path, _, entry = args.report.partition("#")
        with open(path) as f:
            report = json.load(f)
        if entry:
            if entry not in report:
                raise SystemExit(f"no report '{entry}' in {path} (has: {', '.join(report)})")
            report = report[entry]
    model, windows, text = study_inputs(args)
    names = [args.report_config if n == "cost-model" else n
             for n in args.configs.split(",") if n]
    configs = [(n, *build_config(n, model, report, args.report_config))
               for n in names]  # fail early
    earlier = []
    if args.merge_into:
        with open(args.merge_into) as f:
            merged = json.load(f)
        if merged.get("max_windows") != args.max_windows:
            raise SystemExit(f"{args.merge_into} was run with --max-windows "
                             f"{merged.get('max_windows')}, not {args.max_windows}")
        earlier = [r for r in merged["rows"] if r["config"] not in names]
        args.json = args.json or args.merge_into
    meta = {"model": args.model, "text": text, "context": CONTEXT, "score_from": SCORE_FROM,
            "max_windows": args.max_windows, "machine": f"{platform.machine()}, "
            f"{platform.processor() or platform.node()}, 1 BLAS thread",
            "report": args.report}
    if args.merge_into:
        meta = {k: v for k, v in merged.items() if k != "rows"}
    rows = list(earlier)
    for name, series, config in configs:
        start = time.time()
        row = eviction.evaluate_windows(model, windows, config, SCORE_FROM)
        if args.model == "tinylm":  # its tokens are bytes
            row["bits_per_byte"] = row.pop("bits_per_token")
            row["scored_bytes"] = row.pop("scored_tokens")
        enc, ev, dem = config.describe()
        budgets = _budgets(config)
        row.update(config=name, series=series, encoding=enc, evict=ev, demote=dem,
                   budgets=budgets, seconds=time.time() - start,
                   long_context=bool(budgets) and max(budgets) <= CONTEXT // 2)
        if name == args.report_config:
            row["report_source"] = args.report
        rows.append(row)
        print(f"{name}: {row[loss_key(row)]:.4f} {UNITS[loss_key(row)]}, "
              f"{row['bits_per_element']:.2f} "
              f"bits/elem ({row['seconds']:.0f} s, {row['windows']} windows)", flush=True)
        _finish(rows, meta, args)
    if args.plot:
        plot(rows, args.plot)
    print()
    print(table(rows))


def study_inputs(args):
    """(model, token windows, a description of the text) of the study."""
    if args.model == "smollm2":
        import run_smollm2
        import smollm2
        per_text = args.max_windows or SMOLLM2_WINDOWS
        windows = [w for source in smollm2.eval_texts()
                   for w in run_smollm2.source_windows(source, CONTEXT, per_text, False)]
        return (run_smollm2.model(), windows,
                f"{per_text} windows of each of " + " and ".join(smollm2.eval_texts()))
    with open(args.text, "rb") as f:
        windows = eviction.byte_windows(f.read(), CONTEXT, args.max_windows)
    return tinylm.TinyLM.load(MODEL_DIR), windows, os.path.basename(args.text)


UNITS = {"bits_per_byte": "bits/byte", "bits_per_token": "bits/token"}


def loss_key(row):
    """The loss a row reports: bits/byte (tiny LM) or bits/token (SmolLM2)."""
    return "bits_per_byte" if "bits_per_byte" in row else "bits_per_token"


def _finish(rows, meta, args):
    base = next((r for r in rows if r["config"] == "fp16"), None)
    for r in rows:
        r["delta"] = None if base is None else r[loss_key(r)] - base[loss_key(base)]
        if "bits_per_token" in r:
            r["ppl"] = 2.0 ** r["bits_per_token"]
            r["delta_ppl_pct"] = None if r["delta"] is None else 100 * (2.0 ** r["delta"] - 1)
        r["reference"] = (REFERENCE.get(r["config"])
                          if args.max_windows is None and args.model == "tinylm" else None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**meta, "rows": rows}, f, indent=1)


def table(rows):
    unit = UNITS[loss_key(rows[0])] if rows else "bits/byte"
    ppl = bool(rows) and "ppl" in rows[0]
    lines = ["| config | series | K / V encoding | eviction | evicted tokens | "
             f"avg bits/elem | bits/elem at t=1023 | {unit} | Δ vs fp16 | "
             + ("ppl | Δ ppl % | " if ppl else "") + "budget ≤ context/2 |",
             "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if ppl else "") + "---|"]
    for r in rows:
        delta = "" if r["delta"] is None else f"{r['delta']:+.4f}"
        extra = ""
        if ppl:
            pct = "" if r.get("delta_ppl_pct") is None else f"{r['delta_ppl_pct']:+.2f}"
            extra = f"{r['ppl']:.4f} | {pct} | "
        if r.get("reference") is not None:
            delta += f" (ref {r['reference']:.4f})"
        budgets = "/".join(str(b) for b in r["budgets"])
        long = f"yes ({budgets} of {CONTEXT})" if r["long_context"] else \
            (f"no ({budgets} of {CONTEXT})" if budgets else "")
        lines.append(f"| {r['config']} | {r['series']} | {r['encoding']} | {r['evict']} | "
                     f"{r['demote']} | {r['bits_per_element']:.2f} | "
                     f"{r['final_bits_per_element']:.2f} | {r[loss_key(r)]:.4f} | "
                     f"{delta} | {extra}{long} |")
    return "\n".join(lines)


STYLE = {"quantization": ("tab:gray", "o"), "streaming": ("tab:blue", "s"),
         "h2o": ("tab:orange", "^"), "both": ("tab:green", "D"),
         "two-tier": ("tab:purple", "P"), "cost model": ("tab:red", "*")}


def plot(rows, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in rows if r["delta"] is not None and r["config"] != "fp16"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, field, label in ((axes[0], "bits_per_element", "average over scored steps"),
                             (axes[1], "final_bits_per_element", "at the last step (t = 1023)")):
        for series, (color, marker) in STYLE.items():
            points = sorted((r for r in rows if r["series"] == series), key=lambda r: r[field])
            if not points:
                continue
            xs, ys = [r[field] for r in points], [r["delta"] for r in points]
            line = "-" if series in ("streaming", "h2o") else "none"
            ax.plot(xs, ys, linestyle=line, color=color, marker=marker, label=series,
                    markersize=10 if marker == "*" else 6)
            for r in points:
                ax.annotate(r["config"], (r[field], r["delta"]), textcoords="offset points",
                            xytext=(4, 3), fontsize=7)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xlabel(f"bits per K/V element, {label}")
        ax.grid(alpha=0.3)
    unit = UNITS[loss_key(rows[0])] if rows else "bits/byte"
    axes[0].set_ylabel(f"Δ {unit} vs fp16 cache")
    axes[0].set_yscale("symlog", linthresh=0.01)
    axes[0].set_ylim(bottom=min(0.0, 1.2 * min(r["delta"] for r in rows)))
    axes[0].legend(fontsize=8)
    name = "SmolLM2-135M" if unit == "bits/token" else "tiny LM, dev.txt"
    fig.suptitle(f"{name}, context 1024: eviction vs quantization at equal memory")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
