#!/usr/bin/env python3
"""Prints the static instruction counts of the GPU benchmark's split
kernels with both tensor-core passes: the interior loops' SASS
instructions per key and per value element (docs/gpu-tensor-cores.md's tables).

    sass_bench_table.py [--batch 8] [--kvc-opt build/bin/kvc-opt]
                        [--l2-prefetch none|lines|bulk] [--key-stages N]
                        [--value-stages N] [--mma-codes subnormal|normal]
                        [--arch sm_90a] [--ptxas PATH] [--nvdisasm PATH]

For each compressed encoding of benchmarks/gpu/bench_variants.py at the
batch, compiles the benchmark function alone with
`kvc-opt --kvc-gpu-pipeline="format=isa page-tokens=P key-product=mma
value-product=mma l2-prefetch=... key-stages=... value-stages=...
mma-codes=..."`,
assembles the split
kernel (scripts/ptxas_check.py:
registers, spills) and finds its loops in nvdisasm's output
(scripts/sass_loops.py). The loops holding HMMA are, in address order, the
key pass's edge and interior unit loops and the value pass's interior and
edge tile loops; an interior key unit is head_dim key elements a lane (2
tiles x 2 rows x head_dim / 4 channels), an interior value block head_dim /
2 (4 tokens x head_dim / 8 channels). The last column counts the whole
split kernel's instructions (each runs at most a few times a block outside
the loops). A static count, not a timing: what one iteration issues,
untaken branches included. Encodings kvc-opt rejects with the options (too
many stages for the chip's shared memory, say) get a row saying so.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import sass_loops  # noqa: E402


def run(command, allow_failure=False, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0 and allow_failure:
        return None
    if result.returncode != 0:
        sys.exit(f"sass_bench_table: {' '.join(command)} failed:\n"
                 f"{result.stdout}{result.stderr}")
    return result.stdout


def function_text(module, name):
    """The text of `func.func @name` in `module`: from its line to the
    first line that is a lone closing brace."""
    lines = module.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"func.func @{name}("):
            for j in range(i, len(lines)):
                if lines[j] == "}":
                    return "\n".join(lines[i:j + 1]) + "\n"
    sys.exit(f"sass_bench_table: no function @{name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--kvc-opt",
                        default=os.path.join(ROOT, "build", "bin", "kvc-opt"))
    parser.add_argument("--l2-prefetch", default="none",
                        choices=("none", "lines", "bulk"),
                        help="kvc-gpu-pipeline's l2-prefetch")
    parser.add_argument("--key-stages", type=int, default=0,
                        help="kvc-gpu-pipeline's key-stages")
    parser.add_argument("--value-stages", type=int, default=0,
                        help="kvc-gpu-pipeline's value-stages")
    parser.add_argument("--mma-codes", default="subnormal",
                        choices=("subnormal", "normal"),
                        help="kvc-gpu-pipeline's mma-codes")
    sass_loops.add_tool_arguments(parser)
    args = parser.parse_args()
    for tool in (args.kvc_opt, args.ptxas, args.nvdisasm):
        if not os.path.exists(tool):
            sys.exit(f"sass_bench_table: no {tool} (see --help)")

    with tempfile.TemporaryDirectory() as tmp:
        run([sys.executable,
             os.path.join(ROOT, "benchmarks", "gpu", "bench_variants.py"),
             tmp])
        with open(os.path.join(tmp, "bench_manifest.txt")) as f:
            manifest = [line.split() for line in f if line.strip()]
        modules = {}
        for name in os.listdir(tmp):
            if name.endswith("_mma_vmma.mlir"):
                with open(os.path.join(tmp, name)) as f:
                    modules[name] = f.read()

        print(f"| kernel (B {args.batch}) | registers | interior key loop "
              "| per key element | interior value loop | per value element "
              "| keys and values, per element | split kernel |")
        print("|---|---|---|---|---|---|---|---|")
        for entry in manifest:
            name, batch, _, _, head_dim, key, value = entry[:7]
            page_tokens = int(entry[8])
            if int(batch) != args.batch or "fp16" in (key, value):
                continue
            module = next((text for text in modules.values()
                           if f"func.func @{name}_mma_vmma(" in text), None)
            if module is None:
                continue
            source = os.path.join(tmp, "one.mlir")
            with open(source, "w") as f:
                f.write(function_text(module, f"{name}_mma_vmma"))
            isa = os.path.join(tmp, "one.isa.mlir")
            if run([args.kvc_opt, source,
                    f"--kvc-gpu-pipeline=format=isa chip={args.arch} "
                    f"page-tokens={page_tokens} key-product=mma "
                    f"value-product=mma l2-prefetch={args.l2_prefetch} "
                    f"key-stages={args.key_stages} "
                    f"value-stages={args.value_stages} "
                    f"mma-codes={args.mma_codes}",
                    "-o", isa], allow_failure=True) is None:
                print(f"| {name} | kvc-opt rejects these options "
                      "| | | | | | |")
                continue
            ptx = os.path.join(tmp, "one.ptx")
            report = run([sys.executable,
                          os.path.join(ROOT, "scripts", "ptxas_check.py"),
                          isa, "--arch", args.arch, "--ptxas", args.ptxas,
                          "--ptx-out", ptx])
            row = re.search(r"\|\s*(attend\d+_split0)\s*\|\s*(\d+)\s*\|",
                            report)
            if not row:
                sys.exit(f"sass_bench_table: no split kernel for {name}")
            kernel, registers = row.group(1), row.group(2)
            cubin = os.path.join(tmp, "one.cubin")
            run([args.ptxas, f"-arch={args.arch}", ptx, "-o", cubin])
            sass = run([args.nvdisasm, "-c", cubin])
            products = [body for _, _, body in sass_loops.loops(sass, kernel)
                        if "HMMA" in body]
            if len(products) != 4:
                sys.exit(f"sass_bench_table: {name}: {len(products)} loops "
                         "with HMMA, expected the key and value passes' 4")
            d = int(head_dim)
            keys, values = len(products[1]), len(products[2])
            total = sass_loops.kernel_size(sass, kernel)
            print(f"| {name} | {registers} | {keys} | {keys / d:.2f} "
                  f"| {values} | {values / (d / 2):.2f} "
                  f"| {keys / d + values / (d / 2):.2f} | {total} |")


if __name__ == "__main__":
    main()
