#!/usr/bin/env python3
"""Compiles the PTX of kvc's generated GPU kernels with ptxas and checks it.

usage: ptxas_check.py MODULE.mlir [--arch sm_90a] [--ptxas PATH] [--ptx-out F]
                       [--require-16b-loads REGEX]

MODULE.mlir is the output of `kvc-opt --kvc-gpu-pipeline="format=isa ..."`:
each `gpu.binary` holds the PTX of a gpu.module as its `assembly`. Every
kernel is compiled with `ptxas -v -arch=ARCH`; the script prints one row per
kernel (registers, shared memory, stack frame, spill stores/loads, 16-byte
global loads in its PTX) and fails when any kernel spills, has a stack frame,
or when the PTX touches local memory (`.local`, `ld.local`, `st.local`);
with --require-16b-loads, also when a kernel whose name matches REGEX has
no 16-byte global load (`ld.global.v4.b32`, `.v2.b64`, ...). --ptx-out
writes the PTX (for FileCheck). Exit status: 0 clean, 1 a check failed,
2 bad input.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ASSEMBLY = re.compile(r'assembly = "((?:[^"\\]|\\.)*)"')
ENTRY = re.compile(r"Compiling entry function '([^']+)'")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, "
                   r"(\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers")
SMEM = re.compile(r"(\d+) bytes smem")
PTX_ENTRY = re.compile(r"\.entry\s+(\w+)\s*\(")
WIDE_LOAD = re.compile(r"\bld\.global(?:\.nc)?\.(?:v4\.(?:b|u|s|f)32|"
                       r"v2\.(?:b|u|s|f)64)\b")


def wide_loads(ptx):
    """16-byte global loads per kernel of a PTX text."""
    starts = [(m.group(1), m.start()) for m in PTX_ENTRY.finditer(ptx)]
    counts = {}
    for i, (name, start) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else len(ptx)
        counts[name] = len(WIDE_LOAD.findall(ptx, start, end))
    return counts


def unescape(text):
    """MLIR prints non-printable string bytes as \\XX (hex)."""
    out, i = bytearray(), 0
    while i < len(text):
        if text[i] == "\\" and i + 2 < len(text) + 1:
            nxt = text[i + 1:i + 3]
            if re.fullmatch(r"[0-9A-Fa-f]{2}", nxt):
                out.append(int(nxt, 16))
                i += 3
                continue
            out.extend(text[i + 1].encode())
            i += 2
            continue
        out.extend(text[i].encode())
        i += 1
    return out.decode()


def ptxas_info(ptxas, arch, ptx):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernels.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        run = subprocess.run([ptxas, "-v", f"-arch={arch}", path, "-o",
                              os.path.join(tmp, "kernels.cubin")],
                             capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"ptxas failed:\n{run.stderr}")
    kernels, current = {}, None
    for line in run.stderr.splitlines():
        if m := ENTRY.search(line):
            current = m.group(1)
            kernels[current] = {}
        elif current and (m := FRAME.search(line)):
            kernels[current].update(stack=int(m.group(1)),
                                    spill_stores=int(m.group(2)),
                                    spill_loads=int(m.group(3)))
        elif current and (m := USED.search(line)):
            smem = SMEM.search(line)
            kernels[current].update(registers=int(m.group(1)),
                                    smem=int(smem.group(1)) if smem else 0)
    return kernels


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("module")
    p.add_argument("--arch", default="sm_90a")
    p.add_argument("--ptxas", default=None)
    p.add_argument("--ptx-out", default=None)
    p.add_argument("--require-16b-loads", default=None, metavar="REGEX",
                   help="kernels whose names match must load 16 bytes at "
                        "a time somewhere")
    a = p.parse_args()
    try:
        require_wide = re.compile(a.require_16b_loads) \
            if a.require_16b_loads else None
    except re.error as e:
        print(f"ptxas_check: bad --require-16b-loads: {e}", file=sys.stderr)
        return 2
    ptxas = a.ptxas or shutil.which("ptxas") or "/usr/local/cuda/bin/ptxas"
    if not os.path.exists(ptxas) and not shutil.which(ptxas):
        print(f"ptxas_check: no ptxas at {ptxas}", file=sys.stderr)
        return 2
    try:
        text = open(a.module).read()
    except OSError as e:
        print(f"ptxas_check: {e}", file=sys.stderr)
        return 2
    blobs = [unescape(m.group(1)) for m in ASSEMBLY.finditer(text)]
    if not blobs:
        print(f"ptxas_check: {a.module} has no gpu.binary with PTX "
              "(run kvc-opt --kvc-gpu-pipeline=\"format=isa\")",
              file=sys.stderr)
        return 2
    ptx = "\n".join(blobs)
    if a.ptx_out:
        with open(a.ptx_out, "w") as f:
            f.write(ptx)
    failures = []
    if re.search(r"\.local\b|ld\.local|st\.local", ptx):
        failures.append("the PTX uses local memory")
    wide = wide_loads(ptx)
    rows = []
    for blob in blobs:
        try:
            rows.extend(ptxas_info(ptxas, a.arch, blob).items())
        except RuntimeError as e:
            print(f"ptxas_check: {e}", file=sys.stderr)
            return 1
    print(f"| kernel ({a.arch}) | registers | smem B | stack B | "
          "spill st/ld B | 16-B loads |")
    print("|---|---|---|---|---|---|")
    for name, info in rows:
        print(f"| {name} | {info.get('registers')} | {info.get('smem', 0)} | "
              f"{info.get('stack')} | {info.get('spill_stores')}/"
              f"{info.get('spill_loads')} | {wide.get(name, 0)} |")
        if info.get("stack") or info.get("spill_stores") or \
                info.get("spill_loads"):
            failures.append(f"{name} spills or has a stack frame")
        if require_wide and require_wide.search(name) and \
                not wide.get(name, 0):
            failures.append(f"{name} has no 16-byte global load")
    regs = [info.get("registers", 0) for _, info in rows]
    print(f"ptxas_check: {len(rows)} kernels, registers {min(regs)}..{max(regs)}, "
          f"{len(failures)} failures")
    for failure in failures:
        print(f"ptxas_check: FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
