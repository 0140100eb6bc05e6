"""The baseline of the GPU decode-attention benchmark (issue 5): PyTorch's
`scaled_dot_product_attention(q, k, v, enable_gqa=True)` over an fp16
cache, at the shapes of attention_bench.cpp (Llama-3-8B attention: q
[B, 32, 1, 128], k and v [B, 8, S, 128], fp16 on the GPU; no mask: the one
query token attends to every cached token).

Timed as attention_bench.cpp times kvc's calls: warm-up calls, then N calls
each behind a memset of twice the L2 size on the same stream (so the cache
comes from HBM), between CUDA events; the median, p10, p90 and minimum.
Bytes read are q + K + V + the output (fp16). Prints a markdown table and,
with --json, writes every row (rewritten after each row).

usage: sdpa_baseline.py [--batches 1 8 32] [--reps N] [--warmup N]
                        [--peak-tbps X] [--json PATH] [--budget SECONDS]
                        [S ...]

S defaults to 1024 4096 16384 32768. Exits 77 without PyTorch or a CUDA
device, 1 when a row failed.
"""
import argparse
import json
import math
import sys
import time

QUERY_HEADS = 32
KV_HEADS = 8
HEAD_DIM = 128


def percentile(values, p):
    """Linear interpolation between the closest ranks (as the C++ side)."""
    v = sorted(values)
    at = p * (len(v) - 1)
    lo = int(at)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (at - lo)


def run_row(torch, F, batch, S, args, flush):
    q = torch.randn(batch, QUERY_HEADS, 1, HEAD_DIM, dtype=torch.float16,
                    device="cuda")
    k = torch.randn(batch, KV_HEADS, S, HEAD_DIM, dtype=torch.float16,
                    device="cuda")
    v = torch.randn_like(k)

    def call():
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)

    for _ in range(args.warmup):
        out = call()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(args.reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(args.reps)]
    for i in range(args.reps):
        flush.fill_(i & 0xFF)
        starts[i].record()
        out = call()
        ends[i].record()
    torch.cuda.synchronize()
    times = [s.elapsed_time(e) * 1000.0 for s, e in zip(starts, ends)]
    finite = bool(torch.isfinite(out).all().item())
    element = 2  # fp16
    nbytes = (q.numel() + k.numel() + v.numel() + out.numel()) * element
    del q, k, v, out
    median = percentile(times, 0.5)
    tbps = nbytes / (median * 1e-6) / 1e12
    return {
        "batch": batch, "S": S, "ok": finite, "ran": True,
        "problem": "" if finite else "the output is not finite",
        "gpu_us_median": median, "gpu_us_p10": percentile(times, 0.1),
        "gpu_us_p90": percentile(times, 0.9), "gpu_us_min": min(times),
        "bytes": nbytes, "tbps": tbps,
        "percent_of_peak": 100.0 * tbps / args.peak_tbps,
        "timed_calls": len(times),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lengths", nargs="*", type=int,
                        default=[1024, 4096, 16384, 32768])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--peak-tbps", type=float, default=3.35)
    parser.add_argument("--json")
    parser.add_argument("--budget", type=float, default=0,
                        help="start no row after this many seconds")
    args = parser.parse_args()
    if args.reps < 1 or any(s < 1 for s in args.lengths):
        parser.error("reps and lengths must be positive")
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(f"sdpa_baseline: no PyTorch: {e}")
        return 77
    if not torch.cuda.is_available():
        print("sdpa_baseline: no usable CUDA device (torch.cuda.is_available()"
              " is False)")
        return 77
    props = torch.cuda.get_device_properties(0)
    l2 = getattr(props, "L2_cache_size", 0) or 64 << 20
    flush = torch.empty(2 * l2, dtype=torch.uint8, device="cuda")
    header = {
        "command": " ".join([sys.executable] + sys.argv),
        "device": f"{props.name} (sm_{props.major}{props.minor})",
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "timing": "cuda events on torch's current stream",
        "reps": args.reps, "warmup": args.warmup,
        "l2_flush_bytes": 2 * l2, "peak_tbps": args.peak_tbps,
    }
    print(f"device: {header['device']}; torch {torch.__version__}, CUDA "
          f"{torch.version.cuda}; {args.warmup} warm-up and {args.reps} timed "
          f"calls per row; L2 flush {2 * l2 / 1e6:.1f} MB")
    print("| B | S | GPU us (p10-p90) | MB read | TB/s | % peak | result |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    start = time.monotonic()
    failed = 0
    for batch in sorted(set(args.batches)):
        for S in sorted(set(args.lengths)):
            if args.budget and time.monotonic() - start > args.budget:
                row = {"batch": batch, "S": S, "ok": False, "ran": False,
                       "problem": "time budget"}
            else:
                try:
                    row = run_row(torch, F, batch, S, args, flush)
                except Exception as e:  # a failed row, not a failed run
                    row = {"batch": batch, "S": S, "ok": False, "ran": True,
                           "problem": f"{type(e).__name__}: {e}"}
                torch.cuda.empty_cache()
            rows.append(row)
            failed += row["ran"] and not row["ok"]
            nan = math.nan
            print(f"| {batch} | {S} | {row.get('gpu_us_median', nan):.1f} "
                  f"({row.get('gpu_us_p10', nan):.1f}-"
                  f"{row.get('gpu_us_p90', nan):.1f}) | "
                  f"{row.get('bytes', 0) / 1e6:.2f} | "
                  f"{row.get('tbps', nan):.3f} | "
                  f"{row.get('percent_of_peak', nan):.1f} | "
                  f"{'ok' if row['ok'] else 'FAIL' if row['ran'] else 'skipped'}"
                  f"{': ' + row['problem'] if row['problem'] else ''} |",
                  flush=True)
            if args.json:
                with open(args.json, "w") as out:
                    json.dump(dict(header, rows=rows), out, indent=1)
    skipped = sum(not row["ran"] for row in rows)
    print(f"{len(rows) - failed - skipped} ok, {failed} failed, {skipped} "
          f"skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
