"""Merges a run of the GPU decode-attention benchmark (attention_bench.cpp's
--json) with the PyTorch SDPA baseline of the same run (sdpa_baseline.py's
--json) into one markdown report: a table per encoding with kvc's times,
bytes, bandwidth and the speedup over SDPA (SDPA GPU us / kvc GPU us), and
issue 5's targets marked "met" / "not met" ("not measured" when a row is
missing, failed or was skipped). The machine and the exact commands, as the
runner (scripts/gpu_attention_bench.sh) recorded them, head the report.

usage: bench_report.py --kvc KVC.json --sdpa SDPA.json [--machine FILE]
                       [--commands FILE] [--date YYYY-MM-DD] [--out PATH]

--out defaults to benchmarks/results/gpu-attention-<date>.md.
"""
import argparse
import datetime
import json
import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# The issue's encodings (kvc's fp16 kernel is the bandwidth reference row
# and has no target).
ISSUE_ENCODINGS = ("K2/V2 g32", "K2/V2 g128", "K4/V2 g32", "K4/V4 g128",
                   "K8/V8 g128")


def base_encoding(label):
    """A row's encoding without its passes: "K2/V2 g32 mma" (the
    tensor-core key pass, key-product=mma), "K2/V2 g32 vmma" (the
    tensor-core value pass), "K2/V2 g32 mma vmma", "K2/V2 g32 mma vmma
    l2bulk" (with the L2 prefetch), "K2/V2 g32 mma vmma ks2" and "K2/V2
    g32 mma vmma l2bulk ks2" (with the key pass's cp.async key stages,
    key-stages=2), "K2/V2 g32 mma vmma fused" (the splits merged by the
    split kernels, combine=fused) -> "K2/V2 g32". The targets apply to
    each kernel's rows."""
    label = re.sub(r" fused$", "", label)
    label = re.sub(r"( [kv]s\d+)+$", "", label)
    for suffix in (" l2bulk", " l2lines", " vmma", " mma"):
        if label.endswith(suffix):
            label = label[:-len(suffix)]
    return label


class Target:
    """One of issue 5's targets: `kind` "peak" (% of the peak bandwidth),
    "speedup" (over SDPA), at least `threshold`, or "append" (the append's
    time per decode step as a % of the attention's: append_share), at most
    `threshold`, for the rows `applies` accepts."""

    def __init__(self, text, kind, threshold, applies):
        self.text, self.kind = text, kind
        self.threshold, self.applies = threshold, applies

    def met(self, value):
        if self.kind == "append":
            return value <= self.threshold
        return value >= self.threshold


TARGETS = (
    Target(">= 85% of peak at B >= 8, S >= 16k", "peak", 85.0,
           lambda e, b, s: e in ISSUE_ENCODINGS and b >= 8 and s >= 16384),
    Target(">= 70% of peak at B = 1, S = 32k", "peak", 70.0,
           lambda e, b, s: e in ISSUE_ENCODINGS and b == 1 and s == 32768),
    Target("K2/V2 g128 >= 6x SDPA at B = 32, S = 32k", "speedup", 6.0,
           lambda e, b, s: e == "K2/V2 g128" and b == 32 and s == 32768),
    Target("K2/V2 g32 >= 4.5x SDPA at B = 32, S = 32k", "speedup", 4.5,
           lambda e, b, s: e == "K2/V2 g32" and b == 32 and s == 32768),
    Target("K2/V2 g32 >= 9x SDPA at B = 1, S = 4k", "speedup", 9.0,
           lambda e, b, s: e == "K2/V2 g32" and b == 1 and s == 4096),
    Target("K4/V4 g128 >= 3.4x SDPA at B = 32, S = 32k", "speedup", 3.4,
           lambda e, b, s: e == "K4/V4 g128" and b == 32 and s == 32768),
    # Every row's share is in the tables; the targets table names the
    # cheapest attention (B = 1, S = 4k) and the largest.
    Target("append <= 5% of attention per step at B = 1, S = 4k and "
           "B = 32, S = 32k", "append", 5.0,
           lambda e, b, s: e in ISSUE_ENCODINGS and (b, s) in
           ((1, 4096), (32, 32768))),
)


def load(path):
    with open(path) as f:
        return json.load(f)


def measured(row):
    """True when the row ran, passed and has a time."""
    return bool(row and row.get("ok") and row.get("gpu_us_median"))


def speedup(kvc_row, sdpa_row):
    """SDPA GPU us / kvc GPU us, or None when either is not measured."""
    if not (measured(kvc_row) and measured(sdpa_row)):
        return None
    return sdpa_row["gpu_us_median"] / kvc_row["gpu_us_median"]


def append_and_attention(row):
    """The append's time per step and the attention time it is a share of:
    both device times on the cache's stream (CUDA events: append GPU us and
    GPU us); in runs from before those (no append_gpu_us_per_step) both as
    a caller waited for them (host clock: append us and call us)."""
    if "append_gpu_us_per_step" in row:
        return row.get("append_gpu_us_per_step"), row.get("gpu_us_median")
    return row.get("append_us_per_step"), row.get("call_us_median")


def append_share(row):
    """The append's time per step as a % of the attention's
    (append_and_attention), or None."""
    if not measured(row):
        return None
    append, attention = append_and_attention(row)
    if not (isinstance(append, (int, float)) and not math.isnan(append)
            and attention):
        return None
    return 100.0 * append / attention


def device_timed_appends(kvc):
    """Whether the run timed its appends on the device (append GPU us)."""
    return any("append_gpu_us_per_step" in row for row in kvc.get("rows", []))


def sdpa_index(sdpa):
    return {(r["batch"], r["S"]): r for r in sdpa.get("rows", [])}


def evaluate(kvc, sdpa):
    """Every (target, row) pair the targets name, in target order: dicts
    with target, encoding, batch, S, value (None when not measured) and
    status."""
    baseline = sdpa_index(sdpa)
    results = []
    for target in TARGETS:
        for row in kvc.get("rows", []):
            if not target.applies(base_encoding(row["encoding"]),
                                  row["batch"], row["S"]):
                continue
            if target.kind == "peak":
                value = (row.get("percent_of_peak") if measured(row)
                         else None)
            elif target.kind == "append":
                value = append_share(row)
            else:
                value = speedup(row, baseline.get((row["batch"], row["S"])))
            status = ("not measured" if value is None else
                      "met" if target.met(value) else "not met")
            results.append({"target": target, "encoding": row["encoding"],
                            "batch": row["batch"], "S": row["S"],
                            "value": value, "status": status})
    return results


def kernel_passes(label):
    """What a row's label adds to its encoding ("mma vmma l2bulk ks2"), or
    "plain" for the CUDA-core kernel of the encoding alone."""
    passes = label[len(base_encoding(label)):].strip()
    return passes or "plain"


def fastest_kernels(kvc):
    """Per (encoding, B, S) with at least two measured kernels, in the
    run's order: dicts with `encoding`, `batch`, `S` and `kernels`, the
    measured rows' (passes, GPU us, % of peak) from the fastest; the
    choice of a chip's default passes rests on these."""
    groups = {}
    for row in kvc.get("rows", []):
        if not measured(row):
            continue
        key = (base_encoding(row["encoding"]), row["batch"], row["S"])
        groups.setdefault(key, []).append(
            (kernel_passes(row["encoding"]), row["gpu_us_median"],
             row.get("percent_of_peak")))
    return [{"encoding": key[0], "batch": key[1], "S": key[2],
             "kernels": sorted(kernels, key=lambda k: k[1])}
            for key, kernels in groups.items() if len(kernels) > 1]


def number(x, digits=1):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def value_text(result):
    unit = "x" if result["target"].kind == "speedup" else "%"
    return number(result["value"], 1 if unit == "%" else 2) + unit


def render(kvc, sdpa, machine="", commands="", date=""):
    """The report, as markdown."""
    baseline = sdpa_index(sdpa)
    results = evaluate(kvc, sdpa)
    lines = [f"# GPU decode attention: kvc vs PyTorch SDPA ({date})", "",
             "Llama-3-8B attention (32 query heads, 8 KV heads, head_dim "
             "128, one query token), residual window 128, split-tokens 512. "
             "kvc: benchmarks/gpu/attention_bench.cpp "
             f"({kvc.get('timing', '?')}; {kvc.get('warmup', '?')} warm-up, "
             f"{kvc.get('reps', '?')} timed calls per row, each behind an L2 "
             f"flush of {number(kvc.get('l2_flush_bytes', 0) / 1e6)} MB; "
             f"seed {kvc.get('seed', '?')}). SDPA: "
             "`torch.nn.functional.scaled_dot_product_attention(q, k, v, "
             "enable_gqa=True)` on an fp16 cache, benchmarks/gpu/"
             f"sdpa_baseline.py (torch {sdpa.get('torch', '?')}, CUDA "
             f"{sdpa.get('cuda', '?')}; {sdpa.get('reps', '?')} timed "
             "calls, L2 flushed the same way). Times are medians of CUDA "
             "events; speedup = SDPA GPU us / kvc GPU us; "
             + (f"kvc's functions return without waiting (wait-on-return "
                f"{kvc.get('wait_on_return', '?')}): enqueue us is the host "
                "clock until a call returns, call us until the cache's "
                "stream is synchronized after it; append GPU us and append "
                "enqueue us are the same two measures of one-token append "
                "steps (the means over a residual window, one flush, "
                "BenchAppend.h), and the append's share is of the "
                "attention's GPU us; " if device_timed_appends(kvc) else
                "kvc call us and append us are host clock times of whole "
                "calls (append: the mean of one-token steps over a residual "
                "window, one flush, BenchAppend.h), the append's share is "
                "of the call; ") +
             "bytes read are "
             "exact (kvc: the compressed pages and fp16 residual rows the "
             "call reads, q and out; SDPA: q, K, V and out); % of "
             f"{number(kvc.get('peak_tbps', 3.35), 2)} TB/s, the device's "
             "peak HBM bandwidth (the issue set its targets for an H100 "
             "SXM, 3.35 TB/s).", "",
             f"kvc device: {kvc.get('device', '?')}; SDPA device: "
             f"{sdpa.get('device', '?')}.", ""]
    if machine.strip():
        lines += ["## Machine", "", "```", machine.strip(), "```", ""]
    lines += ["## Commands", "", "```"]
    if commands.strip():
        lines.append(commands.strip())
    for what, data in (("kvc", kvc), ("sdpa", sdpa)):
        if data.get("command"):
            lines.append(f"# {what}: {data['command']}")
    lines += ["```", "", "## Targets (issue 5)", "",
              "| target | encoding | B | S | value | status |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['target'].text} | {r['encoding']} | {r['batch']} "
                     f"| {r['S']} | {value_text(r)} | {r['status']} |")
    counts = {s: sum(r["status"] == s for r in results)
              for s in ("met", "not met", "not measured")}
    lines += ["", ", ".join(f"{n} {s}" for s, n in counts.items()), ""]

    fastest = fastest_kernels(kvc)
    if fastest:
        lines += ["## Fastest kernel per encoding, B and S", "",
                  "Among the passing rows of each encoding, B and S (plain: "
                  "the CUDA-core kernel without options); the margin is the "
                  "runner-up's GPU us over the fastest's.", "",
                  "| encoding | B | S | fastest | GPU us | % peak | "
                  "runner-up | GPU us | margin | plain GPU us |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- "
                  "| --- |"]
        for f in fastest:
            (best, best_us, best_peak), (second, second_us, _) = \
                f["kernels"][0], f["kernels"][1]
            plain = next((us for passes, us, _ in f["kernels"]
                          if passes == "plain"), None)
            lines.append(
                f"| {f['encoding']} | {f['batch']} | {f['S']} | {best} | "
                f"{number(best_us)} | {number(best_peak)} | {second} | "
                f"{number(second_us)} | {number(second_us / best_us, 3)} | "
                f"{number(plain)} |")
        lines.append("")

    encodings = []
    for row in kvc.get("rows", []):
        if row["encoding"] not in encodings:
            encodings.append(row["encoding"])
    for encoding in encodings:
        rows = sorted((r for r in kvc["rows"] if r["encoding"] == encoding),
                      key=lambda r: (r["batch"], r["S"]))
        bits = next((r.get("storage_bits_per_element") for r in rows
                     if r.get("storage_bits_per_element")), None)
        lines += [f"## {encoding} ({number(bits, 2)} bits per element)", "",
                  "| B | S | kvc GPU us (p10-p90) | kvc enqueue us | kvc call "
                  "us | append GPU us (% of attention) | append enqueue us "
                  "| MB read | TB/s | % peak | SDPA GPU us | SDPA TB/s | "
                  "speedup | targets |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | "
                  "--- | --- | --- | --- | --- |"]
        for row in rows:
            base = baseline.get((row["batch"], row["S"]))
            marks = [f"{r['target'].text.split(' at ')[0]}: {r['status']}"
                     for r in results
                     if r["encoding"] == encoding and r["batch"] ==
                     row["batch"] and r["S"] == row["S"]]
            if not row.get("ok"):
                marks.insert(0, ("FAIL: " if row.get("ran", True) else
                                 "not run: ") + row.get("problem", ""))
            lines.append(
                f"| {row['batch']} | {row['S']} | "
                f"{number(row.get('gpu_us_median'))} "
                f"({number(row.get('gpu_us_p10'))}-"
                f"{number(row.get('gpu_us_p90'))}) | "
                f"{number(row.get('enqueue_us_median'))} | "
                f"{number(row.get('call_us_median'))} | "
                f"{number(append_and_attention(row)[0])} "
                f"({number(append_share(row))}) | "
                f"{number(row.get('append_enqueue_us_per_step'))} | "
                f"{number(row.get('bytes', 0) / 1e6, 2)} | "
                f"{number(row.get('tbps'), 3)} | "
                f"{number(row.get('percent_of_peak'))} | "
                f"{number(base.get('gpu_us_median') if measured(base) else None)} | "
                f"{number(base.get('tbps') if measured(base) else None, 3)} | "
                f"{number(speedup(row, base), 2)} | "
                f"{'; '.join(marks)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kvc", required=True)
    parser.add_argument("--sdpa", required=True)
    parser.add_argument("--machine")
    parser.add_argument("--commands")
    parser.add_argument("--date",
                        default=datetime.date.today().isoformat())
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    kvc = load(args.kvc)
    sdpa = load(args.sdpa) if os.path.exists(args.sdpa) else {}
    if not sdpa:
        print(f"bench_report: no {args.sdpa}: speedups are not measured",
              file=sys.stderr)
    read = (lambda p: open(p).read() if p and os.path.exists(p) else "")
    text = render(kvc, sdpa, read(args.machine), read(args.commands),
                  args.date)
    out = args.out or os.path.join(ROOT, "benchmarks", "results",
                                   f"gpu-attention-{args.date}.md")
    with open(out, "w") as f:
        f.write(text + "\n")
    print(f"bench_report: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
