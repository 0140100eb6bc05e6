#!/usr/bin/env python3
"""Eviction quality study: bits/byte of the tiny LM on dev.txt at equal KV
memory for quantization only, eviction only (streaming, H2O), both, two-tier
caches and a cost-model report's choice (semantics: eviction.py).

  run_eviction.py [--configs a,b,...] [--max-windows N] [--report REPORT.json]
                  [--json out.json] [--plot out.png]
  run_eviction.py --model smollm2 [--max-windows 4 | --full] [--jobs N]
                  [--log W.jsonl] [--time-limit SECONDS] ...
  run_eviction.py --from-json out.json [--plot out.png]

--model smollm2 runs SmolLM2-135M-Instruct (smollm2.py) on --max-windows
windows of 1024 tokens of each of run_smollm2.py's evaluation texts and
reports bits per token and perplexity instead of bits/byte; --full runs
all 131 windows of run_smollm2.py --full's context-1024 set (>= 100k scored
tokens). Each (configuration, window) is evaluated on its own (--jobs
worker processes); --log and --time-limit run a long study in parts
(runlog.py), and the rows cover the windows every configuration finished.

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
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eviction  # noqa: E402
import runlog  # noqa: E402
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
    parser.add_argument("--full", action="store_true",
                        help="SmolLM2: run_smollm2.py --full's 1024-token windows "
                             "(>= 100k scored tokens)")
    runlog.add_arguments(parser)
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
    model, windows, text = study_inputs(args.model, args.text, args.max_windows, args.full)
    names = [args.report_config if n == "cost-model" else n
             for n in args.configs.split(",") if n]
    configs = {n: build_config(n, model, report, args.report_config)
               for n in names}  # fail early
    earlier = []
    if args.merge_into:
        with open(args.merge_into) as f:
            merged = json.load(f)
        if merged.get("max_windows") != args.max_windows or merged.get("full") != args.full:
            raise SystemExit(f"{args.merge_into} was run with --max-windows "
                             f"{merged.get('max_windows')}"
                             f"{' --full' if merged.get('full') else ''}, not "
                             f"{args.max_windows}{' --full' if args.full else ''}")
        earlier = [r for r in merged["rows"] if r["config"] not in names]
        args.json = args.json or args.merge_into
    meta = {"model": args.model, "text": text, "context": CONTEXT, "score_from": SCORE_FROM,
            "max_windows": args.max_windows, "full": args.full,
            "machine": f"{platform.machine()}, "
            f"{platform.processor() or platform.node()}, 1 BLAS thread",
            "report": args.report}
    if args.merge_into:
        meta = {k: v for k, v in merged.items() if k != "rows"}
    study = (args.model, args.text, args.max_windows, args.full, report, args.report_config)
    keys = {n: runlog.policy_key(config.policy, config.evictions)
            for n, (_, config) in configs.items()}
    wanted = {runlog.work_key(n, CONTEXT, source, index, SCORE_FROM, keys[n]):
              (n, source, index, keys[n], study)
              for source, index, _ in windows for n in names}
    # What this process built serves _evaluate here and in forked workers.
    _STUDIES[_study_key(study)] = (model, {(s, i): tokens for s, i, tokens in windows},
                                   {n: config for n, (_, config) in configs.items()})
    logged, work = runlog.pending(wanted, args.log, args.jobs)
    results = list(logged.values()) + runlog.run(work, _evaluate, args.log, args.jobs,
                                                 args.time_limit)
    summarized = runlog.complete_windows(results, names, [CONTEXT])
    meta["evaluations"] = {"planned": len(wanted), "summarized": len(summarized)}
    meta["mode"] = "partial" if len(summarized) < len(wanted) else "complete"
    base = {(w["source"], w["window"]): w for w in summarized if w["config"] == "fp16"}
    rows = list(earlier)
    for name in names:
        series, config = configs[name]
        row = _row([w for w in summarized if w["config"] == name], base, args.model)
        if row is None:
            continue
        enc, ev, dem = config.describe()
        budgets = _budgets(config)
        row.update(config=name, series=series, encoding=enc, evict=ev, demote=dem,
                   budgets=budgets, long_context=bool(budgets) and max(budgets) <= CONTEXT // 2)
        if name == args.report_config:
            row["report_source"] = args.report
        rows.append(row)
    _finish(rows, meta, args)
    if args.plot:
        plot(rows, args.plot)
    print()
    if meta["mode"] == "partial":
        print(f"partial: {len(summarized) // max(len(names), 1)} of "
              f"{len(windows)} windows finished by every configuration")
    print(table(rows))


def _row(mine, base, model_kind):
    """A configuration's row from its window results: the loss over all
    scored tokens, the paired standard error of its difference to fp16, and
    the memory averaged over the windows (each window's average over its
    scored steps, and its last step: all windows have the same length)."""
    if not mine:
        return None
    bits, scored = sum(w["bits"] for w in mine), sum(w["tokens"] for w in mine)
    unit = "bits_per_byte" if model_kind == "tinylm" else "bits_per_token"  # tiny LM: bytes
    row = {unit: bits / scored, "scored_bytes" if model_kind == "tinylm" else "scored_tokens":
           scored, "windows": len(mine),
           "bits_per_element": float(np.mean([w["memory"] for w in mine])),
           "final_bits_per_element": float(np.mean([w["final_memory"] for w in mine])),
           "seconds": float(sum(w["seconds"] for w in mine)),
           "delta_stderr": runlog.paired_stderr(mine, base, loss="bits")}
    return row


_STUDIES = {}


def _study_key(study):
    return json.dumps(study, sort_keys=True)


def _study(study):
    """(model, {(source, index): tokens}, {name: Config}) of a run: the main
    process's, or built once in a worker that did not inherit it."""
    key = _study_key(study)
    if key not in _STUDIES:
        model, windows, _ = study_inputs(*study[:4])
        _STUDIES[key] = (model, {(s, i): tokens for s, i, tokens in windows}, {})
    return _STUDIES[key]


def _evaluate(work):
    """One window of one configuration (in a worker process): its scored
    bits and tokens and its memory (eviction.window_result)."""
    name, source, index, key, study = work
    model, windows, configs = _study(study)
    if name not in configs:
        configs[name] = build_config(name, model, study[4], study[5])[1]
    start = time.time()
    bits, scored, ratio, _ = eviction.window_result(model, windows[(source, index)],
                                                    configs[name], SCORE_FROM)
    seconds = time.time() - start
    unit = "bits/byte" if study[0] == "tinylm" else "bits/token"
    print(f"{name} {source}[{index}]: {bits / scored:.4f} {unit} ({seconds:.1f} s)", flush=True)
    return {"config": name, "context": CONTEXT, "source": source, "window": index,
            "score_from": SCORE_FROM, "policy": key, "bits": float(bits), "tokens": int(scored),
            "memory": float(ratio[SCORE_FROM:].mean()), "final_memory": float(ratio[-1]),
            "seconds": seconds}


def study_inputs(model_kind, text_path, max_windows, full):
    """(model, token windows as (source, index, tokens), a description of the
    text) of the study."""
    if model_kind == "smollm2":
        import run_smollm2
        import smollm2
        per_text = None if full else max_windows or SMOLLM2_WINDOWS
        windows = [(source, index, w) for source in smollm2.eval_texts()
                   for index, w in enumerate(
                       run_smollm2.source_windows(source, CONTEXT, per_text, full))]
        what = ("all of dev.txt and the first "
                f"{run_smollm2.FULL_PROSE_TOKENS} tokens of jargon-lexicon "
                f"({len(windows)} windows)" if full else
                f"{per_text} windows of each of " + " and ".join(smollm2.eval_texts()))
        return run_smollm2.model(), windows, what
    if full:
        raise SystemExit("--full is SmolLM2's full evaluation set; the tiny LM's study "
                         "reads all of --text unless --max-windows is given")
    with open(text_path, "rb") as f:
        windows = eviction.byte_windows(f.read(), CONTEXT, max_windows)
    source = os.path.basename(text_path)
    return (tinylm.TinyLM.load(MODEL_DIR), [(source, i, w) for i, w in enumerate(windows)],
            source)


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
        if r["delta"] is not None and r.get("delta_stderr") and r["config"] != "fp16":
            delta += f" ± {r['delta_stderr']:.4f}"  # paired over windows
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
