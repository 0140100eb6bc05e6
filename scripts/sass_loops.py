#!/usr/bin/env python3
"""Lists the loops of a kernel's SASS with their instruction counts: a
static view of what each loop iteration issues (docs/gpu-tensor-cores.md's
instructions per key element).

    sass_loops.py KERNELS.ptx --kernel attend0_split0 [--arch sm_90a]
                  [--ptxas PATH] [--nvdisasm PATH]

Compiles the PTX with ptxas, disassembles the cubin with nvdisasm (CUDA
13's, or the nvidia-cuda-nvdisasm wheel's: pass --nvdisasm) and prints,
for each backward branch of the kernel, the address range it closes, the
number of instructions in that range (inner loops and untaken branches
included) and the most frequent opcodes. The PTX comes from
`kvc-opt --kvc-gpu-pipeline="format=isa"` through
`scripts/ptxas_check.py --ptx-out`.
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile


def kernel_section(sass, kernel):
    """`kernel`'s section of nvdisasm's output."""
    start = sass.find(f".text.{kernel}:")
    if start < 0:
        raise SystemExit(f"sass_loops: no kernel '{kernel}' in the cubin")
    section = sass[start:]
    end = section.find(".section", 1)
    return section[:end] if end > 0 else section


def kernel_size(sass, kernel):
    """The number of instructions in `kernel` (its padding NOPs after the
    final branch included, as nvdisasm lists them)."""
    return len(re.findall(r"/\*[0-9a-f]{4,}\*/\s+[^;]*;",
                          kernel_section(sass, kernel)))


def loops(sass, kernel):
    """(first address, last address, opcodes) of every backward branch's
    range in `kernel`'s section of nvdisasm's output."""
    section = kernel_section(sass, kernel)
    labels, instructions, pending = {}, [], []
    for line in section.splitlines():
        label = re.match(r"\s*\.(L_x_\d+):", line)
        if label:
            pending.append(label.group(1))
            continue
        m = re.search(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", line)
        if not m:
            continue
        address = int(m.group(1), 16)
        for name in pending:
            labels[name] = address
        pending = []
        instructions.append((address, m.group(2).strip()))

    def opcode(text):
        words = text.split()
        if words[0].startswith("@"):
            words = words[1:]
        return words[0].split(".")[0]

    found = []
    for address, text in instructions:
        branch = re.search(r"\bBRA\b.*?\.(L_x_\d+)", text)
        if branch and labels.get(branch.group(1), address + 1) <= address:
            first = labels[branch.group(1)]
            body = [opcode(t) for a, t in instructions if first <= a <= address]
            found.append((first, address, body))
    return found


def add_tool_arguments(parser):
    """--arch, --ptxas and --nvdisasm (defaults under CUDA_HOME)."""
    parser.add_argument("--arch", default="sm_90a")
    cuda = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    parser.add_argument("--ptxas", default=os.path.join(cuda, "bin", "ptxas"))
    parser.add_argument("--nvdisasm",
                        default=os.path.join(cuda, "bin", "nvdisasm"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ptx")
    parser.add_argument("--kernel", required=True)
    add_tool_arguments(parser)
    args = parser.parse_args()
    for tool in (args.ptxas, args.nvdisasm):
        if not os.path.exists(tool):
            sys.exit(f"sass_loops: no {tool} (see --ptxas / --nvdisasm)")
    with tempfile.TemporaryDirectory() as tmp:
        cubin = os.path.join(tmp, "kernels.cubin")
        subprocess.run([args.ptxas, f"-arch={args.arch}", args.ptx, "-o",
                        cubin], check=True)
        sass = subprocess.run([args.nvdisasm, "-c", cubin], check=True,
                              capture_output=True, text=True).stdout
    print(f"| loop (addresses) | instructions | most frequent |")
    print("|---|---|---|")
    for first, last, body in loops(sass, args.kernel):
        common = ", ".join(f"{op} {n}" for op, n in
                           collections.Counter(body).most_common(8))
        print(f"| {first:#06x}-{last:#06x} | {len(body)} | {common} |")


if __name__ == "__main__":
    main()
