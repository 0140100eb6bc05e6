#!/usr/bin/env python3
"""Experiments with what the literature says helps keys, on the tiny LM
(harness semantics of tinylm.py; not in the compiler):

  key_tricks.py CONFIG WINDOWS      e.g. key_tricks.py kivi2-prerope 32

prints CONFIG, bits/byte on the first WINDOWS windows of dev.txt, seconds.
Configs: fp16, kivi2, kivi2-sink4/32 (first tokens kept fp16, StreamingLLM
sinks), kivi2-prerope (keys compressed before RoPE, KVQuant), k2tok and
k2tok-prerope (2-bit per-token keys), kivi2-hadamard and k2tok-hadamard
(keys stored Hadamard-rotated: kvc-rotate-keys, QuaRot), k2tok-outlier4 and
kivi2-outlier4 (4 outlier key channels per head kept fp16).
"""
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinylm  # noqa: E402
from run_tinylm import MODEL_DIR  # noqa: E402

m = tinylm.TinyLM.load(MODEL_DIR)
with open(os.path.join(MODEL_DIR, "dev.txt"), "rb") as f:
    data = f.read()
W = int(sys.argv[2])
name = sys.argv[1]
pols = {"fp16": None,
        "kivi2": tinylm.KVPolicy.uniform(6, "q2:channel:g32", "q2:token:g32"),
        "kivi2-sink4": tinylm.KVPolicy([("q2:channel:g32", "q2:token:g32")] * 6, 128, sink=4),
        "kivi2-prerope": tinylm.KVPolicy([("q2:channel:g32", "q2:token:g32")] * 6, 128, pre_rope=True),
        "k2tok-prerope": tinylm.KVPolicy([("q2:token:g32", "q2:token:g32")] * 6, 128, pre_rope=True),
        "k2tok": tinylm.KVPolicy.uniform(6, "q2:token:g32", "q2:token:g32"),
        "kivi2-sink32": tinylm.KVPolicy([("q2:channel:g32", "q2:token:g32")] * 6, 128, sink=32),
        "kivi2-hadamard": tinylm.KVPolicy([("q2:channel:g32", "q2:token:g32")] * 6, 128, rotate_keys=True),
        "k2tok-hadamard": tinylm.KVPolicy([("q2:token:g32", "q2:token:g32")] * 6, 128, rotate_keys=True),
        "k2tok-outlier4": tinylm.KVPolicy([("q2:token:g32", "q2:token:g32")] * 6, 128, outlier_channels=4),
        "kivi2-outlier4": tinylm.KVPolicy([("q2:channel:g32", "q2:token:g32")] * 6, 128, outlier_channels=4)}
if name not in pols:
    sys.exit(f"key_tricks.py: unknown config '{name}' (known: {', '.join(pols)})")
t = time.time()
print(name, tinylm.bits_per_byte(m, data, pols[name], max_windows=W), time.time() - t, flush=True)
