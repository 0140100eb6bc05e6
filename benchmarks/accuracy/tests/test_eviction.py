"""The eviction simulation (eviction.py): without eviction it is the
harness's path bit for bit, its masks are kvc's policies, its H2O steps
match a direct per-step computation, and its memory is counted as stated."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import eviction  # noqa: E402
import kvc  # noqa: E402
import tinylm  # noqa: E402
from run_tinylm import MODEL_DIR  # noqa: E402

needs_model = pytest.mark.skipif(not os.path.isdir(MODEL_DIR),
                                 reason="../shared/models/tiny-lm is absent")


def toy(hq=4, hkv=2, t=192, d=64, seed=0):
    rng = np.random.default_rng(seed)
    q = (rng.standard_normal((hq, t, d)) * 2).astype(np.float32)
    k = rng.standard_normal((hkv, t, d)).astype(np.float32)
    v = rng.standard_normal((hkv, t, d)).astype(np.float32)
    model = tinylm.TinyLM({"num_hidden_layers": 1, "hidden_size": hq * d,
                           "num_attention_heads": hq, "num_key_value_heads": hkv,
                           "head_dim": d, "rms_norm_eps": 1e-6}, {})
    return model, q, k, v


def direct_decode(q, k, v, kc, vc, residual, spec, demote=None):
    """Decode step by step in float64, one query head at a time: append,
    attend over the live (and demoted) tokens, add the mass, evict."""
    hq, steps, d = q.shape
    hkv = k.shape[0]
    group = hq // hkv
    k16, v16 = tinylm._round_fp16(k), tinylm._round_fp16(v)
    live = np.zeros((hkv, steps), np.uint8)
    demoted = np.zeros((hkv, steps), bool)
    demoted_k, demoted_v = np.zeros_like(k16), np.zeros_like(v16)
    mass = np.zeros((hkv, steps))
    out = np.zeros((hq, steps, d))
    masks = []
    for t in range(steps):
        n = t + 1
        c = (n // residual) * residual
        live[:, t] = 1
        for h in range(hq):
            kv = h // group
            read_c = (np.arange(n) < c)[:, None]
            keys = np.where(read_c, kc[kv, :n], k16[kv, :n]).astype(np.float64)
            values = np.where(read_c, vc[kv, :n], v16[kv, :n]).astype(np.float64)
            keys[demoted[kv, :n]] = demoted_k[kv, :n][demoted[kv, :n]]
            values[demoted[kv, :n]] = demoted_v[kv, :n][demoted[kv, :n]]
            scores = keys @ q[h, t].astype(np.float64) / np.sqrt(d)
            scores[~(live[kv, :n].astype(bool) | demoted[kv, :n])] = -np.inf
            p = np.exp(scores - scores.max())
            p /= p.sum()
            out[h, t] = p @ values
            mass[kv, :n] += p
        before = live[:, :n].copy()
        scores = mass[:, :n].astype(np.float32) if spec.startswith("h2o") else None
        live[:, :n] = kvc.select_kept_tokens(spec, scores, keep=before)
        if demote:
            for kv, j in zip(*np.nonzero(before & ~live[:, :n])):
                src_k, src_v = (kc, vc) if j < c else (k16, v16)
                demoted_k[kv, j] = kvc.round_trip(src_k[kv, j][None].copy(), demote[0])[0]
                demoted_v[kv, j] = kvc.round_trip(src_v[kv, j][None].copy(), demote[1])[0]
                demoted[kv, j] = True
        masks.append(live[:, :n].copy())
    return out, masks


def compressed(k, v):
    return (tinylm._compress_heads(kvc, k, "q2:channel:g32"),
            tinylm._compress_heads(kvc, v, "q3:token:g32"))


def test_budget_at_least_the_context_is_the_harness_path_bit_for_bit():
    model, q, k, v = toy()
    kc, vc = compressed(k, v)
    want = model.attention(q, k, v, kc, vc, 32)
    bits = np.full(2, 3.0)
    for spec in (None, "h2o:sink=4:window=16:budget=192", "streaming:sink=4:window=400"):
        ev = None if spec is None else eviction.Eviction(spec)
        got, _ = eviction.simulate_attention(model, q, k, v, kc, vc, 32, ev, bits, bits)
        assert np.array_equal(got, want), spec
    # Budget 190: steps 0..189 are the blocked path over 190 tokens rather
    # than 192 (equal up to rounding: BLAS may block the shorter product
    # differently; with numpy 2.4.6 / OpenBLAS 0.3.31 they differ by at most
    # 9e-7 at |out| <= 3.3); step 190 attends over all 191 tokens one step
    # at a time (again up to rounding) and then evicts one, which step 191
    # misses.
    got, _ = eviction.simulate_attention(model, q, k, v, kc, vc, 32,
                                         eviction.Eviction("h2o:sink=4:window=16:budget=190"),
                                         bits, bits)
    np.testing.assert_allclose(got[:, :190], want[:, :190], atol=2e-6, rtol=0)
    np.testing.assert_allclose(got[:, 190], want[:, 190], atol=2e-6, rtol=0)
    assert not np.allclose(got[:, 191], want[:, 191], atol=1e-4)


@needs_model
def test_whole_model_without_eviction_is_run_tinylm_bit_for_bit():
    model = tinylm.TinyLM.load(MODEL_DIR)
    with open(os.path.join(MODEL_DIR, "dev.txt"), "rb") as f:
        tokens = np.frombuffer(f.read(321), np.uint8).astype(np.int64)
    config = eviction.Config.uniform("kivi2", model.num_layers,
                                     ("q2:channel:g32", "q2:token:g32"),
                                     "h2o:sink=4:window=64:budget=1024")
    bits, scored, ratio, _ = eviction.window_result(model, tokens, config, score_from=100)
    logp = model.forward(tokens[:-1], config.policy)
    want = -logp[np.arange(320), tokens[1:]][100:].sum() / np.log(2.0)
    assert scored == 220 and bits == want
    # Memory: compressed tokens at 3 bits (2 + fp16 scale and zero per 32),
    # the residual window at 16.
    t = np.arange(320)
    c = (t + 1) // 128 * 128
    np.testing.assert_allclose(ratio, (3.0 * c + 16.0 * (t + 1 - c)) / (t + 1))


def test_streaming_masks_are_sink_plus_window():
    model, q, k, v = toy(t=96)
    kc, vc = compressed(k, v)
    sink, window = 3, 20
    _, res = eviction.simulate_attention(
        model, q, k, v, kc, vc, 32, eviction.Eviction(f"streaming:sink={sink}:window={window}"),
        np.full(2, 3.0), np.full(2, 3.0), trace=True)
    for t, mask in enumerate(res.masks):
        j = np.arange(t + 1)
        analytic = (j < sink) | (j > t - window)
        assert mask.shape == (2, t + 1)
        assert (mask == analytic[None]).all(), t


@pytest.mark.parametrize("spec,demote", [
    ("h2o:sink=4:window=16:budget=48", None),
    ("h2o:sink=0:window=5:budget=70", None),
    ("streaming:sink=4:window=36", ("q4:token:g32", "q2:token:g32")),
    ("h2o:sink=2:window=8:budget=40", ("q2:token:g32", "fp8:e4m3")),
])
def test_steps_match_a_direct_computation(spec, demote):
    model, q, k, v = toy()
    kc, vc = compressed(k, v)
    ev = eviction.Eviction(spec, *(demote or (None, None)))
    got, res = eviction.simulate_attention(model, q, k, v, kc, vc, 32, ev,
                                           np.full(2, 3.0), np.full(2, 3.0), trace=True)
    want, masks = direct_decode(q, k, v, kc, vc, 32, ev.spec, demote)
    for step, (a, b) in enumerate(zip(res.masks, masks)):
        assert (a == b).all(), step
    assert (masks[-1].sum(axis=1) == ev.budget).all()
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    if demote:
        assert (res.demoted[-1] == ~masks[-1].astype(bool)).all()


def test_per_head_budgets_keep_each_heads_own():
    # KV head 0 keeps 48 tokens, head 1 keeps 96: the per-step masks are the
    # direct computation's, each head ends at its own budget, and each head
    # attends as under a single-budget policy of its own budget (the
    # blocked path runs only until the smallest budget: equal up to
    # rounding).
    model, q, k, v = toy()
    kc, vc = compressed(k, v)
    bits = np.full(2, 3.0)
    ev = eviction.Eviction("h2o:sink=4:window=16:heads=48,96")
    assert ev.budget == 96 and ev.head_budgets == [48, 96]
    got, res = eviction.simulate_attention(model, q, k, v, kc, vc, 32, ev, bits, bits,
                                           trace=True)
    want, masks = direct_decode(q, k, v, kc, vc, 32, ev.spec)
    for step, (a, b) in enumerate(zip(res.masks, masks)):
        assert (a == b).all(), step
    assert list(masks[-1].sum(axis=1)) == [48, 96]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    for head, budget in enumerate(ev.head_budgets):
        alone, res1 = eviction.simulate_attention(
            model, q, k, v, kc, vc, 32, eviction.Eviction(f"h2o:sink=4:window=16:budget={budget}"),
            bits, bits, trace=True)
        group = slice(2 * head, 2 * head + 2)  # its query heads
        np.testing.assert_allclose(got[group], alone[group], atol=1e-5, rtol=0)
        assert all((a[head] == b[head]).all() for a, b in zip(res.masks, res1.masks))
    # A spec for another number of KV heads is refused.
    with pytest.raises(ValueError, match="3 per-head budgets for 2 KV heads"):
        eviction.simulate_attention(model, q, k, v, kc, vc, 32,
                                    eviction.Eviction("h2o:sink=4:window=16:heads=48,96,64"),
                                    bits, bits)


@pytest.mark.parametrize("demote", [None, ("q2:token:g32", "q2:token:g32")])
def test_memory_of_a_toy_cache(demote):
    # 1 KV head, R = 4, streaming sink 1 + window 3; main encodings at
    # 3 bits per element for K and for V, demoted ones q2:token:g32 at
    # D = 32: 2 + 32/32 = 3 bits each.
    model, q, k, v = toy(hq=1, hkv=1, t=8, d=32)
    ev = eviction.Eviction("streaming:sink=1:window=3", *(demote or (None, None)))
    _, res = eviction.simulate_attention(model, q, k, v, k, v, 4, ev,
                                         np.full(1, 3.0), np.full(1, 3.0))
    # Steps 0-2: all fp16 (2 x 16 bits per token); step 3: tokens 0-3
    # compressed. Then live {0,2,3,4}, {0,3,4,5}, {0,4,5,6}, {0,5,6,7} with
    # the first 4 (then 8) compressed.
    want = [32, 64, 96, 24, 3 * 6 + 32, 2 * 6 + 64, 6 + 96, 4 * 6]
    if demote:  # demoted tokens {1}, {1,2}, {1,2,3}, {1,2,3,4} at 6 bits
        want = [w + 6 * max(0, t - 3) for t, w in enumerate(want)]
    np.testing.assert_array_equal(res.bits, want)


def test_config_from_a_cost_model_report():
    h2o = "h2o:sink=4:window=128:budget=512"
    slots = {"residual": 64, "slots": [
        {"layer": 0, "side": "key", "head": "all", "encoding": "q4:channel:g32"},
        {"layer": 0, "side": "value", "head": 0, "encoding": "q2:token:g32"},
        {"layer": 0, "side": "value", "head": 1, "encoding": "q4:token:g32"},
        {"layer": 1, "side": "key", "head": "all", "encoding": "q2:channel:g32"},
        {"layer": 1, "side": "value", "head": "all", "encoding": "q2:token:g32"}],
        "evictions": [{"layer": 0, "evict": None, "keep_fraction": 1.0},
                      {"layer": 1, "evict": h2o, "keep_fraction": 0.5}],
        "layers": [{"layer": 1, "demote_key": "q2:token:g32", "demote_value": "fp8:e4m3"}]}
    config = eviction.config_from_report("r", slots, num_layers=2, kv_heads=2)
    assert config.policy.residual == 64
    assert config.policy.layers == [("q4:channel:g32", ["q2:token:g32", "q4:token:g32"]),
                                    ("q2:channel:g32", "q2:token:g32")]
    assert config.evictions[0] is None
    assert config.evictions[1].spec == h2o and config.evictions[1].budget == 512
    assert config.evictions[1].demote_value == "fp8:e4m3"
    # Per-head budgets (granularity head): the layer's spec, as the cost
    # model writes it on the slots and in "evictions".
    heads = "h2o:sink=4:window=128:budget=1024:heads=1024,512"
    per_head = {"slots": [{"layer": 0, "side": side, "head": h, "encoding": "q4:channel:g64",
                           "evict": heads, "token_budget": [1024, 512][h]}
                          for side in ("key", "value") for h in (0, 1)],
                "evictions": [{"layer": 0, "evict": heads, "head_budgets": [1024, 512]}]}
    config = eviction.config_from_report("h", per_head, num_layers=1, kv_heads=2)
    assert config.evictions[0].spec == heads
    assert config.evictions[0].head_budgets == [1024, 512]
    # select_allocations.py's form with the report nested.
    nested = {"layers": [{"key": "fp16", "value": "fp16"}] * 2,
              "report": {"layers": [{"layer": 1, "evict": "streaming:sink=4:window=60"}]}}
    config = eviction.config_from_report("n", nested, num_layers=2, kv_heads=2)
    assert config.policy.layers == [("fp16", "fp16")] * 2
    assert config.evictions[0] is None
    assert config.evictions[1].spec == "streaming:sink=4:window=60:budget=64"


def test_the_hand_written_report_reads_as_the_cost_model_writes_it():
    import run_eviction
    report = run_eviction.HAND_WRITTEN_REPORT
    config = eviction.config_from_report("hand", report, num_layers=6, kv_heads=2)
    assert config.policy.layers == [("q4:channel:g32", "q2:token:g32")] * 6
    assert [e and e.spec for e in config.evictions] == [None, None] + [run_eviction.HAND_H2O] * 4
    # The slots alone say the same.
    slots_only = {"slots": report["slots"]}
    config = eviction.config_from_report("slots", slots_only, num_layers=6, kv_heads=2)
    assert [e and e.spec for e in config.evictions] == [None, None] + [run_eviction.HAND_H2O] * 4


@pytest.mark.parametrize("report,message", [
    ({"layers": [{"key": "fp16"}]}, "lacks a key or value"),
    ({"layers": [{"key": "fp16", "value": "fp16", "evict": "h2o:budget=8"}]}, "window"),
    ({"layers": [{"key": "fp16", "value": "fp16", "evict": "lru:budget=8"}]}, "unknown"),
    ({"layers": [{"key": "fp16", "value": "fp16", "evict": "streaming:sink=1:window=7",
                  "demote_key": "q2:channel:g32", "demote_value": "q2:token:g32"}]},
     "groups across tokens"),
    ({"layers": [{"key": "fp16", "value": "fp16", "evict": "streaming:sink=1:window=7",
                  "demote_key": "q2:token:g32"}]}, "both keys and values"),
    ({"layers": [{"key": "fp16", "value": "fp16", "demote_key": "q2:token:g32",
                  "demote_value": "q2:token:g32"}]}, "evicts none"),
    ({"slots": [{"layer": 3, "side": "key", "encoding": "fp16"}]}, "layer"),
    ({"slots": [{"layer": 0, "side": "kv", "encoding": "fp16"}]}, "side"),
    ({"layers": [{"key": "fp16", "value": "fp16"}], "evictions": [{"evict": "h2o"}]},
     "'layer' must be an integer"),
])
def test_bad_reports_are_clear_errors(report, message):
    with pytest.raises(ValueError, match=message):
        eviction.config_from_report("bad", report, num_layers=1, kv_heads=2)


@needs_model
def test_the_runner_sums_window_results_and_resumes_from_its_log(tmp_path, monkeypatch, capsys):
    """run_eviction.py evaluates each (config, window) on its own: its row is
    window_result summed over the windows, and a second run with the same
    log evaluates nothing again."""
    import json
    import run_eviction
    log, out = tmp_path / "windows.jsonl", tmp_path / "rows.json"
    argv = ["run_eviction.py", "--configs", "fp16,k4v2", "--max-windows", "2",
            "--log", str(log), "--json", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    run_eviction.main()
    assert "4 (config, window) evaluations: 0 logged" in capsys.readouterr().out
    rows = {r["config"]: r for r in json.loads(out.read_text())["rows"]}
    model = tinylm.TinyLM.load(MODEL_DIR)
    with open(os.path.join(MODEL_DIR, "dev.txt"), "rb") as f:
        windows = eviction.byte_windows(f.read(), 1024, 2)
    config = run_eviction.build_config("k4v2", model, None)[1]
    direct = [eviction.window_result(model, w, config, 256) for w in windows]
    row = rows["k4v2"]
    assert row["bits_per_byte"] == pytest.approx(sum(d[0] for d in direct) / 1536, rel=1e-12)
    assert row["scored_bytes"] == 1536 and row["windows"] == 2
    ratio = np.mean([d[2] for d in direct], axis=0)
    assert row["bits_per_element"] == pytest.approx(ratio[256:].mean(), rel=1e-12)
    assert row["final_bits_per_element"] == pytest.approx(ratio[-1], rel=1e-12)
    assert row["delta_stderr"] is not None and rows["fp16"]["delta"] == 0.0
    assert len(log.read_text().splitlines()) == 4
    run_eviction.main()  # resumed: everything is logged
    assert ": 4 logged in" in capsys.readouterr().out
    assert json.loads(out.read_text())["rows"] == list(rows.values())
    assert len(log.read_text().splitlines()) == 4
