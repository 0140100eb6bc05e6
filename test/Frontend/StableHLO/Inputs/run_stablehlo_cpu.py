#!/usr/bin/env python3
"""Runs a StableHLO module with JAX's CPU backend (XLA) as a reference.

  run_stablehlo_cpu.py MODULE.mlir IN.npz OUT.npz

Calls @main with IN.npz's `arg<i>` and writes them and the results
`result<i>` to OUT.npz. XLA on the CPU multiplies f32 in f32, so this is the
reference kvc's CPU code should match to f32 rounding.
"""
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.extend.backend  # noqa: E402
import numpy as np  # noqa: E402
from jax._src.lib import xla_client  # noqa: E402


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    module, inputs, output = sys.argv[1:]
    text = open(module, encoding="utf-8").read()
    ref = np.load(inputs)
    count = sum(1 for key in ref.files if key.startswith("arg"))
    args = [ref[f"arg{i}"] for i in range(count)]
    backend = jax.extend.backend.get_backend("cpu")
    device = backend.devices()[0]
    executable = backend.compile_and_load(text, backend.devices()[:1],
                                          xla_client.CompileOptions())
    results = executable.execute([jax.device_put(a, device) for a in args])
    arrays = {f"arg{i}": a for i, a in enumerate(args)}
    arrays.update({f"result{i}": np.asarray(r) for i, r in enumerate(results)})
    np.savez(output, **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
