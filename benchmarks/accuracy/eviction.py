"""Token eviction composed with KV quantization, simulated on the tiny LM.

Decode semantics under teacher forcing, per layer: positions t are processed
in order. The cache holds tokens 0..t (token j read compressed iff
j < floor((t+1)/R)*R, kvc's residual rule, as tinylm.py does) restricted to
each KV head's live tokens; query t attends over them; H2O adds the attention
mass (summed over the GQA query heads of the KV head) to per-token scores;
then kvc.select_kept_tokens evicts down to the budget, each KV head's own
when the policy has per-head budgets (the one definition of
which tokens a policy keeps, include/kvc/Numerics/Evict.h). That is the
order of one decode step in the IR: append -> attend (+ mass) -> accumulate
-> evict.

Two-tier caches do not drop an evicted token: they keep it "demoted", its
K/V re-encoded with a cheaper token-axis or fp8 side encoding from the values
the cache held (the dequantized main encoding, or fp16 in the residual
window), still visible to attention.

While at most `budget` tokens exist nothing is evicted, so queries
t < budget are the no-eviction path itself (tinylm's blocked attention, which
also yields the mass H2O has accumulated by then); later queries run one
step at a time, all heads at once.

Memory of a configuration: at each scored step t (after that step's
eviction), the stored bits of the live tokens (compressed ones at their
encoding's bits per element incl. scales and zeros, kvc.bits_per_element;
residual-window ones at 16; demoted ones at the demoted encoding's bits)
divided by the elements a full cache holds (t + 1 tokens), averaged over the
scored steps. `final_bits` is the same ratio at the last step.
"""
import numpy as np

import tinylm


class Eviction:
    """Eviction of one layer: a kvc policy spec ('h2o:sink=4:window=64:
    budget=256', 'streaming:sink=4:window=124', per KV head 'h2o:sink=4:
    window=64:heads=256,1024') and optional demoted side encodings
    (two-tier; None drops evicted tokens)."""

    def __init__(self, spec, demote_key=None, demote_value=None):
        import kvc
        self.spec = kvc.check_evict_policy(spec)
        fields = dict(part.split("=") for part in self.spec.split(":")[1:])
        self.kind = self.spec.split(":")[0]
        self.sink, self.window = int(fields["sink"]), int(fields["window"])
        self.budget = int(fields["budget"])  # the largest head's, if per head
        # One budget per KV head, or None: every head keeps `budget`.
        self.head_budgets = [int(b) for b in fields["heads"].split(",")] \
            if "heads" in fields else None
        if self.kind == "snapkv":
            raise ValueError("snapkv scores come from a prefill observation "
                             "window; this decode simulation runs streaming and h2o")
        if (demote_key is None) != (demote_value is None):
            raise ValueError("a two-tier cache demotes both keys and values "
                             f"(got demote_key={demote_key!r}, demote_value={demote_value!r})")
        for enc in (demote_key, demote_value):
            if enc is not None:
                _check_token_local(kvc, enc)
        self.demote_key, self.demote_value = demote_key, demote_value

    @property
    def demotes(self):
        return self.demote_key is not None

    def __repr__(self):
        tier = f", demote {self.demote_key}/{self.demote_value}" if self.demotes else ""
        return f"Eviction({self.spec}{tier})"


def _check_token_local(kvc, encoding):
    """Demotion re-encodes single tokens: only encodings whose groups lie
    within one token (token axis, fp8, fp16) can do that."""
    canonical = kvc.canonical_encoding(encoding)
    if canonical.startswith("quant") and "axis=token" not in canonical:
        raise ValueError(f"demoted encoding '{encoding}' ({canonical}) groups "
                         "across tokens; a demoted token is re-encoded alone "
                         "(use a token-axis or fp8 encoding)")


def _side_bits(kvc, encoding, heads, head_dim):
    """Bits per element of one side's encoding, per head ([heads])."""
    if encoding is None:
        return np.full(heads, 16.0)
    encs = encoding if isinstance(encoding, (list, tuple)) else [encoding] * heads
    return np.array([kvc.bits_per_element(e, head_dim) for e in encs])


class LayerResult:
    """Per-step memory of one layer: bits[t] summed over KV heads and both
    sides; masks[t] ([Hkv, t+1] uint8, live main-tier tokens after step t's
    eviction) and demoted[t] when traced."""

    def __init__(self, steps):
        self.bits = np.zeros(steps)
        self.masks = None
        self.demoted = None


def simulate_attention(model, q, k, v, keys_read, values_read, residual, eviction,
                       key_bits, value_bits, trace=False):
    """Attention output [Hq, T, D] of one layer under `eviction` (an
    Eviction, or None: no eviction) and the layer's memory (LayerResult).

    `model` is the tinylm.TinyLM (its blocked attention runs the steps
    before the first eviction); q [Hq, T, D], k, v [Hkv, T, D] (post-RoPE); keys_read / values_read the
    views compressed tokens are read from (tinylm.TinyLM.layer's; None: fp16
    cache); key_bits / value_bits [Hkv] the main encodings' bits per element.
    """
    import kvc
    hq, steps, d = q.shape
    hkv = k.shape[0]
    group = hq // hkv
    k16, v16 = tinylm._round_fp16(k), tinylm._round_fp16(v)
    compressed = keys_read is not None and residual > 0
    kc = keys_read if keys_read is not None else k16
    vc = values_read if values_read is not None else v16
    result = LayerResult(steps)
    if trace:
        result.masks, result.demoted = [], []

    def prefix(t):  # tokens read compressed by query t
        return ((t + 1) // residual) * residual if compressed else 0

    # Steps before the first eviction (in the head with the smallest
    # budget): everything live, the blocked path.
    if eviction is not None and eviction.head_budgets is not None \
            and len(eviction.head_budgets) != hkv:
        raise ValueError(f"{eviction.spec} has {len(eviction.head_budgets)} "
                         f"per-head budgets for {hkv} KV heads")
    first = steps if eviction is None else \
        min(steps, min(eviction.head_budgets or [eviction.budget]))
    mass = np.zeros((hkv, steps)) if eviction is not None and eviction.kind == "h2o" else None
    out = np.empty_like(q)
    out[:, :first] = model.attention(
        q[:, :first], k[:, :first], v[:, :first],
        None if keys_read is None else keys_read[:, :first],
        None if values_read is None else values_read[:, :first], residual, mass=mass)
    for t in range(first):
        c = prefix(t)
        result.bits[t] = c * (key_bits + value_bits).sum() + (t + 1 - c) * 32.0 * hkv
        if trace:
            result.masks.append(np.ones((hkv, t + 1), np.uint8))
            result.demoted.append(np.zeros((hkv, t + 1), bool))
    if first == steps:
        return out, result

    # One decode step at a time. view_k/view_v hold what each token is read
    # as now: fp16, its compressed view once its block is compressed, or its
    # demoted view once demoted (which it then keeps).
    view_k, view_v = k16.copy(), v16.copy()
    live = np.zeros((hkv, steps), np.uint8)
    live[:, :first] = 1
    demoted = np.zeros((hkv, steps), bool)
    if eviction.demotes:
        demote = {(src, side): kvc.round_trip(np.ascontiguousarray(x), enc)
                  for side, enc, pair in (("k", eviction.demote_key, (kc, k16)),
                                          ("v", eviction.demote_value, (vc, v16)))
                  for src, x in zip(("c", "16"), pair)}
        demote_bits = (kvc.bits_per_element(eviction.demote_key, d)
                       + kvc.bits_per_element(eviction.demote_value, d))
    done = 0  # tokens [0, done) switched to their compressed view
    qg = q.reshape(hkv, group, steps, d)
    scale = np.float32(1.0 / np.sqrt(d))
    for t in range(first, steps):
        n = t + 1
        c = prefix(t)
        if c > done:
            block = ~demoted[:, done:c, None]
            view_k[:, done:c] = np.where(block, kc[:, done:c], view_k[:, done:c])
            view_v[:, done:c] = np.where(block, vc[:, done:c], view_v[:, done:c])
            done = c
        live[:, t] = 1
        visible = live[:, :n].astype(bool) | demoted[:, :n]
        scores = np.matmul(qg[:, :, t], view_k[:, :n].transpose(0, 2, 1)) * scale
        scores = np.where(visible[:, None, :], scores, np.float32(-np.inf))
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        out[:, t] = np.matmul(probs, view_v[:, :n]).reshape(hq, d)
        if mass is not None:
            mass[:, :n] += probs.sum(axis=1, dtype=np.float64)
        before = live[:, :n].copy()
        # [Hkv, n]: with per-head budgets each head keeps its own.
        live[:, :n] = kvc.select_kept_tokens(
            eviction.spec, None if mass is None else mass[:, :n].astype(np.float32),
            keep=before)
        if eviction.demotes:
            heads, tokens = np.nonzero(before & ~live[:, :n])
            src = np.where(tokens < c, "c", "16")
            for side, view in (("k", view_k), ("v", view_v)):
                for s in ("c", "16"):
                    pick = src == s
                    view[heads[pick], tokens[pick]] = demote[(s, side)][heads[pick], tokens[pick]]
            demoted[heads, tokens] = True
        main = live[:, :n].astype(bool)
        in_block = main[:, :c].sum(axis=1)
        result.bits[t] = (in_block * (key_bits + value_bits)).sum() \
            + (main[:, c:].sum() * 32.0)
        if eviction.demotes:
            result.bits[t] += demoted[:, :n].sum() * demote_bits
        if trace:
            result.masks.append(live[:, :n].copy())
            result.demoted.append(demoted[:, :n].copy())
    return out, result


class Config:
    """A cache configuration of the study: a tinylm.KVPolicy (None: fp16
    cache) and per layer an Eviction or None."""

    def __init__(self, name, policy, evictions, num_layers):
        if len(evictions) != num_layers:
            raise ValueError(f"{name}: {len(evictions)} layer evictions for "
                             f"{num_layers} layers")
        self.name, self.policy, self.evictions = name, policy, evictions

    @staticmethod
    def uniform(name, num_layers, sides=None, evict=None, demote=None, residual=128):
        import kvc  # noqa: F401 (Eviction needs it; fail early)
        policy = None if sides is None else tinylm.KVPolicy.uniform(
            num_layers, *sides, residual=residual, name=name)
        ev = None if evict is None else Eviction(evict, *(demote or (None, None)))
        return Config(name, policy, [ev] * num_layers, num_layers)

    def describe(self):
        """One line of the table: main encodings, eviction, demotion."""
        enc = "fp16" if self.policy is None else _summary(
            [f"K {k} / V {v}" for k, v in self.policy.layers])
        ev = _summary([e.spec if e else "none" for e in self.evictions])
        dem = _summary([f"{e.demote_key} / {e.demote_value}" if e and e.demotes else "drop"
                        for e in self.evictions])
        return enc, ev, dem


def _summary(items):
    items = [str(i) for i in items]
    return items[0] if len(set(items)) == 1 else "per layer: " + "; ".join(items)


def window_result(model, tokens, config, score_from=256, trace=False):
    """(bits of the window's scored predictions, number scored, per-step
    memory ratio [T]) of one window of tokens (length T + 1)."""
    import kvc
    steps = len(tokens) - 1
    layers = []

    def attend(layer, q, k, v, keys_read, values_read, residual):
        if config.policy is None:
            kb = vb = np.full(model.num_kv_heads, 16.0)
        else:
            key, value = config.policy.layers[layer]
            kb = _side_bits(kvc, key, model.num_kv_heads, model.head_dim)
            vb = _side_bits(kvc, value, model.num_kv_heads, model.head_dim)
        out, res = simulate_attention(model, q, k, v, keys_read, values_read,
                                      residual, config.evictions[layer], kb, vb, trace)
        layers.append(res)
        return out

    logp = model.forward(tokens[:-1], config.policy, attend=attend)
    picked = logp[np.arange(steps), tokens[1:]][score_from:]
    full = 2.0 * model.num_kv_heads * model.num_layers * np.arange(1, steps + 1)
    ratio = sum(r.bits for r in layers) / full
    return -picked.sum() / np.log(2.0), len(picked), ratio, layers


def byte_windows(data, context=1024, max_windows=None):
    """Consecutive non-overlapping windows of `context` bytes of `data` (each
    with the next byte as the last target) as token ids: the tiny LM's."""
    tokens = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    count = (len(tokens) - 1) // context
    if max_windows is not None:
        count = min(count, max_windows)
    return [tokens[w * context:(w + 1) * context + 1] for w in range(count)]


def config_from_report(name, report, num_layers, kv_heads):
    """The Config a cost-model report describes.

    The report (a dict) gives per layer the key and value side encodings,
    an eviction spec or none, and optionally the demoted encodings of a
    two-tier cache, in either or both of these forms:
    - per-layer entries: {"layers": [{"layer": l (default: the index),
      "key": enc | [enc per KV head], "value": ..., "evict": spec | null,
      "demote_key": enc, "demote_value": enc}], "residual": 128,
      "rotate_keys": false} (select_allocations.py's form plus the eviction
      fields; "keep_fraction" and other fields are ignored);
    - kvc.select_bitwidths's report: {"slots": [{"layer", "side", "head"
      ("all" or an index), "encoding", "evict"}], "evictions": [{"layer",
      "evict", "keep_fraction"}]} (with token budgets, "evict" sits on the
      slots and in the per-layer "evictions" entries; both are read).
    A nested "report" (select_allocations.py keeps the cost model's report
    there) is read first; the outer fields override it.
    """
    fields = ("key", "value", "evict", "demote_key", "demote_value")
    layers = [dict.fromkeys(fields) for _ in range(num_layers)]
    parts = [report]
    if isinstance(report.get("report"), dict):
        parts.insert(0, report["report"])
    for part in parts:
        if not all(isinstance(part.get(key, []), list)
                   for key in ("slots", "layers", "evictions")):
            raise ValueError(f"{name}: 'slots', 'layers' and 'evictions' must be lists")
        per_head = [{"key": [None] * kv_heads, "value": [None] * kv_heads}
                    for _ in range(num_layers)]
        for slot in part.get("slots", []):
            layer, side = _index(slot, "layer", num_layers), slot.get("side")
            if side not in ("key", "value"):
                raise ValueError(f"{name}: slot side must be 'key' or 'value', got {side!r}")
            heads = range(kv_heads) if slot.get("head", "all") == "all" \
                else [_index(slot, "head", kv_heads)]
            for h in heads:
                per_head[layer][side][h] = slot.get("encoding")
            for field in fields[2:]:
                if slot.get(field) is not None:
                    layers[layer][field] = slot[field]
        for layer, entry in enumerate(per_head):
            for side in ("key", "value"):
                if any(e is not None for e in entry[side]):
                    if None in entry[side]:
                        raise ValueError(f"{name}: layer {layer} has a {side} "
                                         "encoding for only some KV heads")
                    layers[layer][side] = entry[side][0] \
                        if len(set(entry[side])) == 1 else entry[side]
        entries = part.get("layers", []) + [
            {"layer": e.get("layer"), "evict": e.get("evict")}
            for e in part.get("evictions", [])]
        for i, entry in enumerate(entries):
            layer = _index(entry, "layer", num_layers) if "layer" in entry else i
            if layer >= num_layers:
                raise ValueError(f"{name}: more layer entries than the model's {num_layers}")
            for field in fields:
                if entry.get(field) is not None:
                    layers[layer][field] = entry[field]
    for layer, entry in enumerate(layers):
        if entry["key"] is None or entry["value"] is None:
            raise ValueError(f"{name}: layer {layer} lacks a key or value encoding")
        if entry["evict"] is None and (entry["demote_key"] or entry["demote_value"]):
            raise ValueError(f"{name}: layer {layer} demotes tokens but evicts none "
                             "(a demoted encoding needs an evict spec)")
        if entry["evict"] is not None and not isinstance(entry["evict"], str):
            raise ValueError(f"{name}: layer {layer}'s evict must be a spec string "
                             f"or null, got {entry['evict']!r}")
    body = parts[-1]
    policy = tinylm.KVPolicy([(e["key"], e["value"]) for e in layers],
                             residual=body.get("residual", 128), name=name,
                             rotate_keys=body.get("rotate_keys", False))
    evictions = [Eviction(e["evict"], e["demote_key"], e["demote_value"])
                 if e["evict"] else None for e in layers]
    return Config(name, policy, evictions, num_layers)


def _index(entry, field, limit):
    value = entry.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
        raise ValueError(f"'{field}' must be an integer in [0, {limit}), got {value!r}")
    return value
