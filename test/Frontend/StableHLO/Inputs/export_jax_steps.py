#!/usr/bin/env python3
"""Exports small JAX functions as generic StableHLO with a CPU reference.

  export_jax_steps.py OUT_DIR

For each function NAME writes OUT_DIR/NAME.mlir (generic form, what JAX's
`lowered.compiler_ir('stablehlo')` prints with print_generic_op_form=True)
and OUT_DIR/NAME.npz with its arguments `arg<i>` (in @main's order) and the
results `result<i>` of running it with JAX on the CPU.

- scatter_decode: a 2-layer GQA decode step whose caches
  [layers, B, kv_heads, S, D] are updated per sequence with
  `cache.at[l, b, :, pos].set(new)` (a stablehlo.scatter) and read whole
  under the mask `iota <= pos[b]`.
- mixed_types: bf16 matmul with f32 accumulation, bf16 math, i1 logic,
  i32 arithmetic, gather (take), dynamic_slice and a max-reduction.
"""
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

LAYERS, B, HQ, HKV, S, D = 2, 3, 4, 2, 16, 8
HIDDEN = HQ * D


def scatter_decode(x, wq, wk, wv, wo, k_cache, v_cache, pos):
    batch = jnp.arange(B)
    for layer in range(LAYERS):
        q = (x @ wq[layer]).reshape(B, HQ, D)
        k = (x @ wk[layer]).reshape(B, HKV, D)
        v = (x @ wv[layer]).reshape(B, HKV, D)
        k_cache = k_cache.at[layer, batch, :, pos].set(k)
        v_cache = v_cache.at[layer, batch, :, pos].set(v)
        keys = jnp.repeat(k_cache[layer], HQ // HKV, axis=1)
        values = jnp.repeat(v_cache[layer], HQ // HKV, axis=1)
        scores = jnp.einsum("bhd,bhsd->bhs", q, keys) / np.sqrt(D)
        mask = jnp.arange(S)[None, :] <= pos[:, None]
        scores = jnp.where(mask[:, None, :], scores, -jnp.inf)
        probs = jax.nn.softmax(scores, axis=-1)
        out = jnp.einsum("bhs,bhsd->bhd", probs, values).reshape(B, HIDDEN)
        x = x + out @ wo[layer]
    return x, k_cache, v_cache


def scatter_decode_args(rng):
    f32 = np.float32
    return (rng.standard_normal((B, HIDDEN)).astype(f32),
            (rng.standard_normal((LAYERS, HIDDEN, HQ * D)) / 6).astype(f32),
            (rng.standard_normal((LAYERS, HIDDEN, HKV * D)) / 6).astype(f32),
            (rng.standard_normal((LAYERS, HIDDEN, HKV * D)) / 6).astype(f32),
            (rng.standard_normal((LAYERS, HQ * D, HIDDEN)) / 6).astype(f32),
            rng.standard_normal((LAYERS, B, HKV, S, D)).astype(f32),
            rng.standard_normal((LAYERS, B, HKV, S, D)).astype(f32),
            np.array([3, 15, 0], np.int32))


def mixed_types(a, b, table, ids, start, flags):
    a, b = a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)      # f32 -> bf16
    prod = jnp.dot(a, b, preferred_element_type=jnp.float32)   # bf16 x bf16 -> f32
    act = jnp.exp(a * jnp.bfloat16(0.5))                       # bf16 math
    rows = jnp.take(table, ids, axis=0)                        # gather
    window = jax.lax.dynamic_slice(table, (start, 1), (2, 3))  # dynamic_slice
    keep = jnp.logical_and(flags, ids % 2 == 0)                # i1, i32
    picked = jnp.where(keep[:, None], rows, -rows)
    peak = jnp.max(prod, axis=1)
    return (prod, act.astype(jnp.float32), picked, window,
            peak, (ids * 3 - 1) // 2)


def mixed_types_args(rng):
    return (rng.standard_normal((4, 8)).astype(np.float32),
            rng.standard_normal((8, 5)).astype(np.float32),
            rng.standard_normal((6, 5)).astype(np.float32),
            np.array([5, 0, 2, 3], np.int32),
            np.array(9, np.int32),   # out of range: clamped to 4 (0-d)
            np.array([True, True, False, True]))


def export(name, fn, args, out_dir):
    lowered = jax.jit(fn).lower(*args)
    text = lowered.compiler_ir("stablehlo").operation.get_asm(
        print_generic_op_form=True)
    with open(os.path.join(out_dir, name + ".mlir"), "w") as f:
        f.write(text)
    results = jax.jit(fn)(*args)
    arrays = {f"arg{i}": np.asarray(a) for i, a in enumerate(args)}
    for i, r in enumerate(results):
        arrays[f"result{i}"] = np.asarray(r)
    np.savez(os.path.join(out_dir, name + ".npz"), **arrays)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    jax.config.update("jax_default_matmul_precision", "highest")
    rng = np.random.default_rng(0)
    export("scatter_decode", scatter_decode, scatter_decode_args(rng), out_dir)
    export("mixed_types", mixed_types, mixed_types_args(rng), out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
