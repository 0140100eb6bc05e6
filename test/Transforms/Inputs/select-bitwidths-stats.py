"""Writes a small kvc calibration statistics file (docs/cost-model.md) for
the kvc-select-bitwidths lit tests: layers of post-RoPE-like Q/K/V with key
outlier channels, deterministic, Python standard library only.

usage: select-bitwidths-stats.py OUT [--layers 0,1] [--kv-heads 2]
           [--head-dim 32] [--tokens 384] [--score-from 128] [--calibrated]
"""
import argparse
import json
import random
import struct


def tensor(rows):
    return struct.pack("<%df" % len(rows), *rows)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--layers", default="0,1")
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--group", type=int, default=2, help="query heads per KV head")
    p.add_argument("--head-dim", type=int, default=32)
    p.add_argument("--tokens", type=int, default=384)
    p.add_argument("--score-from", type=int, default=128)
    p.add_argument("--calibrated", action="store_true")
    a = p.parse_args()

    rng = random.Random(1234)
    hkv, hq, t, d = a.kv_heads, a.kv_heads * a.group, a.tokens, a.head_dim
    header, blobs, offset = {}, [], 0
    meta = {"kvc.stats.version": "1", "kvc.stats.score_from": str(a.score_from)}
    for layer in [int(x) for x in a.layers.split(",")]:
        # Later layers have larger key outliers (more sensitive keys).
        outlier = 4.0 + 4.0 * layer
        q = [rng.gauss(0, 1) for _ in range(hq * t * d)]
        k = [rng.gauss(0, 1) * (outlier if i % d in (1, 5) else 1.0)
             for i in range(hkv * t * d)]
        v = [rng.gauss(0, 1) for _ in range(hkv * t * d)]
        for name, data, heads in (("q", q, hq), ("k", k, hkv), ("v", v, hkv)):
            blob = tensor(data)
            header["layer%d.%s" % (layer, name)] = {
                "dtype": "F32", "shape": [heads, t, d],
                "data_offsets": [offset, offset + len(blob)]}
            blobs.append(blob)
            offset += len(blob)
        if a.calibrated:
            pre = "kvc.calib.layer%d." % layer
            meta[pre + "key.encoding"] = "q2:channel:g32"
            meta[pre + "key.dloss"] = "%g" % (0.02 * (layer + 1))
            meta[pre + "value.encoding"] = "q2:token:g32"
            meta[pre + "value.dloss"] = "0.01"
    header["__metadata__"] = meta
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(a.out, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


if __name__ == "__main__":
    main()
