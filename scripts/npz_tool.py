#!/usr/bin/env python3
"""Move tensors between numpy .npz references and kvc-run's safetensors files.

  npz_tool.py to-safetensors REF.npz OUT.safetensors [--strip-prefix in:]
      Writes every array of REF.npz (optionally only the keys starting with
      the prefix, which is removed from the names) as a safetensors file.
  npz_tool.py compare GOT.safetensors REF.npz --map result0=out:logits,...
      [--atol 1e-4]
      Prints the max abs error of each mapped pair and exits 1 if any is over
      the tolerance, a name is missing, or shapes differ.

Needs numpy (run it with the project's .venv python).
"""
import argparse
import importlib.util
import os
import sys

import numpy as np

# One implementation of the format: the kvc package's pure-Python module,
# loaded from the source tree so this script works without a build.
_spec = importlib.util.spec_from_file_location(
    "kvc_safetensors", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "python_bindings", "kvc",
                                    "safetensors.py"))
safetensors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(safetensors)


def _to_safetensors(args):
    ref = np.load(args.npz)
    tensors = {}
    for key in ref.files:
        if args.strip_prefix and not key.startswith(args.strip_prefix):
            continue
        tensors[key[len(args.strip_prefix or ""):]] = ref[key]
    safetensors.write(args.out, tensors)
    print(f"wrote {len(tensors)} tensors to {args.out}")
    return 0


def _compare(args):
    got, _ = safetensors.read(args.got)
    ref = np.load(args.npz)
    failed = False
    for pair in args.map.split(","):
        ours, theirs = pair.split("=", 1)
        if ours not in got or theirs not in ref.files:
            print(f"{ours} vs {theirs}: missing")
            failed = True
            continue
        a = got[ours].astype(np.float64)
        b = ref[theirs].astype(np.float64)
        if a.shape != b.shape:
            print(f"{ours} vs {theirs}: shape {a.shape} != {b.shape}")
            failed = True
            continue
        err = float(np.max(np.abs(a - b))) if a.size else 0.0
        if not np.isfinite(a).all():
            err = float("inf")
        ok = err <= args.atol
        failed |= not ok
        print(f"{ours} vs {theirs}: max abs error {err:.3e} "
              f"({'ok' if ok else 'over'} {args.atol:g})")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("to-safetensors")
    p.add_argument("npz")
    p.add_argument("out")
    p.add_argument("--strip-prefix", default="")
    p.set_defaults(run=_to_safetensors)
    p = sub.add_parser("compare")
    p.add_argument("got")
    p.add_argument("npz")
    p.add_argument("--map", required=True)
    p.add_argument("--atol", type=float, default=1e-4)
    p.set_defaults(run=_compare)
    args = parser.parse_args()
    sys.exit(args.run(args))


if __name__ == "__main__":
    main()
