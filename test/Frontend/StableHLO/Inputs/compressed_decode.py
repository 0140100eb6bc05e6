#!/usr/bin/env python3
"""Decode steps of the JAX decode step through kvc with compressed caches.

  compressed_decode.py MODULE.stablehlo.generic.mlir REF.npz PLAIN.mlir
                       COMPRESSED.mlir --steps N [--tolerance T]

PLAIN.mlir and COMPRESSED.mlir are the module raised by kvc (caches as
!kvc.cache arguments) with an fp16 cache and with compressed K/V. Both are
compiled with kvc.compile; their runtime caches are filled with the
reference's first `pos` tokens and then run N steps (pos, pos + 1, ...) on
random tokens. Each step is checked against an oracle: XLA on the CPU runs
the original StableHLO over caches holding what the kvc numerics library says
a compressed cache reads back (kvc.simulate_cache_side over the fp16 history
of keys and values, with the new tokens XLA itself computed). With
--rotate-keys (COMPRESSED.mlir made with kvc-compress{rotate-keys}), the cache
holds K·H and attention reads with q·H: the oracle's keys are then
simulate(K·H)·H, what the cache reads back in the original basis.

The run stops before a step whose new token would be compressed at once (a
residual block flushing with it): XLA attends to its new token in f32 and
cannot be handed the compressed form, so from there on its layer-1 keys and
values would differ from kvc's for reasons of the oracle, not of kvc. (The
runtime's flush itself is checked by the prefill, which compresses whole
blocks, and by kvc-run's step tests.)

Fails unless every compared step is within the tolerance of the oracle
(relative to max |oracle logits|) and compression moves the logits by more
than 10x the tolerance (so the check can tell compressed from plain).
"""
import argparse
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.extend.backend  # noqa: E402
import numpy as np  # noqa: E402
from jax._src.lib import xla_client  # noqa: E402

import kvc  # noqa: E402


def round_fp16(x):
    return np.asarray(x).astype(np.float16).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stablehlo")
    parser.add_argument("ref")
    parser.add_argument("plain")
    parser.add_argument("compressed")
    parser.add_argument("--steps", type=int, default=56)
    parser.add_argument("--tolerance", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rotate-keys", action="store_true",
                        help="the compressed module stores Hadamard-rotated keys")
    args = parser.parse_args()

    ref = np.load(args.ref)
    weights = {f"arg{i}": ref[f"arg{i}"] for i in range(21)}
    start = int(ref["arg22"])
    keys, values = ref["arg23"], ref["arg24"]  # [L, B, H, T, D]
    layers, batch, kv_heads, slots, head_dim = keys.shape
    if start + args.steps > slots:
        sys.exit(f"error: {args.steps} steps from {start} overrun the "
                 f"{slots} cache slots")

    plain = kvc.compile(open(args.plain).read(), entry="main")
    compressed = kvc.compile(open(args.compressed).read(), entry="main")
    cache_args = [a for a in compressed.arguments if a["kind"] == "cache"]
    spec = cache_args[0]
    if spec["rotated_keys"] != args.rotate_keys:
        sys.exit("error: --rotate-keys does not match the compressed module")
    residual = spec["residual"]
    print(f"kvc: {len(cache_args)} cache layers, key {spec['key']}, value "
          f"{spec['value']}, residual {residual}"
          + (", keys rotated" if args.rotate_keys else ""))

    def start_cache(function):
        cache = function.new_cache(max_sequences=batch, max_tokens=slots)
        seqs = [cache.new_sequence() for _ in range(batch)]
        for arg in function.arguments:
            if arg["kind"] != "cache":
                continue
            layer = arg["layer"]
            for b, seq in enumerate(seqs):
                k = keys[layer, b, :, :start]
                # The cache holds what the compiled appends store.
                if arg["rotated_keys"]:
                    k = kvc.hadamard_rotate(k)
                cache.append(seq, layer, k, values[layer, b, :, :start])
        return cache, seqs

    plain_cache, plain_seqs = start_cache(plain)
    comp_cache, comp_seqs = start_cache(compressed)

    # The oracle's history: the keys/values of every token so far, as
    # appended (the runtime rounds them to fp16 when it stores them).
    history_k = keys[:, :, :, :start]
    history_v = values[:, :, :, :start]
    backend = jax.extend.backend.get_backend("cpu")
    device = backend.devices()[0]
    xla = backend.compile_and_load(open(args.stablehlo).read(),
                                   backend.devices()[:1],
                                   xla_client.CompileOptions())

    def simulated(history, encoding, rotate=False):
        out = np.zeros((layers, batch, kv_heads, slots, head_dim), np.float32)
        n = history.shape[3]
        for l in range(layers):
            for b in range(batch):
                x = history[l, b]
                if rotate:
                    x = kvc.hadamard_rotate(x)
                read = kvc.simulate_cache_side(
                    round_fp16(np.ascontiguousarray(x)), encoding, residual)
                out[l, b, :, :n] = kvc.hadamard_rotate(read) if rotate else read
        return out

    rng = np.random.default_rng(args.seed)
    worst = shift = 0.0
    compared = 0
    for step in range(args.steps):
        pos = start + step
        if (pos + 1) % residual == 0:
            sys.exit(f"error: step {step} (pos {pos}) would flush a residual "
                     f"block with its new token; run fewer steps")
        tokens = rng.integers(0, 256, size=batch).astype(np.int32)
        inputs = dict(weights, arg21=tokens, arg22=np.array(pos, np.int32))
        got = compressed(inputs, cache=comp_cache, sequences=comp_seqs)["result0"]
        got_plain = plain(inputs, cache=plain_cache,
                          sequences=plain_seqs)["result0"]
        xla_args = [weights[f"arg{i}"] for i in range(21)] + [
            tokens, np.array(pos, np.int32),
            simulated(history_k, spec["key"], args.rotate_keys),
            simulated(history_v, spec["value"])]
        logits, new_k, new_v = (np.asarray(r) for r in xla.execute(
            [jax.device_put(a, device) for a in xla_args]))
        history_k = np.concatenate(
            [history_k, new_k[:, :, :, pos:pos + 1]], axis=3)
        history_v = np.concatenate(
            [history_v, new_v[:, :, :, pos:pos + 1]], axis=3)
        scale = float(np.abs(logits).max())
        # np.maximum, unlike max(), keeps a NaN error.
        shift = float(np.maximum(shift, np.abs(got - got_plain).max() / scale))
        worst = float(np.maximum(worst, np.abs(got - logits).max() / scale))
        compared += 1

    lengths = {comp_cache.length(s, 0) for s in comp_seqs}
    print(f"{compared} steps (pos {start}..{start + compared - 1}), "
          f"cache tokens {sorted(lengths)}")
    print(f"max |kvc - oracle| / max |oracle| = {worst:.2e} (tolerance "
          f"{args.tolerance:.1e}); compression moves the logits by "
          f"{shift:.2e}")
    if not worst <= args.tolerance:
        print("FAIL: the compressed decode is further from the oracle than "
              "the tolerance")
        return 1
    if not shift > 10 * args.tolerance:
        print("FAIL: compression changes the logits by less than 10x the "
              "tolerance: the check cannot tell compressed from plain")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
