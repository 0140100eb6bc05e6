#!/usr/bin/env python3
"""Compile-time benchmark: `kvc-opt --kvc-compress` on decode steps of
8, 16, 32 and 80 layers (Llama-3-8B shapes; 80 layers is Llama-3-70B),
plus a 128-layer Llama-3-8B-shaped step to show the growth is linear.

Usage: benchmarks/compile/compile_bench.py [--build build] [--repeats 5]

Generates the inputs with scripts/gen_examples.py, runs the pipeline
`--repeats` times per model (the IR is written to /dev/null, the report is
suppressed) and prints a table last: median and min wall time, time per
layer, and the ratio to the 8-layer time per layer (linear growth = 1.0).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    kvc_opt = os.path.join(args.build, "bin", "kvc-opt")
    configs = [("llama3-8b", 8), ("llama3-8b", 16), ("llama3-8b", 32),
               ("llama3-70b", 80), ("llama3-8b", 128)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, layers in configs:
            out = os.path.join(tmp, f"{layers}")
            os.makedirs(out)
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_examples.py"),
                            "--out", out, "--models", model, "--layers", str(layers)],
                           check=True)
            path = os.path.join(out, f"{model}.mlir")
            size = os.path.getsize(path)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                result = subprocess.run(
                    [kvc_opt, path, "--kvc-compress=report=none", "-o", os.devnull],
                    capture_output=True, text=True)
                times.append(time.perf_counter() - start)
                if result.returncode != 0:
                    sys.exit(f"kvc-opt failed on {path}:\n{result.stderr}")
            check = subprocess.run([kvc_opt, path, "--kvc-compress=report=none"],
                                   capture_output=True, text=True, check=True).stdout
            raised = check.count("kvc.attend ")
            if raised != layers:
                sys.exit(f"{path}: raised {raised} of {layers} attention layers")
            rows.append((model, layers, size, statistics.median(times), min(times)))

    base = rows[0][3] / rows[0][1]
    print(f"kvc-opt --kvc-compress, {args.repeats} runs each, {os.cpu_count()} cores")
    print(f"{'model':<12} {'layers':>6} {'IR KiB':>8} {'median s':>9} {'min s':>7} "
          f"{'ms/layer':>9} {'vs 8-layer':>10}")
    for model, layers, size, median, best in rows:
        per_layer = median / layers
        print(f"{model:<12} {layers:>6} {size / 1024:>8.0f} {median:>9.3f} {best:>7.3f} "
              f"{per_layer * 1000:>9.2f} {per_layer / base:>10.2f}")


if __name__ == "__main__":
    main()
