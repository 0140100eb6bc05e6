"""The tiny Llama-architecture LM of ../shared/models/tiny-lm in numpy, with
compressed-KV semantics.

Teacher forcing over a window of T tokens computes every position at once;
that equals step-by-step decoding over a cache because a token's K/V depend
only on the tokens before it. The cache semantics are kvc's: with n tokens
stored, the first floor(n/R)*R are compressed (through the kvc numerics
library), the rest are the fp16 residual. Query t sees n = t + 1 tokens, so
key j is read compressed iff j < floor((t+1)/R)*R; compressed tokens are
compressed in aligned blocks, so their values do not depend on t and each
side is compressed once per window.
"""
import json
import os

import numpy as np



def _safetensors():
    try:
        from kvc import safetensors
    except ImportError:  # the source tree's copy, when kvc is not built
        import importlib.util
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                            "python_bindings", "kvc", "safetensors.py")
        spec = importlib.util.spec_from_file_location("kvc_safetensors", path)
        safetensors = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(safetensors)
    return safetensors


class KVPolicy:
    """How the cache of each layer stores keys and values.

    `layers[l]` is (key, value): each a side encoding of the spec language
    ('q2:channel:g32', 'fp8:e4m3', 'fp16'), or a list with one per KV head.
    `residual` is R, the fp16 window.
    """

    def __init__(self, layers, residual=128, name="", sink=0, pre_rope=False,
                 rotate_keys=False, outlier_channels=0):
        self.layers = layers
        self.residual = residual
        self.name = name
        # Experiment (not in the compiler yet): the first `sink` tokens stay
        # fp16 (StreamingLLM's attention sinks, KVQuant's fp16 first token),
        # held apart: the compressed groups and blocks start after them.
        self.sink = sink
        # Experiment: compress keys before RoPE (KVQuant), rotate after.
        self.pre_rope = pre_rope
        # kvc-rotate-keys: compressed keys are stored rotated by the
        # Hadamard matrix (kvc.hadamard_rotate) and queries rotated alike, so
        # the keys read back are rotate(compress(rotate(k))).
        self.rotate_keys = rotate_keys
        # Experiment: per head, the `outlier_channels` key channels of
        # largest magnitude over the first 256 positions stay fp16 (KVQuant's
        # outliers, per channel); the rest is compressed without them.
        self.outlier_channels = outlier_channels

    @staticmethod
    def uniform(num_layers, key, value, residual=128, name="",
                rotate_keys=False):
        return KVPolicy([(key, value)] * num_layers, residual, name,
                        rotate_keys=rotate_keys)


def _round_fp16(x):
    return x.astype(np.float16).astype(np.float32)


class TinyLM:
    def __init__(self, config, weights):
        self.config = config
        self.w = weights
        self.num_layers = config["num_hidden_layers"]
        self.hidden = config["hidden_size"]
        self.num_heads = config["num_attention_heads"]
        self.num_kv_heads = config["num_key_value_heads"]
        self.head_dim = config.get("head_dim", self.hidden // self.num_heads)
        self.eps = config["rms_norm_eps"]
        rope = config.get("rope_parameters") or {}
        self.rope_theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))

    @classmethod
    def load(cls, directory):
        with open(os.path.join(directory, "config.json")) as f:
            config = json.load(f)
        weights = {}
        for file in sorted(set(config["weight_map"].values())):
            tensors, _ = _safetensors().read(os.path.join(directory, file))
            for name, array in tensors.items():
                weights[name] = np.asarray(array, dtype=np.float32)
        return cls(config, weights)

    def _rms_norm(self, x, weight):
        variance = np.mean(x * x, axis=-1, keepdims=True)
        return x / np.sqrt(variance + self.eps) * weight

    def _rope(self, x, positions):
        """HF's rotate-half RoPE on [H, T, D]."""
        d = self.head_dim
        inv_freq = 1.0 / (self.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
        freqs = np.outer(positions.astype(np.float64), inv_freq)
        emb = np.concatenate([freqs, freqs], axis=-1)
        cos = np.cos(emb).astype(np.float32)  # float32 like the model
        sin = np.sin(emb).astype(np.float32)
        half = d // 2
        rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rotated * sin

    def qkv(self, layer, hidden, positions, pre_rope=None):
        """Post-RoPE q [Hq,T,D], k, v [Hkv,T,D] of `layer` for hidden [T,H];
        `pre_rope` (a dict) receives the keys before RoPE."""
        p = f"model.layers.{layer}."
        x = self._rms_norm(hidden, self.w[p + "input_layernorm.weight"])
        t = x.shape[0]
        q = (x @ self.w[p + "self_attn.q_proj.weight"].T).reshape(t, self.num_heads, self.head_dim)
        k = (x @ self.w[p + "self_attn.k_proj.weight"].T).reshape(t, self.num_kv_heads, self.head_dim)
        v = (x @ self.w[p + "self_attn.v_proj.weight"].T).reshape(t, self.num_kv_heads, self.head_dim)
        q, k, v = (a.transpose(1, 0, 2) for a in (q, k, v))
        if pre_rope is not None:
            pre_rope["k"] = k
        return self._rope(q, positions), self._rope(k, positions), v

    def attention(self, q, k, v, keys_read, values_read, residual, mass=None,
                  sink=0):
        """Causal attention where query t reads key/value j from the
        compressed view if j < S + floor((t+1-S)/R)*R, else from the fp16 one
        (S = `sink` fp16 tokens held apart; their compressed view is fp16).

        Queries with the same compressed prefix c are done together: their
        scores are [q @ compressed[:c], q @ fp16[c:t1]], so no position is
        computed twice. `mass` ([Hkv, T] float64, optional) receives each
        key's softmax probabilities summed over all queries of its KV head
        (H2O's scores, see eviction.py); the output does not depend on it."""
        hq, t, d = q.shape
        hkv = k.shape[0]
        group = hq // hkv
        k16, v16 = _round_fp16(k), _round_fp16(v)
        kc = keys_read if keys_read is not None else k16
        vc = values_read if values_read is not None else v16
        idx = np.arange(t)
        if residual and keys_read is not None:
            prefix = np.where(idx + 1 >= sink,
                              sink + ((idx + 1 - sink) // residual) * residual, 0)
        else:
            prefix = np.zeros(t, dtype=np.int64)
        out = np.empty_like(q)
        scale = np.float32(1.0 / np.sqrt(d))
        # [Hkv, group, T, D]: the query heads of one KV head together.
        qg = q.reshape(hkv, group, t, d)
        starts = np.flatnonzero(np.diff(prefix, prepend=-1))
        for i, t0 in enumerate(starts):
            t1 = starts[i + 1] if i + 1 < len(starts) else t
            c = int(prefix[t0])
            rows = np.arange(t0, t1)
            causal = np.arange(c, t1)[None, :] <= rows[:, None]
            for kv in range(hkv):
                qb = qg[kv, :, t0:t1].reshape(-1, d)
                scores = np.concatenate(
                    [qb @ kc[kv, :c].T,
                     np.where(np.tile(causal, (group, 1)), qb @ k16[kv, c:t1].T,
                              np.float32(-np.inf))], axis=1) * scale
                scores -= scores.max(axis=-1, keepdims=True)
                probs = np.exp(scores)
                probs /= probs.sum(axis=-1, keepdims=True)
                if mass is not None:
                    mass[kv, :t1] += probs.sum(axis=0, dtype=np.float64)
                o = probs[:, :c] @ vc[kv, :c] + probs[:, c:] @ v16[kv, c:t1]
                out[kv * group:(kv + 1) * group, t0:t1] = o.reshape(group, t1 - t0, d)
        return out

    def _read_views(self, policy, layer, q, k, v, pre_rope_k, positions):
        """The keys and values a query reads from the compressed cache.

        Sink tokens are held apart in fp16: the compressed stream, its groups
        and its blocks start after them. Only whole blocks are compressed;
        the rest is never read compressed (see attention) and stays fp16."""
        import kvc
        key_enc, value_enc = policy.layers[layer]
        t, sink, residual = k.shape[1], policy.sink, policy.residual
        stream = slice(sink, sink + ((t - sink) // residual) * residual if residual else t)
        keys_read, values_read = _round_fp16(k), _round_fp16(v)
        if stream.stop <= stream.start:
            return keys_read, values_read

        def part(x):
            return np.ascontiguousarray(x[:, stream])

        if policy.pre_rope:
            keys_read[:, stream] = self._rope(
                _compress_heads(kvc, part(pre_rope_k), key_enc), positions[stream])
        elif policy.rotate_keys:
            keys_read[:, stream] = _compress_heads(kvc, part(k), key_enc, rotate=True)
        elif policy.outlier_channels:
            keys_read[:, stream] = _compress_with_outliers(
                kvc, part(k), key_enc, policy.outlier_channels)
        else:
            keys_read[:, stream] = _compress_heads(kvc, part(k), key_enc, queries=part(q))
        values_read[:, stream] = _compress_heads(kvc, part(v), value_enc)
        return keys_read, values_read

    def layer(self, layer, hidden, positions, policy=None, capture=None,
              attend=None):
        """One decoder layer on hidden [T, H] under `policy` (see forward).
        `attend(layer, q, k, v, keys_read, values_read, residual)` replaces
        self.attention (eviction.py simulates evicting caches with it)."""
        t = hidden.shape[0]
        pre = {}
        q, k, v = self.qkv(layer, hidden, positions, pre_rope=pre)
        if capture is not None:
            capture[f"layer{layer}.q"] = q
            capture[f"layer{layer}.k"] = k
            capture[f"layer{layer}.v"] = v
        keys_read = values_read = None
        residual = 0
        sink = 0
        if policy is not None:
            residual, sink = policy.residual, policy.sink
            keys_read, values_read = self._read_views(policy, layer, q, k, v, pre["k"], positions)
        if attend is None:
            attn = self.attention(q, k, v, keys_read, values_read, residual, sink=sink)
        else:
            attn = attend(layer, q, k, v, keys_read, values_read, residual)
        p = f"model.layers.{layer}."
        attn = attn.transpose(1, 0, 2).reshape(t, -1)
        hidden = hidden + attn @ self.w[p + "self_attn.o_proj.weight"].T
        x = self._rms_norm(hidden, self.w[p + "post_attention_layernorm.weight"])
        gate = x @ self.w[p + "mlp.gate_proj.weight"].T
        up = x @ self.w[p + "mlp.up_proj.weight"].T
        hidden = hidden + ((gate / (1.0 + np.exp(-gate))) * up) @ self.w[p + "mlp.down_proj.weight"].T
        return hidden

    def forward(self, tokens, policy=None, capture=None, attend=None):
        """Log-probabilities [T, vocab] (base e) for a window of byte tokens.

        `policy`: a KVPolicy (None: fp16 cache). `capture`: a dict that
        receives 'layer{l}.q/k/v' (post-RoPE) of every layer. `attend`: see
        layer.
        """
        t = len(tokens)
        positions = np.arange(t)
        hidden = self.w["model.embed_tokens.weight"][tokens]
        for layer in range(self.num_layers):
            hidden = self.layer(layer, hidden, positions, policy, capture, attend)
        x = self._rms_norm(hidden, self.w["model.norm.weight"])
        logits = x @ self.w["model.embed_tokens.weight"].T
        logits -= logits.max(axis=-1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


def _compress_heads(kvc, x, encoding, queries=None, observe=256,
                    rotate=False):
    """x [H, T, D] through kvc's numerics, as the runtime stores it: tokens
    are fp16 when appended, and compressed from fp16. One encoding, or one
    per head. A window holds whole blocks, so every token that a query reads
    compressed is compressed here exactly as the cache would.

    Pruned keys (`prune<N>+<enc>`) keep the channels that matter most to the
    head group's queries of the first `observe` positions (the prefill's
    observation window, as ThinK does); `queries` is [Hq, T, D].

    `rotate` (kvc-rotate-keys): compressed heads store x·H rounded to fp16
    and are read back as compress(x·H)·H; fp16 heads are not rotated."""
    heads = encoding if isinstance(encoding, (list, tuple)) else [encoding] * x.shape[0]
    if rotate:
        out = np.empty_like(x)
        for h, enc in enumerate(heads):
            if enc == "fp16":
                out[h] = _round_fp16(x[h])
            else:
                stored = _round_fp16(kvc.hadamard_rotate(x[h]))
                out[h] = kvc.hadamard_rotate(
                    kvc.round_trip(np.ascontiguousarray(stored), enc))
        return out
    x16 = _round_fp16(x)
    out = np.empty_like(x)
    for h, enc in enumerate(heads):
        if enc.startswith("prune"):
            keep, element = enc[len("prune"):].split("+", 1)
            group = queries.shape[0] // x.shape[0]
            observed = queries[h * group:(h + 1) * group, :observe].reshape(-1, x.shape[2])
            out[h] = kvc.prune_round_trip(np.ascontiguousarray(x16[h]),
                                          np.ascontiguousarray(observed), int(keep), element)
        else:
            out[h] = kvc.round_trip(np.ascontiguousarray(x16[h]), enc)
    return out


def _compress_with_outliers(kvc, x, encoding, count, observe=256):
    """x [H, T, D]: per head, the `count` channels of largest max |x| over the
    first `observe` positions stay fp16; the others are compressed with the
    outliers zeroed (so they do not stretch per-token ranges)."""
    x16 = _round_fp16(x)
    out = np.empty_like(x)
    for h in range(x.shape[0]):
        outliers = np.argsort(-np.abs(x16[h, :observe]).max(axis=0))[:count]
        inliers = x16[h].copy()
        inliers[:, outliers] = 0.0
        out[h] = kvc.round_trip(np.ascontiguousarray(inliers), encoding)
        out[h][:, outliers] = x16[h][:, outliers]
    return out


def window_bits(model, data, policy=None, context=1024, score_from=256,
                max_windows=None):
    """Per window: (sum of -log2 p(next byte) over positions >= score_from,
    number of scored positions), for consecutive non-overlapping windows of
    `context` bytes."""
    tokens = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    windows = (len(tokens) - 1) // context
    if max_windows is not None:
        windows = min(windows, max_windows)
    result = []
    for w in range(windows):
        window = tokens[w * context:(w + 1) * context + 1]
        logp = model.forward(window[:-1], policy)
        picked = logp[np.arange(context), window[1:]][score_from:]
        result.append((-picked.sum() / np.log(2.0), len(picked)))
    return result


def bits_per_byte(model, data, policy=None, context=1024, score_from=256,
                  max_windows=None):
    """Mean -log2 p(next byte) over positions >= score_from of consecutive,
    non-overlapping windows of `context` bytes."""
    per_window = window_bits(model, data, policy, context, score_from, max_windows)
    return sum(b for b, _ in per_window) / sum(n for _, n in per_window)
