"""kvc: decoupled KV-cache compression.

The numerics library (quantize/dequantize per encoding), the compiler's pass
pipelines on IR text, the runtime's CPU paged cache and the cost model, from
Python, and `compile` to JIT a function (a whole decoder step with its
caches) and call it on numpy arrays. Encodings use the spec language of kvc-opt:
``q2:channel:g32`` (2-bit, per-channel, groups of 32 tokens),
``q4:token:g64``, ``fp8:e4m3``, ``fp16``. Eviction policies:
``h2o:sink=4:window=64:budget=256``, ``streaming:sink=4:window=60``.
"""
from ._kvc import (  # noqa: F401
    CPUCache,
    CompileError,
    Function,
    bits_per_element,
    candidate_errors,
    canonical_encoding,
    check_evict_policy,
    compile,
    dequantize,
    hadamard_rotate,
    prune_round_trip,
    quantize,
    round_trip,
    run_pipeline,
    select_bitwidths,
    select_kept_tokens,
    simulate_cache_side,
)

__all__ = [
    "CPUCache", "CompileError", "Function", "bits_per_element",
    "candidate_errors", "canonical_encoding", "check_evict_policy", "compile", "dequantize",
    "hadamard_rotate", "prune_round_trip", "quantize", "round_trip",
    "run_pipeline", "select_bitwidths", "select_kept_tokens",
    "simulate_cache_side",
]
