"""Summarizes Nsight Compute text reports of the GPU decode-attention
benchmark (scripts/gpu_attention_profile.sh writes one a variant) into one
markdown table: a row per profiled kernel with what issue 5 asks a gap to be
explained by — time, DRAM throughput, cache hit rates, the issue rate,
instructions (and, for a split kernel, lane-instructions per cache element
read, the measure that found the 2026-12-04 kernels instruction-bound),
registers, occupancy, active and eligible warps, and the top stall reason
with its share of the cycles between two issued instructions, and the
target of the issue the kernel's shape bears on.

usage: ncu_summary.py REPORT [REPORT ...] [--out PATH] [--heading TEXT]

A report may hold several ncu runs of kvc_attention_bench one after the
other (benchmarks/results/gpu-profile-2026-12-04-ncu.txt does): each
kernel belongs to the run of the benchmark row printed before it
("attention_bench: NAME: filled to S=N"). A report with no kernel section
(ncu failed, or the rehearsal's stand-in ran) gets a row that says so.
Exits 1 when a report cannot be read, 0 otherwise.
"""
import argparse
import os
import re
import sys

KERNEL_HEADER = re.compile(
    r"^  (?P<name>\S+) \((?P<grid>\d+, \d+, \d+)\)x\((?P<block>\d+, \d+, \d+)\),"
    r" Context")
SECTION_HEADER = re.compile(r"^    Section: (?P<name>.+?)\s*$")
TABLE_RULE = re.compile(r"^    -[- ]+$")
BENCH_ROW = re.compile(
    r"attention_bench: (?P<name>\S+): filled to S=(?P<S>\d+)\b")
# Llama-style bench names: bench_<encoding>_b<B>_h<Q>x<KV>_d<D>...
SHAPE = re.compile(r"_b(?P<B>\d+)_h(?P<Q>\d+)x(?P<KV>\d+)_d(?P<D>\d+)")
STALL = re.compile(
    r"spends (?P<cycles>[\d.]+) cycles being stalled (?P<reason>[^.]+?)\."
    r"(?:(?!Est\.).)*?This stall type represents about (?P<share>[\d.]+)% of"
    r" the total average of (?P<total>[\d.]+) cycles")
# ncu's sentences for the usual stall reasons, in the names of its metrics.
STALL_NAMES = (
    ("scoreboard dependency on a L1TEX", "long scoreboard (L1TEX: global/local)"),
    ("scoreboard dependency on a MIO", "short scoreboard (MIO: shared/special)"),
    ("CTA barrier", "barrier"),
    ("fixed latency execution dependency", "wait (fixed latency)"),
    ("MIO instruction queue", "MIO throttle"),
    ("L1 instruction queue for local and global", "LG throttle"),
    ("execution pipe to be available", "math pipe throttle"),
    ("instruction fetch", "no instruction"),
    ("memory barrier", "membar"),
    ("branch target", "branch resolving"),
)


def number(text):
    """ncu's value text as a float ("1,556.48" -> 1556.48), else None."""
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


class Kernel:
    """One profiled kernel launch: its name, launch shape, the benchmark row
    it belongs to, its metrics by (section, metric name) and the text of its
    rules (ncu's OPT/INF paragraphs) joined into one line."""

    def __init__(self, name, grid, block, variant, length):
        self.name, self.grid, self.block = name, grid, block
        self.variant, self.length = variant, length
        self.metrics = {}
        self.text = []

    def metric(self, section, name):
        value = self.metrics.get((section, name))
        return None if value is None else number(value)

    def stall(self):
        """The top stall reason ncu names: (reason, share %, of cycles)."""
        match = STALL.search(" ".join(self.text))
        if not match:
            return None
        reason = " ".join(match["reason"].split())
        for phrase, short in STALL_NAMES:
            if phrase in reason:
                reason = short
                break
        return reason, float(match["share"]), float(match["total"])

    def shape(self):
        """The bench name's (B, query heads, KV heads, head_dim), or None."""
        match = SHAPE.search(self.variant or "")
        return None if not match else tuple(
            int(match[key]) for key in ("B", "Q", "KV", "D"))

    def cache_elements(self):
        """Key and value elements a call reads, from the bench name's
        shape and the row's S (None when the name has no shape)."""
        shape = self.shape()
        if not shape or not self.length:
            return None
        batch, _, kv_heads, head_dim = shape
        return batch * self.length * kv_heads * head_dim * 2


def parse(text):
    """The kernels of one ncu text report, in the order printed."""
    kernels = []
    variant, length = None, None
    kernel, section, rules = None, None, 0
    for line in text.splitlines():
        row = BENCH_ROW.search(line)
        if row:
            variant, length = row["name"], int(row["S"])
            continue
        header = KERNEL_HEADER.match(line)
        if header:
            kernel = Kernel(header["name"], header["grid"], header["block"],
                            variant, length)
            kernels.append(kernel)
            section, rules = None, 0
            continue
        if kernel is None or not line.strip():
            continue
        if not line.startswith("    "):  # the program's output or ncu's
            kernel, section = None, None
            continue
        heading = SECTION_HEADER.match(line)
        if heading:
            section, rules = heading["name"], 0
            continue
        if TABLE_RULE.match(line):
            rules += 1
            continue
        # A section's table: dashed line, header, dashed line, rows, dashed
        # line (later dashed lines separate ncu's OPT/INF paragraphs).
        if section and rules in (1, 2):
            # "Metric Name  [Unit]  Value", columns two or more spaces apart.
            parts = re.split(r"\s{2,}", line.strip())
            if len(parts) >= 2 and parts[0] != "Metric Name":
                kernel.metrics[(section, parts[0])] = parts[-1]
        else:
            kernel.text.append(line.strip())
    return kernels


def target(kernel):
    """The target of issue 5 whose gap a split kernel's profile explains,
    from its batch and S ("" when none is at that shape)."""
    shape = kernel.shape()
    if not shape or "split" not in kernel.name or not kernel.length:
        return ""
    batch, length = shape[0], kernel.length
    if batch >= 8 and length >= 16384:
        # Batch 32 runs the same kernel on a grid four times batch 8's.
        return "≥ 85 % of peak at B ≥ 8, S ≥ 16k; speedups at B = 32, S = 32k"
    if batch == 1 and length == 32768:
        return "≥ 70 % of peak at B = 1, S = 32k"
    if batch == 1 and length == 4096:
        return "K2/V2 g32 ≥ 9× SDPA at B = 1, S = 4k"
    return ""


def fmt(value, digits=1):
    return "" if value is None else f"{value:.{digits}f}"


def row(kernel):
    sol, sched = "GPU Speed Of Light Throughput", "Scheduler Statistics"
    occupancy, launch = "Occupancy", "Launch Statistics"
    memory, instr = "Memory Workload Analysis", "Instruction Statistics"
    executed = kernel.metric(instr, "Executed Instructions")
    per_element = ""
    elements = kernel.cache_elements()
    if executed is not None and elements and "split" in kernel.name:
        per_element = fmt(executed * 32 / elements, 2)
    stall = kernel.stall()
    stall_text = f"{stall[0]}: {stall[1]:.0f} % of {stall[2]:.1f}" if stall else ""
    def pair(a, b, digits=1):
        if a is None and b is None:
            return ""
        return f"{fmt(a, digits)} / {fmt(b, digits)}"

    return [
        kernel.variant or "?", str(kernel.length or "?"), kernel.name,
        f"({kernel.grid})x({kernel.block})",
        fmt(kernel.metric(sol, "Duration"), 2),
        fmt(kernel.metric(sol, "DRAM Throughput")),
        fmt(kernel.metric(memory, "L1/TEX Hit Rate")),
        fmt(kernel.metric(memory, "L2 Hit Rate")),
        fmt(kernel.metric(sched, "Issued Warp Per Scheduler"), 2),
        fmt(None if executed is None else executed / 1e6, 2),
        per_element,
        fmt(kernel.metric(launch, "Registers Per Thread"), 0),
        pair(kernel.metric(occupancy, "Theoretical Occupancy"),
             kernel.metric(occupancy, "Achieved Occupancy")),
        pair(kernel.metric(sched, "Active Warps Per Scheduler"),
             kernel.metric(sched, "Eligible Warps Per Scheduler"), 2),
        stall_text,
        target(kernel),
    ]


COLUMNS = ["variant", "S", "kernel", "grid x block", "us", "DRAM %",
           "L1 hit %", "L2 hit %", "issued warps / scheduler / cycle",
           "warp instructions (M)", "lane-instructions / cache element",
           "registers", "occupancy theor. / achieved %",
           "warps / scheduler active / eligible",
           "top stall: % of cycles between issues", "explains the target"]


def render(reports, heading):
    lines = [heading, "",
             "From `benchmarks/gpu/ncu_summary.py` over the Nsight Compute "
             "reports (`ncu-*.txt`). DRAM % is of ncu's own peak for the "
             "device; an empty cell is a metric the report does not have."]
    rows = [row(kernel) for _, kernels in reports for kernel in kernels]
    if rows:
        lines += ["", "| " + " | ".join(COLUMNS) + " |",
                  "|" + " --- |" * len(COLUMNS)]
        lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    for path, kernels in reports:
        if not kernels:
            lines += ["", f"No kernel profiled in `{os.path.basename(path)}` "
                      "(ncu printed no kernel section)."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", metavar="REPORT")
    parser.add_argument("--out", help="write here (default: stdout)")
    parser.add_argument("--heading", default="## Profile (Nsight Compute)")
    args = parser.parse_args(argv)
    reports = []
    for path in args.reports:
        try:
            with open(path, encoding="utf-8", errors="replace") as report:
                reports.append((path, parse(report.read())))
        except OSError as error:
            print(f"ncu_summary: cannot read {path}: {error.strerror}",
                  file=sys.stderr)
            return 1
    text = render(reports, args.heading)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
