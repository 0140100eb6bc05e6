"""Compares kvc_attention_bench runs of several kernel builds, row by row.

Each JSON is one `kvc_attention_bench --json` run over the same rows (same
encodings, batch sizes and S) of a differently built artifact directory
(scripts/gpu_bench_configs.sh: split sizes, occupancy, ...). Prints one
markdown table: per (encoding, B, S), the median GPU us of each build and
its speedup over the first build (first GPU us / its GPU us).

usage: compare_configs.py LABEL=RUN.json [LABEL=RUN.json ...]
"""
import json
import sys


def load(argument):
    label, sep, path = argument.partition("=")
    if not sep or not label or not path:
        sys.exit(f"compare_configs: expected LABEL=RUN.json, got '{argument}'")
    try:
        with open(path) as f:
            rows = json.load(f)["rows"]
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"compare_configs: cannot read {path}: {e}")
    # Rows are matched by (encoding, B, S): names differ between builds
    # (split-tokens adds _s<N>).
    return label, {(r["encoding"], r["batch"], r["S"]): r for r in rows}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    runs = [load(a) for a in sys.argv[1:]]
    keys = []
    for _, rows in runs:
        keys += [k for k in rows if k not in keys]
    head = ["encoding", "B", "S"] + [f"{label} GPU us" for label, _ in runs]
    head += [f"{label} speedup" for label, _ in runs[1:]]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for key in keys:
        times = []
        for _, rows in runs:
            row = rows.get(key)
            ok = row is not None and row["ok"]
            times.append(row["gpu_us_median"] if ok else None)
        cells = [key[0], str(key[1]), str(key[2])]
        cells += [f"{t:.1f}" if t is not None else "-" for t in times]
        base = times[0]
        for t in times[1:]:
            cells.append(f"{base / t:.2f}x" if base and t else "-")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
