#!/usr/bin/env python3
"""Decode a torch.onnx.export decoder step through kvc with compressed caches.

  onnx_decode.py MODEL.onnx --spec SPEC [--batch B] [--prompt P] [--steps N]

The model is a Hugging Face style decoder step (inputs input_ids,
attention_mask, position_ids, past_key_values.<i>.{key,value}; outputs
logits, present.<i>.{key,value}) with a dynamic past length. The script

1. imports it with kvc-translate for batch B, one new token and any past
   length (`?`), weights to a safetensors file;
2. compresses it twice with kvc-compress: an fp16 cache and SPEC
   (`key=q2:channel:g32,value=q2:token:g32,residual=64`);
3. compiles both with kvc.compile and fills their runtime caches with the
   keys and values of a P-token random prompt (computed by onnxruntime);
4. decodes N greedy steps (the compressed run picks the tokens) and checks
   each step's logits against an oracle: onnxruntime running the original
   model with past keys/values equal to what the kvc numerics library says
   the compressed cache reads back (kvc.simulate_cache_side over the fp16
   history; new tokens' keys and values from onnxruntime's present.*).

It prints a table per step window and fails (exit 1) unless every step is
within --tolerance of the oracle (relative to max |logits|), the fp16-cache
run is within --tolerance of onnxruntime's uncompressed run, and compression
moves the logits by more than 10x the tolerance. The decode stops before a
step whose new token would be compressed at once (a residual block flushing
with it): onnxruntime attends to its new token in f32 and cannot be handed
the compressed form.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

import kvc
from kvc import safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def round_fp16(x):
    return x.astype(np.float16).astype(np.float32)


def past_inputs(model):
    """[(key name, value name)] per layer and (kv_heads, head_dim)."""
    names = {i.name: i for i in model.graph.input}
    layers = []
    while f"past_key_values.{len(layers)}.key" in names:
        i = len(layers)
        layers.append((f"past_key_values.{i}.key",
                       f"past_key_values.{i}.value"))
    if not layers:
        sys.exit("error: the model has no past_key_values.<i>.key inputs")
    dims = names[layers[0][0]].type.tensor_type.shape.dim
    if len(dims) != 4 or not dims[1].dim_value or not dims[3].dim_value:
        sys.exit("error: past_key_values.0.key must be [batch, heads, past, "
                 "head_dim] with static heads and head_dim")
    return layers, dims[1].dim_value, dims[3].dim_value


def import_model(path, batch, layers, heads, head_dim, tools, workdir):
    out = os.path.join(workdir, "model.mlir")
    weights = os.path.join(workdir, "weights.safetensors")
    shapes = [f"--input-shape=input_ids={batch}x1",
              f"--input-shape=attention_mask={batch}x?",
              f"--input-shape=position_ids={batch}x1"]
    for key, value in layers:
        for name in (key, value):
            shapes.append(f"--input-shape={name}={batch}x{heads}x?x{head_dim}")
    subprocess.run([os.path.join(tools, "kvc-translate"), "--import-onnx", path,
                    f"--weights-out={weights}", "-o", out] + shapes, check=True)
    tensors, _ = safetensors.read(weights)
    return open(out).read(), tensors


def compress(ir, spec):
    text, remarks = kvc.run_pipeline(
        ir, f'builtin.module(kvc-compress{{spec="{spec}" report=none}})',
        return_diagnostics=True)
    if text.count("kvc.attend") == 0:
        sys.exit("error: kvc-compress raised no attention:\n" + remarks)
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--spec", default="key=q2:channel:g32,value=q2:token:g32,residual=64")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=130)
    parser.add_argument("--steps", type=int, default=61)
    parser.add_argument("--tolerance", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tools", default=os.path.join(ROOT, "build", "bin"),
                        help="directory of kvc-translate")
    args = parser.parse_args()

    model = onnx.load(args.model)
    layers, heads, head_dim = past_inputs(model)
    session = ort.InferenceSession(args.model,
                                   providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    batch = args.batch
    rng = np.random.default_rng(args.seed)

    def run_ort(tokens, pos, past):
        feed = {"input_ids": tokens.reshape(batch, 1).astype(np.int64),
                "attention_mask": np.ones((batch, pos + 1), np.int64),
                "position_ids": np.full((batch, 1), pos, np.int64)}
        for (key, value), (k, v) in zip(layers, past):
            feed[key], feed[value] = k, v
        result = dict(zip(outputs, session.run(None, feed)))
        present = [(result[f"present.{i}.key"], result[f"present.{i}.value"])
                   for i in range(len(layers))]
        return result["logits"].reshape(batch, -1), present

    with tempfile.TemporaryDirectory() as workdir:
        ir, weights = import_model(args.model, batch, layers, heads, head_dim,
                                   args.tools, workdir)
    plain = kvc.compile(compress(ir, "key=fp16,value=fp16,residual=0"))
    compressed = kvc.compile(compress(ir, args.spec))
    caches = [a for a in compressed.arguments if a["kind"] == "cache"]
    key_enc, value_enc = caches[0]["key"], caches[0]["value"]
    residual = caches[0]["residual"]
    print(f"kvc: {len(caches)} layers raised, {heads} KV heads, head_dim "
          f"{head_dim}, key {key_enc}, value {value_enc}, residual {residual}")
    names = {a["name"] for a in compressed.arguments if a["kind"] == "tensor"}
    weights = {k: v for k, v in weights.items() if k in names}

    # The prompt's keys and values, from onnxruntime with an f32 past.
    past = [(np.zeros((batch, heads, 0, head_dim), np.float32),) * 2
            for _ in layers]
    for pos in range(args.prompt):
        _, past = run_ort(rng.integers(0, 256, batch), pos, past)
    history = [(round_fp16(k), round_fp16(v)) for k, v in past]

    def start(function):
        cache = function.new_cache(max_sequences=batch,
                                   max_tokens=args.prompt + args.steps + 1)
        seqs = [cache.new_sequence() for _ in range(batch)]
        for layer, (k, v) in enumerate(past):
            for b, seq in enumerate(seqs):
                cache.append(seq, layer, k[b], v[b])
        return cache, seqs

    plain_cache, plain_seqs = start(plain)
    comp_cache, comp_seqs = start(compressed)
    uncompressed_past = past

    def simulated(enc, side):
        return [np.stack([np.stack([kvc.simulate_cache_side(
            np.ascontiguousarray(h[side][b, i]), enc, residual)
            for i in range(heads)]) for b in range(batch)])
            for h in history]

    print("| steps | max rel. error vs oracle | fp16 cache vs onnxruntime "
          "| compressed vs uncompressed |")
    print("|---|---|---|---|")
    tokens = rng.integers(0, 256, batch)
    worst = worst_plain = shift = 0.0
    window = [0.0, 0.0, 0.0]
    steps = 0
    for step in range(args.steps):
        pos = args.prompt + step
        if residual and (pos + 1) % residual == 0:
            print(f"(stopping before pos {pos}: its new token would flush a "
                  f"residual block)")
            break
        inputs = dict(weights,
                      input_ids=tokens.reshape(batch, 1).astype(np.int64),
                      attention_mask=np.ones((batch, pos + 1), np.int64),
                      position_ids=np.full((batch, 1), pos, np.int64))
        inputs = {k: v for k, v in inputs.items() if k in names}
        got = compressed(inputs, cache=comp_cache,
                         sequences=comp_seqs)["logits"].reshape(batch, -1)
        got_plain = plain(inputs, cache=plain_cache,
                          sequences=plain_seqs)["logits"].reshape(batch, -1)
        oracle_past = list(zip(simulated(key_enc, 0), simulated(value_enc, 1)))
        oracle, present = run_ort(tokens, pos, oracle_past)
        reference, uncompressed_past = run_ort(tokens, pos, uncompressed_past)
        history = [(np.concatenate([hk, round_fp16(pk[:, :, pos:])], 2),
                    np.concatenate([hv, round_fp16(pv[:, :, pos:])], 2))
                   for (hk, hv), (pk, pv) in zip(history, present)]
        scale = float(np.abs(oracle).max())
        errors = (float(np.abs(got - oracle).max()) / scale,
                  float(np.abs(got_plain - reference).max()) / scale,
                  float(np.abs(got - reference).max()) / scale)
        # np.maximum, unlike max(), keeps a NaN error.
        window = [float(np.maximum(w, e)) for w, e in zip(window, errors)]
        worst, worst_plain, shift = (float(np.maximum(worst, errors[0])),
                                     float(np.maximum(worst_plain, errors[1])),
                                     float(np.maximum(shift, errors[2])))
        steps += 1
        if steps % 10 == 0 or step == args.steps - 1:
            print(f"| {pos - 9 if steps % 10 == 0 else pos}..{pos} | "
                  f"{window[0]:.2e} | {window[1]:.2e} | {window[2]:.2e} |")
            window = [0.0, 0.0, 0.0]
        tokens = got.argmax(axis=1)  # greedy, on the compressed run

    lengths = sorted({comp_cache.length(s, 0) for s in comp_seqs})
    stats = comp_cache.layer_stats(0)
    print(f"{steps} steps after a {args.prompt}-token prompt, batch {batch}; "
          f"cache tokens {lengths}, compressed {stats['compressed_tokens']}")
    print(f"max |kvc - oracle| / max |logits| = {worst:.2e} (tolerance "
          f"{args.tolerance:.1e}); fp16 cache vs onnxruntime {worst_plain:.2e}; "
          f"compression moves the logits by {shift:.2e}")
    ok = worst <= args.tolerance and shift > 10 * args.tolerance
    # The fp16 cache rounds keys/values to fp16: allowed 10x the tolerance.
    ok = ok and worst_plain <= 10 * args.tolerance
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
