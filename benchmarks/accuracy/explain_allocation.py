#!/usr/bin/env python3
"""Markdown tables that explain the cost model's per-layer K/V allocations.

  explain_allocation.py [ALLOCATIONS.json] [--calibration CAL.json]
                        [--cache-stats STATS.md] [--results RESULTS.json]

Reads select_allocations.py's output (the chosen encodings and the cost
model's report for each budget) and prints, without running anything:

1. the allocation: per layer and budget, the key / value encoding in short
   form (`q2c128` = 2 bits, channel axis, groups of 128 tokens; `q2t64` =
   token axis, groups of 64 channels), the mean bits per side, the predicted
   loss and, with --results (run_smollm2.py's JSON), the measured one;
2. the evidence: per layer and side, the calibration's loss increase with
   only that side at the reference encoding (--calibration adds the raw
   measurement and its standard error; `~` marks a change below its error,
   recorded as the error), the reference attention error E_ref, alpha =
   dloss / E_ref, the bits chosen at each budget and, with --cache-stats
   (docs/smollm2-cache-stats.md), the key outlier-channel ratio and the
   value channel/token error ratio measured on the evaluation text;
3. summary lines: Σ dloss per side (the predicted loss of the reference
   encodings everywhere), the largest dloss and alpha, and the slots whose
   calibration change was below its error.
"""
import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
AXIS_LETTER = {"channel": "c", "token": "t"}
SIDES = ("key", "value")


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"{path}: {e}")


def short(encoding):
    """'q2:channel:g128' -> 'q2c128'; fp16, fp8 and prune specs stay as they are."""
    parts = encoding.split(":")
    if len(parts) == 3 and parts[0].startswith("q") and parts[1] in AXIS_LETTER:
        return f"{parts[0]}{AXIS_LETTER[parts[1]]}{parts[2].lstrip('g')}"
    return encoding


def budgets_of(allocations, prefix):
    """[(budget, name, report)] of the allocations named PREFIX-<budget>."""
    found = []
    for name, entry in allocations.items():
        if name.startswith(prefix) and isinstance(entry, dict) and "report" in entry:
            found.append((entry["budget"], name, entry["report"]))
    if not found:
        raise SystemExit(f"no allocation named {prefix}* with a cost-model report "
                         f"(have: {', '.join(allocations) or 'none'})")
    return sorted(found)


def slots_by_layer_side(report):
    """{(layer, side): [slot, ...]}: one slot per layer side, or one per KV head."""
    slots = {}
    for slot in report["slots"]:
        slots.setdefault((slot["layer"], slot["side"]), []).append(slot)
    return slots


def mean_bits(slots):
    return sum(s["bits_per_element"] for s in slots) / len(slots)


def choice(slots):
    """The short encoding of a layer side; per-head choices joined by ','."""
    return ",".join(short(s["encoding"]) for s in sorted(slots, key=lambda s: str(s["head"])))


def cache_stats_table(path):
    """{layer: {column: cell}} from the markdown table of cache_stats.py."""
    try:
        with open(path) as f:
            lines = [line.strip() for line in f if line.strip().startswith("|")]
    except OSError as e:
        raise SystemExit(f"{path}: {e}")
    if len(lines) < 3:
        raise SystemExit(f"{path}: no markdown table")
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = dict(zip(header, cells))
    for column in ("K outliers %", "V ch/tok"):
        if column not in header:
            raise SystemExit(f"{path}: no '{column}' column")
    return rows


def measured_bits_per_token(results, names):
    """{config: (Δ mean NLL in bits/token vs fp16, its standard error)} from
    run_smollm2.py's JSON (the first context that has the config)."""
    rows = [r for r in results.get("rows", []) if r.get("ppl")]
    out = {}
    for context in sorted({r["context"] for r in rows}):
        base = [r for r in rows if r["context"] == context and r["config"] == "fp16"]
        if not base:
            continue
        for r in rows:
            if r["context"] == context and r["config"] in names and r["config"] not in out:
                stderr = r.get("delta_nll_stderr")  # nats per token
                out[r["config"]] = (math.log2(r["ppl"] / base[0]["ppl"]),
                                    None if stderr is None else stderr / math.log(2.0))
    return out


def spearman(x, y):
    """Rank correlation (no ties expected in measured errors)."""
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0] * len(v)
        for rank, i in enumerate(order):
            r[i] = rank
        return r
    rx, ry = ranks(x), ranks(y)
    n = len(x)
    return 1 - 6 * sum((a - b) ** 2 for a, b in zip(rx, ry)) / (n * (n * n - 1))


def measured_cell(value):
    delta, stderr = value
    return f"{delta:.4f}" + ("" if stderr is None else f" ± {stderr:.4f}")


def allocation_table(budgets, num_layers, measured):
    per_budget = [slots_by_layer_side(report) for _, _, report in budgets]
    print("| layer | " + " | ".join(f"{b:g} bits: K / V" for b, _, _ in budgets) + " |")
    print("|---" * (len(budgets) + 1) + "|")
    for layer in range(num_layers):
        cells = [f"{choice(s[(layer, 'key')])} / {choice(s[(layer, 'value')])}"
                 for s in per_budget]
        print(f"| {layer} | " + " | ".join(cells) + " |")
    cells = []
    for s in per_budget:
        means = [sum(mean_bits(s[(layer, side)]) for layer in range(num_layers)) / num_layers
                 for side in SIDES]
        cells.append(f"{means[0]:.2f} / {means[1]:.2f}")
    print("| mean bits K / V | " + " | ".join(cells) + " |")
    cells = []
    for s, (_, _, report) in zip(per_budget, budgets):
        key_loss = sum(slot["predicted_loss"] for (_, side), slots in s.items()
                       if side == "key" for slot in slots)
        cells.append(f"{report['predicted_loss']:.4f} ({100 * key_loss / report['predicted_loss']:.0f} % keys)")
    print("| predicted Δ bits/token | " + " | ".join(cells) + " |")
    if measured:
        cells = [measured_cell(measured[name]) if name in measured else ""
                 for _, name, _ in budgets]
        print("| measured Δ bits/token | " + " | ".join(cells) + " |")


def evidence_table(budgets, num_layers, alphas, calibration, cache_stats):
    per_budget = [slots_by_layer_side(report) for _, _, report in budgets]
    columns = ["layer"]
    for letter in "KV":
        columns += [f"{letter} Δloss at q2", f"{letter} E_ref", f"α_{letter}",
                    f"{letter} bits " + "/".join(f"{b:g}" for b, _, _ in budgets)]
    if cache_stats:
        columns += ["K outliers %", "V E ch/tok"]
    print("| " + " | ".join(columns) + " |")
    print("|---" * len(columns) + "|")
    for layer in range(num_layers):
        cells = [str(layer)]
        for side in SIDES:
            alpha = alphas[(layer, side)]
            if calibration:
                entry = calibration[layer][side]
                noise = "~" if entry["measured"] < entry["stderr"] else ""
                cells.append(f"{noise}{entry['measured']:+.4f} ± {entry['stderr']:.4f}")
            else:
                cells.append(f"{alpha['dloss']:.4f}")
            cells.append(f"{alpha['reference_error']:.4f}")
            cells.append(f"{alpha['alpha']:.3f}")
            cells.append("/".join(f"{mean_bits(s[(layer, side)]):g}" for s in per_budget))
        if cache_stats:
            row = cache_stats.get(layer, {})
            cells += [row.get("K outliers %", ""), row.get("V ch/tok", "")]
        print("| " + " | ".join(cells) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("allocations", nargs="?",
                        default=os.path.join(HERE, "..", "results", "smollm2-allocations.json"))
    parser.add_argument("--prefix", default="cost-layer-",
                        help="allocation names to explain (one per budget)")
    parser.add_argument("--calibration", default=None,
                        help="calibrate_smollm2.py --summary JSON (raw measurement, s.e.)")
    parser.add_argument("--cache-stats", default=None,
                        help="cache_stats.py's markdown (docs/smollm2-cache-stats.md)")
    parser.add_argument("--results", default=None,
                        help="run_smollm2.py's JSON: the measured loss of each allocation")
    parser.add_argument("--reference-config", default="kivi2",
                        help="the --results config that uses the calibration's reference "
                             "encodings everywhere (its predicted loss is Σ dloss)")
    args = parser.parse_args()

    budgets = budgets_of(load_json(args.allocations), args.prefix)
    first = budgets[0][2]
    if first.get("model") != "calibrated" or not first.get("alphas"):
        raise SystemExit(f"{args.allocations}: {budgets[0][1]} is not calibrated "
                         "(no alphas): nothing measured to explain it with")
    alphas = {(a["layer"], a["side"]): a for a in first["alphas"]}
    num_layers = 1 + max(layer for layer, _ in alphas)
    for _, name, report in budgets:
        missing = {(l, s) for l in range(num_layers) for s in SIDES} - set(slots_by_layer_side(report))
        if missing:
            raise SystemExit(f"{args.allocations}: {name} has no slot for (layer, side) "
                             f"{sorted(missing)[0]}")
    calibration = None
    if args.calibration:
        layers = load_json(args.calibration).get("layers", [])
        calibration = {entry["layer"]: entry for entry in layers
                       if isinstance(entry, dict) and "layer" in entry
                       and all(isinstance(entry.get(side), dict) for side in SIDES)}
        if set(calibration) != set(range(num_layers)):
            raise SystemExit(f"{args.calibration}: not calibrate_smollm2.py --summary output "
                             f"for {num_layers} layers (key and value entries of layers "
                             f"{sorted(calibration)})")
    cache_stats = cache_stats_table(args.cache_stats) if args.cache_stats else None
    measured = (measured_bits_per_token(load_json(args.results),
                                        {n for _, n, _ in budgets} | {args.reference_config})
                if args.results else {})

    allocation_table(budgets, num_layers, measured)
    print()
    evidence_table(budgets, num_layers, alphas, calibration, cache_stats)
    print()
    totals = {side: sum(alphas[(layer, side)]["dloss"] for layer in range(num_layers))
              for side in SIDES}
    for side in SIDES:
        references = sorted({alphas[(layer, side)]["reference"] for layer in range(num_layers)})
        print(f"- Σ dloss {side}s ({', '.join(references)} in every layer): "
              f"{totals[side]:.4f} bits/token")
    line = (f"- predicted Δ of the reference encodings everywhere (Σ dloss): "
            f"{totals['key'] + totals['value']:.4f} bits/token")
    if args.reference_config in measured:
        line += f"; measured ({args.reference_config}): {measured_cell(measured[args.reference_config])}"
    print(line)
    ranked = sorted(alphas.values(), key=lambda a: -a["dloss"])[:5]
    print("- largest dloss: " + ", ".join(
        f"layer {a['layer']} {a['side']}s {a['dloss']:.4f}" for a in ranked))
    ranked = sorted(alphas.values(), key=lambda a: -a["alpha"])[:5]
    print("- largest α: " + ", ".join(
        f"layer {a['layer']} {a['side']}s {a['alpha']:.3f}" for a in ranked))
    if cache_stats:
        for side, column in (("key", "K E channel"), ("value", "V E token")):
            pairs = [(alphas[(layer, side)]["reference_error"], float(cache_stats[layer][column]))
                     for layer in range(num_layers)
                     if column in cache_stats.get(layer, {})]
            if len(pairs) == num_layers:
                print(f"- rank correlation of {side} E_ref (calibration text) with "
                      f"'{column}' (evaluation text): {spearman(*zip(*pairs)):.2f}")
    if calibration:
        noise = [f"{layer}{side[0].upper()}" for layer in range(num_layers) for side in SIDES
                 if calibration[layer][side]["measured"] < calibration[layer][side]["stderr"]]
        print(f"- {len(noise)} of {2 * num_layers} layer sides changed the loss by less "
              f"than their standard error: {' '.join(noise)}")


if __name__ == "__main__":
    sys.exit(main())
