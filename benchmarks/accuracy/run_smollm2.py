#!/usr/bin/env python3
"""Perplexity of SmolLM2-135M-Instruct under kvc's compressed KV cache.

  run_smollm2.py --sanity
  run_smollm2.py --full [--allocations A.json] [--jobs N] [--out-prefix P]
                 [--log W.jsonl] [--time-limit SECONDS]
  run_smollm2.py [--contexts 1024] [--max-windows 4] [--configs fp16,kivi2,...]
                 [--allocations A.json[,B.json]]

Semantics as the tiny LM's harness (tinylm.py, run_tinylm.py): teacher
forcing over non-overlapping windows of `context` tokens, positions >=
--score-from scored, fp16 residual window R = 128, tokens compressed through
`kvc` once they leave it. Evaluation text (held apart from calibration,
smollm2.eval_texts): ../shared/models/tiny-lm/dev.txt (Python source) and the
glossary of the Jargon File (English prose, Debian package `jargon-text`).

--full evaluates contexts 1024 and 4096 on all of dev.txt and the first
FULL_PROSE_TOKENS tokens of the lexicon (>= 100k scored tokens per context);
otherwise --max-windows windows per source are evaluated (a reduced run,
labelled so in every output). --sanity prints greedy generations and
perplexities on a text the model should know (the GPL-3 text of Debian's
base-files) and exits.

A long run can go in parts: --log appends each finished window to a
JSON-lines file and skips those already there (same config, cache policy
and scoring); --time-limit stops starting new ones. Tables cover the
windows every configuration has finished ("partial" when some are missing).

Keys stored Hadamard-rotated (kvc-rotate-keys): the uniform configs
kivi2-rot, k4v2-rot and k2v4-rot, and any allocation whose JSON entry has
"rotate_keys": true (select_allocations.py --rotate-keys, from
calibrate_smollm2.py --rotate-keys statistics).
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see run_tinylm.py
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runlog  # noqa: E402
import smollm2  # noqa: E402
from run_tinylm import UNIFORM, average_bits, policy_for  # noqa: E402

DEFAULT_CONFIGS = "fp16,kivi2,kivi4,k4v2,k2v4,all"
FULL_CONTEXTS = (1024, 4096)
# Tokens of each evaluation source a --full run reads (None: all of it).
FULL_PROSE_TOKENS = 81920  # with dev.txt: >= 100k scored tokens at both contexts
FULL_TOKENS = {"dev.txt": None, "jargon-lexicon": FULL_PROSE_TOKENS}
KNOWN_TEXT = "/usr/share/common-licenses/GPL-3"
SANITY_PROMPTS = [
    "What is the capital of France?",
    "Write a Python function that returns the factorial of n.",
    "Explain in two sentences why the sky is blue.",
]
LABELS = {"fp16": "fp16", "kivi2": "KIVI-2 (K q2 channel, V q2 token, g32)",
          "kivi4": "KIVI-4", "k4v2": "K4/V2 (g32)", "k2v4": "K2/V4 (g32)",
          "k2v2-token": "K2/V2 both per-token",
          "kivi2-rot": "KIVI-2, keys Hadamard-rotated", "k4v2-rot": "K4/V2, keys rotated",
          "k2v4-rot": "K2/V4, keys rotated"}

_MODEL = None
_TOKENS = {}


def model():
    global _MODEL
    if _MODEL is None:
        _MODEL = smollm2.SmolLM2.load()
    return _MODEL


def source_tokens(name):
    """Token ids of an evaluation source (cached per process)."""
    if name not in _TOKENS:
        _TOKENS[name] = model().encode(smollm2.eval_texts()[name])
    return _TOKENS[name]


def source_windows(name, context, max_windows, full):
    ids = source_tokens(name)
    if full and FULL_TOKENS.get(name) is not None:
        ids = ids[:FULL_TOKENS[name] + 1]
    return smollm2.windows(ids, context, None if full else max_windows)


def _evaluate(work):
    """One window of one configuration (in a worker process)."""
    config, context, source, index, allocations, score_from, full, max_windows = work
    m = model()
    window = source_windows(source, context, max_windows, full)[index]
    policy = policy_for(config, m, allocations)
    start = time.time()
    nll = m.window_nll(window, policy, score_from=score_from)
    seconds = time.time() - start
    print(f"{config} ctx {context} {source}[{index}]: ppl {np.exp(nll.mean()):.3f} "
          f"({seconds:.1f} s)", flush=True)
    return {"config": config, "context": context, "source": source, "window": index,
            "score_from": score_from, "policy": runlog.policy_key(policy),
            "nll": float(nll.sum()), "tokens": len(nll), "seconds": seconds}


def cost_model_series(entry):
    """'kvc cost model' plus what sets an allocation apart (rotated keys,
    per-head choice): one line of the plot, the start of a table label."""
    extras = (["keys rotated"] if entry.get("rotate_keys") else []) + (
        ["per head"] if entry.get("report", {}).get("granularity") == "head" else []) + (
        [f"{entry['sink']} fp16 sink tokens"] if entry.get("sink") else [])
    return "kvc cost model" + (f" ({', '.join(extras)})" if extras else "")


def config_label(name, allocations):
    if name in allocations:
        series = cost_model_series(allocations[name])
        budget = f"{allocations[name]['budget']:g} bits"
        if series.endswith(")"):
            return f"**{series[:-1]}, {budget})**"
        return f"**{series}, {budget}**"
    return LABELS.get(name, name)


def load_allocations(paths):
    """Allocations of one or more select_allocations.py JSON files
    (comma-separated), merged; a name in two files is an error."""
    allocations = {}
    for path in [p for p in (paths or "").split(",") if p]:
        with open(path) as f:
            entries = json.load(f)
        clash = sorted(set(entries) & set(allocations))
        if clash:
            raise SystemExit(f"{path}: allocation names already loaded: {', '.join(clash)} "
                             "(select_allocations.py --prefix sets them)")
        allocations.update(entries)
    return allocations


def mean_seconds(windows):
    """Mean seconds per window over the windows whose time was recorded."""
    timed = [w["seconds"] for w in windows if w.get("seconds") is not None]
    return float(np.mean(timed)) if timed else None


def summarize(windows, names, contexts, allocations):
    """Rows per (config, context): perplexity per source and over all
    scored tokens, Δ vs fp16, and the paired standard error of Δ mean NLL
    over windows."""
    m = model()
    rows = []
    for context in contexts:
        base = {(w["source"], w["window"]): w for w in windows
                if w["config"] == "fp16" and w["context"] == context}
        for name in names:
            mine = [w for w in windows if w["config"] == name and w["context"] == context]
            if not mine:
                continue
            nll = sum(w["nll"] for w in mine)
            tokens = sum(w["tokens"] for w in mine)
            row = {"config": name, "context": context, "label": config_label(name, allocations),
                   "series": (cost_model_series(allocations[name]) if name in allocations
                              else None),
                   "bits_per_element": average_bits(policy_for(name, m, allocations), m,
                                                    context),
                   "tokens": tokens, "windows": len(mine), "ppl": float(np.exp(nll / tokens)),
                   "seconds_per_window": mean_seconds(mine),
                   "sources": {}}
            for source in sorted({w["source"] for w in mine}):
                part = [w for w in mine if w["source"] == source]
                row["sources"][source] = {
                    "tokens": sum(w["tokens"] for w in part),
                    "ppl": float(np.exp(sum(w["nll"] for w in part) /
                                        sum(w["tokens"] for w in part)))}
            row["delta_nll_stderr"] = runlog.paired_stderr(mine, base)
            rows.append(row)
        fp16 = next((r for r in rows if r["config"] == "fp16" and r["context"] == context), None)
        for r in rows:
            if r["context"] == context:
                r["delta_ppl"] = None if fp16 is None else r["ppl"] - fp16["ppl"]
                r["delta_pct"] = None if fp16 is None else 100.0 * (r["ppl"] / fp16["ppl"] - 1)
    return rows


def markdown(result):
    """The results table (one per context) as markdown."""
    lines = []
    sources = sorted({s for r in result["rows"] for s in r["sources"]})
    for context in result["contexts"]:
        rows = [r for r in result["rows"] if r["context"] == context]
        if not rows:
            continue
        done = result.get("evaluations", {})
        part = (f"; partial run: {done['summarized']} of {done['planned']} evaluations"
                if result["mode"] == "partial" else "")
        lines += ["", f"### Context {context} ({rows[0]['windows']} windows, "
                      f"{rows[0]['tokens']:,} scored tokens per config{part})", "",
                  "| config | avg bits/elem | ppl | Δ ppl | Δ % | ± (1 s.e., %) | "
                  + " | ".join(f"ppl {s}" for s in sources) + " | s/window |",
                  "|---|---|---|---|---|---|" + "---|" * len(sources) + "---|"]
        for r in rows:
            delta = "" if r["delta_ppl"] is None else f"{r['delta_ppl']:+.4f}"
            pct = "" if r["delta_pct"] is None else f"{r['delta_pct']:+.3f}"
            err = ("" if r["delta_nll_stderr"] is None or r["config"] == "fp16"
                   else f"{100 * r['delta_nll_stderr']:.3f}")
            label = r.get("label") or LABELS.get(r["config"], r["config"])
            seconds = ("" if r["seconds_per_window"] is None
                       else f"{r['seconds_per_window']:.1f}")
            per_source = " | ".join(
                f"{r['sources'][s]['ppl']:.4f}" if s in r["sources"] else "" for s in sources)
            lines.append(f"| {label} | {r['bits_per_element']:.2f} | {r['ppl']:.4f} | {delta} | "
                         f"{pct} | {err} | {per_source} | {seconds} |")
    return "\n".join(lines) + "\n"


def plot(result, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    contexts = [c for c in result["contexts"]
                if any(r["context"] == c and r["delta_pct"] is not None for r in result["rows"])]
    if not contexts:
        print(f"{out}: no complete window to plot")
        return
    fig, axes = plt.subplots(1, len(contexts), figsize=(6.5 * len(contexts), 4.5), squeeze=False)
    for ax, context in zip(axes[0], contexts):
        rows = [r for r in result["rows"] if r["context"] == context and r["config"] != "fp16"
                and r["delta_pct"] is not None]
        uniform = [r for r in rows if not r.get("series")]
        ax.scatter([r["bits_per_element"] for r in uniform], [r["delta_pct"] for r in uniform],
                   color="tab:gray", zorder=3, label="uniform schemes")
        for r in uniform:
            ax.annotate(r["config"], (r["bits_per_element"], r["delta_pct"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
        for series in sorted({r["series"] for r in rows if r.get("series")}):
            cost = sorted((r for r in rows if r.get("series") == series),
                          key=lambda r: r["bits_per_element"])
            ax.plot([r["bits_per_element"] for r in cost], [r["delta_pct"] for r in cost],
                    marker="o", label=series)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xlabel("average bits per K/V element (scales and zeros included)")
        ax.set_ylabel("Δ perplexity vs fp16 cache (%)")
        ax.set_title(f"SmolLM2-135M, context {context}" +
                     ("" if result["mode"] == "full" else f" ({result['mode']} run)"))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def sanity():
    m = model()
    print(f"model: {m.config['name']}, {m.num_layers} layers, {m.num_heads} query / "
          f"{m.num_kv_heads} KV heads, head_dim {m.head_dim}, rope theta {m.rope_theta:g}")
    for prompt in SANITY_PROMPTS:
        start = time.time()
        out = m.generate(m.encode(m.chat_prompt(prompt)), max_new_tokens=48)
        print(f"\n> {prompt}\n{m.decode(out)}   [{time.time() - start:.0f} s]", flush=True)
    texts = {"GPL-3 (" + KNOWN_TEXT + ")": open(KNOWN_TEXT, encoding="utf-8").read()}
    texts.update(smollm2.eval_texts())
    print()
    for name, text in texts.items():
        window = smollm2.windows(m.encode(text), 1024, 1)[0]
        start = time.time()
        nll = m.window_nll(window, None, score_from=256)
        print(f"perplexity, first 1024 tokens of {name}, positions >= 256: "
              f"{np.exp(nll.mean()):.3f} [{time.time() - start:.1f} s]", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sanity", action="store_true")
    parser.add_argument("--full", action="store_true",
                        help="contexts 1024 and 4096 on >= 100k tokens each")
    parser.add_argument("--contexts", default=None, help="default: 1024 (4096 too with --full)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS,
                        help="'all' adds every allocation of --allocations")
    parser.add_argument("--allocations", default=None,
                        help="JSON of cost-model allocations (select_allocations.py); "
                             "several files comma-separated")
    parser.add_argument("--max-windows", type=int, default=4,
                        help="windows per source and context (ignored with --full)")
    parser.add_argument("--score-from", type=int, default=256)
    parser.add_argument("--out-prefix", default=None,
                        help="write PREFIX.json, PREFIX-table.md and PREFIX.png")
    runlog.add_arguments(parser)
    args = parser.parse_args()
    if args.sanity:
        sanity()
        return

    allocations = load_allocations(args.allocations)
    names = [n for n in args.configs.split(",") if n]
    if "all" in names:
        names = [n for n in names if n != "all"] + list(allocations)
    contexts = ([int(c) for c in args.contexts.split(",")] if args.contexts
                else list(FULL_CONTEXTS) if args.full else [1024])
    m = model()
    # Each config's cache-policy key (unknown names fail here, before any work).
    keys = {name: runlog.policy_key(policy_for(name, m, allocations)) for name in names}
    sources = list(smollm2.eval_texts())
    work = []
    for context in sorted(contexts, reverse=True):  # long windows first: better balance
        for source in sources:
            count = len(source_windows(source, context, args.max_windows, args.full))
            for index in range(count):
                for name in names:
                    work.append((name, context, source, index, allocations,
                                 args.score_from, args.full, args.max_windows))
    planned = len(work)
    wanted = {runlog.work_key(w[0], w[1], w[2], w[3], w[5], keys[w[0]]): w for w in work}
    logged, work = runlog.pending(wanted, args.log, args.jobs)
    start = time.time()
    windows = list(logged.values()) + runlog.run(work, _evaluate, args.log, args.jobs,
                                                 args.time_limit)
    summarized = runlog.complete_windows(windows, names, contexts)
    mode = ("partial" if len(summarized) < planned else "full" if args.full else "reduced")
    result = {"mode": mode,
              "command": " ".join(["run_smollm2.py"] + sys.argv[1:]),
              "model": m.config["name"] + " (" + smollm2.GGUF_NAME + ")",
              "contexts": contexts, "score_from": args.score_from, "residual": 128,
              "max_windows": None if args.full else args.max_windows,
              "evaluations": {"planned": planned, "summarized": len(summarized)},
              "sources": sources, "wall_seconds": time.time() - start,
              "rows": summarize(summarized, names, contexts, allocations),
              "windows": summarized}
    table = markdown(result)
    print(table)
    if args.out_prefix:
        with open(args.out_prefix + ".json", "w") as f:
            json.dump(result, f, indent=1)
        with open(args.out_prefix + "-table.md", "w") as f:
            f.write(f"<!-- {result['command']} ({result['mode']} run) -->\n" + table)
        plot(result, args.out_prefix + ".png")


if __name__ == "__main__":
    main()
