#!/usr/bin/env python3
"""Writes decoder steps of real LLM configurations as linalg-on-tensors MLIR.

Each example is one function computing a decode step (or a prefill chunk)
of a whole decoder: RMSNorm, Q/K/V projections (with bias for Qwen2), RoPE
computed in the IR from the model's theta, a KV cache extended by
tensor.concat, GQA through repeat_kv (linalg.broadcast + collapse_shape),
scaled dot-product attention (causal and sliding-window masks built from
linalg.index comparisons), the output projection, a SwiGLU MLP and the
residual adds. Weights and past K/V are function arguments, never dense
constants; the present K/V are results. kvc-raise-attention turns every
layer's attention into kvc.append + kvc.attend.

    gen_examples.py --out DIR [--models llama3-8b,mistral-7b] [--layers N]
                    [--batch B] [--past P] [--q-len S] [--dtype bf16]
                    [--softmax linalg|decomposed] [--suffix=-small]

`--out -` prints one model to stdout. Python 3 standard library only.
"""

import argparse
import math
import os
import sys

MODELS = {
    # name: layers, hidden, q heads, kv heads, head dim, intermediate,
    #       rope theta, rms eps, qkv bias, sliding window
    "llama3-8b": dict(layers=32, hidden=4096, heads=32, kv_heads=8,
                      head_dim=128, intermediate=14336, theta=500000.0,
                      eps=1e-5, bias=False, window=None),
    "mistral-7b": dict(layers=32, hidden=4096, heads=32, kv_heads=8,
                       head_dim=128, intermediate=14336, theta=10000.0,
                       eps=1e-5, bias=False, window=4096),
    "qwen2-7b": dict(layers=28, hidden=3584, heads=28, kv_heads=4,
                     head_dim=128, intermediate=18944, theta=1000000.0,
                     eps=1e-6, bias=True, window=None),
    "llama3-70b": dict(layers=80, hidden=8192, heads=64, kv_heads=8,
                       head_dim=128, intermediate=28672, theta=500000.0,
                       eps=1e-5, bias=False, window=None),
}

NEG_INF = {"f32": "0xFF800000", "f16": "0xFC00", "bf16": "0xFF80"}


def flt(value):
    """An MLIR float literal."""
    return "%.9e" % value


def ttype(shape, dtype):
    return "tensor<%sx%s>" % ("x".join(str(d) for d in shape), dtype)


def amap(rank, results):
    dims = ", ".join("d%d" % i for i in range(rank))
    return "affine_map<(%s) -> (%s)>" % (dims, ", ".join(results))


def ident(rank):
    return amap(rank, ["d%d" % i for i in range(rank)])


class Emitter:
    """Emits one function body with fresh SSA names."""

    def __init__(self):
        self.lines = []
        self.count = 0

    def fresh(self, hint="t"):
        self.count += 1
        return "%%%s%d" % (hint, self.count)

    def op(self, text, hint="t"):
        name = self.fresh(hint)
        self.lines.append("  %s = %s" % (name, text))
        return name

    def raw(self, text):
        self.lines.append(text)

    def const(self, value, dtype):
        return self.op("arith.constant %s : %s" % (value, dtype), "c")

    def empty(self, shape, dtype):
        return self.op("tensor.empty() : %s" % ttype(shape, dtype), "e")

    def zeros(self, shape, dtype):
        zero = self.const(flt(0.0), dtype)
        return self.op("linalg.fill ins(%s : %s) outs(%s : %s) -> %s" % (
            zero, dtype, self.empty(shape, dtype), ttype(shape, dtype),
            ttype(shape, dtype)), "z")

    def generic(self, ins, out_shape, out_dtype, maps, iterators, body,
                init=None, hint="g"):
        """`ins` is a list of (value, type, scalar type); `body` maps the
        block argument names to (lines, yielded value)."""
        out_type = ttype(out_shape, out_dtype)
        if init is None:
            init = self.empty(out_shape, out_dtype)
        args = ["%%in%d" % i for i in range(len(ins))]
        lines, result = body(*args)
        name = self.fresh(hint)
        ins_text = ""
        if ins:
            ins_text = " ins(%s : %s)" % (", ".join(v for v, _, _ in ins),
                                          ", ".join(t for _, t, _ in ins))
        self.raw("  %s = linalg.generic {indexing_maps = [%s], "
                 "iterator_types = [%s]}%s outs(%s : %s) {" % (
                     name, ", ".join(maps),
                     ", ".join('"%s"' % it for it in iterators), ins_text,
                     init, out_type))
        block = ", ".join("%s: %s" % (a, s) for a, (_, _, s) in zip(args, ins))
        block = (block + ", " if block else "") + "%%out: %s" % out_dtype
        self.raw("  ^bb0(%s):" % block)
        for line in lines:
            self.raw("    " + line)
        self.raw("    linalg.yield %s : %s" % (result, out_dtype))
        self.raw("  } -> %s" % out_type)
        return name


class Model:
    """One decoder step of `cfg` with `layers` layers: the function's
    arguments (hidden state, weights, past K/V) and its body."""

    def __init__(self, name, cfg, layers, batch, past, q_len, dtype, softmax):
        self.name = name
        self.cfg = dict(cfg)
        self.layers = layers
        self.batch, self.past, self.q_len = batch, past, q_len
        self.dtype = dtype
        self.softmax = softmax
        self.e = Emitter()
        self.args = []

    def arg(self, name, shape, dtype=None):
        self.args.append(("%" + name, ttype(shape, dtype or self.dtype)))
        return "%" + name

    # -- building blocks ---------------------------------------------------

    def rms_norm(self, x, weight):
        """x * rsqrt(mean(x^2) + eps) in f32, cast back, times the weight."""
        e, c, dt = self.e, self.cfg, self.dtype
        B, S, H = self.batch, self.q_len, c["hidden"]

        def to_f32(v, name):
            if dt == "f32":
                return [], v
            return [f"{name} = arith.extf {v} : {dt} to f32"], name

        def square(a):
            lines, v = to_f32(a, "%xf")
            return lines + [f"%sq = arith.mulf {v}, {v} : f32"], "%sq"
        sq = e.generic([(x, ttype([B, S, H], dt), dt)], [B, S, H], "f32",
                       [ident(3), ident(3)], ["parallel"] * 3, square)
        total = e.generic([(sq, ttype([B, S, H], "f32"), "f32")], [B, S], "f32",
                          [ident(3), amap(3, ["d0", "d1"])],
                          ["parallel", "parallel", "reduction"],
                          lambda a: ([f"%s = arith.addf {a}, %out : f32"], "%s"),
                          init=e.zeros([B, S], "f32"))

        def rsqrt(a):
            return ([f"%n = arith.constant {flt(float(H))} : f32",
                     f"%eps = arith.constant {flt(c['eps'])} : f32",
                     f"%m = arith.divf {a}, %n : f32",
                     "%me = arith.addf %m, %eps : f32",
                     "%r = math.rsqrt %me : f32"], "%r")
        inv = e.generic([(total, ttype([B, S], "f32"), "f32")], [B, S], "f32",
                        [ident(2), ident(2)], ["parallel"] * 2, rsqrt)

        def scale(a, r, w):
            lines, v = to_f32(a, "%xf")
            lines.append(f"%y = arith.mulf {v}, {r} : f32")
            y = "%y"
            if dt != "f32":
                lines.append(f"%yt = arith.truncf %y : f32 to {dt}")
                y = "%yt"
            lines.append(f"%o = arith.mulf {y}, {w} : {dt}")
            return lines, "%o"
        return e.generic([(x, ttype([B, S, H], dt), dt),
                          (inv, ttype([B, S], "f32"), "f32"),
                          (weight, ttype([H], dt), dt)],
                         [B, S, H], dt,
                         [ident(3), amap(3, ["d0", "d1"]), amap(3, ["d2"]),
                          ident(3)], ["parallel"] * 3, scale, hint="norm")

    def matmul(self, x2, rows, k, weight, n):
        e, dt = self.e, self.dtype
        init = e.zeros([rows, n], dt)
        return e.op("linalg.matmul ins(%s, %s : %s, %s) outs(%s : %s) -> %s" % (
            x2, weight, ttype([rows, k], dt), ttype([k, n], dt), init,
            ttype([rows, n], dt), ttype([rows, n], dt)), "mm")

    def add_bias(self, x2, rows, n, bias):
        dt = self.dtype
        return self.e.generic(
            [(x2, ttype([rows, n], dt), dt), (bias, ttype([n], dt), dt)],
            [rows, n], dt, [ident(2), amap(2, ["d1"]), ident(2)],
            ["parallel"] * 2,
            lambda a, b: (["%%s = arith.addf %s, %s : %s" % (a, b, dt)], "%s"))

    def binary(self, a, b, shape, opname):
        dt = self.dtype
        r = len(shape)
        return self.e.generic(
            [(a, ttype(shape, dt), dt), (b, ttype(shape, dt), dt)], shape, dt,
            [ident(r)] * 3, ["parallel"] * r,
            lambda x, y: (["%%s = %s %s, %s : %s" % (opname, x, y, dt)], "%s"))

    def transpose(self, x, shape, perm):
        e, dt = self.e, self.dtype
        out = [shape[p] for p in perm]
        init = e.empty(out, dt)
        return e.op("linalg.transpose ins(%s : %s) outs(%s : %s) "
                    "permutation = [%s]" % (x, ttype(shape, dt), init,
                                            ttype(out, dt),
                                            ", ".join(map(str, perm))), "tr")

    def rope_tables(self):
        """cos and sin of (past + s) * theta^(-2i/D), S x D, in f32."""
        c = self.cfg
        S, D = self.q_len, c["head_dim"]
        k = flt(-2.0 * math.log(c["theta"]) / D)
        tables = []
        for fn in ("cos", "sin"):
            def body(fn=fn):
                return ([
                    "%si = linalg.index 0 : index",
                    "%di = linalg.index 1 : index",
                    f"%half = arith.constant {D // 2} : index",
                    f"%past = arith.constant {self.past} : index",
                    "%i = arith.remui %di, %half : index",
                    "%pos = arith.addi %si, %past : index",
                    "%ii = arith.index_cast %i : index to i64",
                    "%pi = arith.index_cast %pos : index to i64",
                    "%if = arith.sitofp %ii : i64 to f32",
                    "%pf = arith.sitofp %pi : i64 to f32",
                    f"%k = arith.constant {k} : f32",
                    "%ke = arith.mulf %if, %k : f32",
                    "%freq = math.exp %ke : f32",
                    "%ang = arith.mulf %pf, %freq : f32",
                    f"%r = math.{fn} %ang : f32"], "%r")
            tables.append(self.e.generic([], [S, D], "f32", [ident(2)],
                                         ["parallel"] * 2, body, hint=fn))
        return tables

    def rope(self, x, heads, cos, sin):
        """x * cos + rotate_half(x) * sin on B x S x heads x D."""
        e, dt = self.e, self.dtype
        B, S, D = self.batch, self.q_len, self.cfg["head_dim"]
        shape = [B, S, heads, D]
        half = [B, S, heads, D // 2]
        lo = e.op("tensor.extract_slice %s[0, 0, 0, 0] [%d, %d, %d, %d] "
                  "[1, 1, 1, 1] : %s to %s" % (x, B, S, heads, D // 2,
                                               ttype(shape, dt),
                                               ttype(half, dt)), "lo")
        hi = e.op("tensor.extract_slice %s[0, 0, 0, %d] [%d, %d, %d, %d] "
                  "[1, 1, 1, 1] : %s to %s" % (x, D // 2, B, S, heads, D // 2,
                                               ttype(shape, dt),
                                               ttype(half, dt)), "hi")
        neg = e.generic([(hi, ttype(half, dt), dt)], half, dt,
                        [ident(4), ident(4)], ["parallel"] * 4,
                        lambda a: (["%%n = arith.negf %s : %s" % (a, dt)], "%n"))
        rot = e.op("tensor.concat dim(3) %s, %s : (%s, %s) -> %s" % (
            neg, lo, ttype(half, dt), ttype(half, dt), ttype(shape, dt)), "rot")
        def body(a, r, c_, s_):
            lines = []
            if dt != "f32":
                lines += ["%%af = arith.extf %s : %s to f32" % (a, dt),
                          "%%rf = arith.extf %s : %s to f32" % (r, dt)]
                a, r = "%af", "%rf"
            lines += ["%%p = arith.mulf %s, %s : f32" % (a, c_),
                      "%%q = arith.mulf %s, %s : f32" % (r, s_),
                      "%y = arith.addf %p, %q : f32"]
            y = "%y"
            if dt != "f32":
                lines.append("%%yt = arith.truncf %%y : f32 to %s" % dt)
                y = "%yt"
            return lines, y
        table = amap(4, ["d1", "d3"])
        return e.generic([(x, ttype(shape, dt), dt), (rot, ttype(shape, dt), dt),
                          (cos, ttype([S, D], "f32"), "f32"),
                          (sin, ttype([S, D], "f32"), "f32")],
                         shape, dt, [ident(4), ident(4), table, table, ident(4)],
                         ["parallel"] * 4, body, hint="rope")

    def mask(self):
        """0 / -inf over S x T from the query and key positions: causal, and
        a sliding window when the model has one; None when nothing is
        masked (a decode step without a window)."""
        c, e = self.cfg, self.e
        S, T = self.q_len, self.past + self.q_len
        window = c["window"]
        if S == 1 and window is None:
            return None
        def body():
            lines = [
                "%q = linalg.index 0 : index",
                "%k = linalg.index 1 : index",
                f"%past = arith.constant {self.past} : index",
                "%qpos = arith.addi %q, %past : index",
                "%keep = arith.cmpi ule, %k, %qpos : index",
            ]
            if window is not None:
                lines += [
                    f"%w = arith.constant {window} : index",
                    "%kw = arith.addi %k, %w : index",
                    "%recent = arith.cmpi ugt, %kw, %qpos : index",
                    "%both = arith.andi %keep, %recent : i1",
                ]
            keep = "%both" if window is not None else "%keep"
            lines += [
                "%zero = arith.constant 0.0 : f32",
                "%ninf = arith.constant 0xFF800000 : f32",
                "%%m = arith.select %s, %%zero, %%ninf : f32" % keep,
            ]
            return lines, "%m"
        return e.generic([], [S, T], "f32", [ident(2)], ["parallel"] * 2,
                         body, hint="mask")

    def attention(self, layer, xn, cos, sin, mask, past_k, past_v):
        e, c, dt = self.e, self.cfg, self.dtype
        B, S, P = self.batch, self.q_len, self.past
        H, Hq, Hkv, D = c["hidden"], c["heads"], c["kv_heads"], c["head_dim"]
        G, T = Hq // Hkv, P + S
        w = lambda name, shape: self.arg("l%d_%s" % (layer, name), shape)
        wq, wk, wv = w("wq", [H, Hq * D]), w("wk", [H, Hkv * D]), w("wv", [H, Hkv * D])
        if c["bias"]:
            bq, bk, bv = w("bq", [Hq * D]), w("bk", [Hkv * D]), w("bv", [Hkv * D])
        wo = w("wo", [Hq * D, H])
        x2 = e.op("tensor.collapse_shape %s [[0, 1], [2]] : %s into %s" % (
            xn, ttype([B, S, H], dt), ttype([B * S, H], dt)), "x2")
        proj = {}
        for name, heads, weight in (("q", Hq, wq), ("k", Hkv, wk), ("v", Hkv, wv)):
            y = self.matmul(x2, B * S, H, weight, heads * D)
            if c["bias"]:
                y = self.add_bias(y, B * S, heads * D,
                                  {"q": bq, "k": bk, "v": bv}[name])
            proj[name] = e.op(
                "tensor.expand_shape %s [[0, 1], [2, 3]] output_shape [%d, %d, %d, %d]"
                " : %s into %s" % (y, B, S, heads, D, ttype([B * S, heads * D], dt),
                                   ttype([B, S, heads, D], dt)), name)
        q = self.rope(proj["q"], Hq, cos, sin)
        k = self.rope(proj["k"], Hkv, cos, sin)
        q = self.transpose(q, [B, S, Hq, D], [0, 2, 1, 3])
        k = self.transpose(k, [B, S, Hkv, D], [0, 2, 1, 3])
        v = self.transpose(proj["v"], [B, S, Hkv, D], [0, 2, 1, 3])
        caches = []
        for new, past in ((k, past_k), (v, past_v)):
            caches.append(e.op(
                "tensor.concat dim(2) %s, %s : (%s, %s) -> %s" % (
                    past, new, ttype([B, Hkv, P, D], dt),
                    ttype([B, Hkv, S, D], dt), ttype([B, Hkv, T, D], dt)),
                "cache"))
        kc, vc = caches
        # repeat_kv: every KV head serves G query heads.
        rep = []
        for cache in caches:
            init = e.empty([B, Hkv, G, T, D], dt)
            b = e.op("linalg.broadcast ins(%s : %s) outs(%s : %s) dimensions = [2]"
                     % (cache, ttype([B, Hkv, T, D], dt), init,
                        ttype([B, Hkv, G, T, D], dt)), "rep")
            rep.append(e.op(
                "tensor.collapse_shape %s [[0], [1, 2], [3], [4]] : %s into %s" % (
                    b, ttype([B, Hkv, G, T, D], dt), ttype([B, Hq, T, D], dt)),
                "rep"))
        kt = self.transpose(rep[0], [B, Hq, T, D], [0, 1, 3, 2])
        q3 = e.op("tensor.collapse_shape %s [[0, 1], [2], [3]] : %s into %s" % (
            q, ttype([B, Hq, S, D], dt), ttype([B * Hq, S, D], dt)), "q3")
        kt3 = e.op("tensor.collapse_shape %s [[0, 1], [2], [3]] : %s into %s" % (
            kt, ttype([B, Hq, D, T], dt), ttype([B * Hq, D, T], dt)), "kt3")
        init = e.zeros([B * Hq, S, T], dt)
        s3 = e.op("linalg.batch_matmul ins(%s, %s : %s, %s) outs(%s : %s) -> %s" % (
            q3, kt3, ttype([B * Hq, S, D], dt), ttype([B * Hq, D, T], dt), init,
            ttype([B * Hq, S, T], dt), ttype([B * Hq, S, T], dt)), "scores")
        s4 = e.op("tensor.expand_shape %s [[0, 1], [2], [3]] output_shape "
                  "[%d, %d, %d, %d] : %s into %s" % (
                      s3, B, Hq, S, T, ttype([B * Hq, S, T], dt),
                      ttype([B, Hq, S, T], dt)), "s4")
        # Scale in the model dtype, then mask and softmax in f32.
        scale = 1.0 / math.sqrt(D)
        def scale_mask(*args):
            a = args[0]
            lines = ["%%c = arith.constant %s : %s" % (flt(scale), dt),
                     "%%x = arith.mulf %s, %%c : %s" % (a, dt)]
            x = "%x"
            if dt != "f32":
                lines.append("%%xf = arith.extf %%x : %s to f32" % dt)
                x = "%xf"
            if mask is not None:
                lines.append("%%xm = arith.addf %s, %s : f32" % (x, args[1]))
                x = "%xm"
            return lines, x
        ins = [(s4, ttype([B, Hq, S, T], dt), dt)]
        maps = [ident(4)]
        if mask is not None:
            ins.append((mask, ttype([S, T], "f32"), "f32"))
            maps.append(amap(4, ["d2", "d3"]))
        logits = e.generic(ins, [B, Hq, S, T], "f32", maps + [ident(4)],
                           ["parallel"] * 4, scale_mask, hint="logits")
        probs = self.softmax_f32(logits, [B, Hq, S, T])
        if dt != "f32":
            probs = e.generic([(probs, ttype([B, Hq, S, T], "f32"), "f32")],
                              [B, Hq, S, T], dt, [ident(4), ident(4)],
                              ["parallel"] * 4,
                              lambda a: (["%%t = arith.truncf %s : f32 to %s"
                                          % (a, dt)], "%t"), hint="probs")
        p3 = e.op("tensor.collapse_shape %s [[0, 1], [2], [3]] : %s into %s" % (
            probs, ttype([B, Hq, S, T], dt), ttype([B * Hq, S, T], dt)), "p3")
        v3 = e.op("tensor.collapse_shape %s [[0, 1], [2], [3]] : %s into %s" % (
            rep[1], ttype([B, Hq, T, D], dt), ttype([B * Hq, T, D], dt)), "v3")
        init = e.zeros([B * Hq, S, D], dt)
        o3 = e.op("linalg.batch_matmul ins(%s, %s : %s, %s) outs(%s : %s) -> %s" % (
            p3, v3, ttype([B * Hq, S, T], dt), ttype([B * Hq, T, D], dt), init,
            ttype([B * Hq, S, D], dt), ttype([B * Hq, S, D], dt)), "attn")
        o4 = e.op("tensor.expand_shape %s [[0, 1], [2], [3]] output_shape "
                  "[%d, %d, %d, %d] : %s into %s" % (
                      o3, B, Hq, S, D, ttype([B * Hq, S, D], dt),
                      ttype([B, Hq, S, D], dt)), "o4")
        ot = self.transpose(o4, [B, Hq, S, D], [0, 2, 1, 3])
        o2 = e.op("tensor.collapse_shape %s [[0, 1], [2, 3]] : %s into %s" % (
            ot, ttype([B, S, Hq, D], dt), ttype([B * S, Hq * D], dt)), "o2")
        y = self.matmul(o2, B * S, Hq * D, wo, H)
        y3 = e.op("tensor.expand_shape %s [[0, 1], [2]] output_shape [%d, %d, %d]"
                  " : %s into %s" % (y, B, S, H, ttype([B * S, H], dt),
                                     ttype([B, S, H], dt)), "y")
        return y3, kc, vc

    def softmax_f32(self, x, shape):
        e = self.e
        if self.softmax == "linalg":
            init = e.empty(shape, "f32")
            return e.op("linalg.softmax dimension(3) ins(%s : %s) outs(%s : %s)"
                        " -> %s" % (x, ttype(shape, "f32"), init,
                                    ttype(shape, "f32"), ttype(shape, "f32")),
                        "softmax")
        row = shape[:3]
        red = amap(4, ["d0", "d1", "d2"])
        ninf = e.const(NEG_INF["f32"], "f32")
        minit = e.op("linalg.fill ins(%s : f32) outs(%s : %s) -> %s" % (
            ninf, e.empty(row, "f32"), ttype(row, "f32"), ttype(row, "f32")), "z")
        mx = e.generic([(x, ttype(shape, "f32"), "f32")], row, "f32",
                       [ident(4), red], ["parallel"] * 3 + ["reduction"],
                       lambda a: (["%%m = arith.maximumf %s, %%out : f32" % a],
                                  "%m"), init=minit, hint="max")
        ex = e.generic([(x, ttype(shape, "f32"), "f32"),
                        (mx, ttype(row, "f32"), "f32")], shape, "f32",
                       [ident(4), red, ident(4)], ["parallel"] * 4,
                       lambda a, m: (["%%d = arith.subf %s, %s : f32" % (a, m),
                                      "%x = math.exp %d : f32"], "%x"),
                       hint="exp")
        sm = e.generic([(ex, ttype(shape, "f32"), "f32")], row, "f32",
                       [ident(4), red], ["parallel"] * 3 + ["reduction"],
                       lambda a: (["%%s = arith.addf %s, %%out : f32" % a], "%s"),
                       init=e.zeros(row, "f32"), hint="sum")
        return e.generic([(ex, ttype(shape, "f32"), "f32"),
                          (sm, ttype(row, "f32"), "f32")], shape, "f32",
                         [ident(4), red, ident(4)], ["parallel"] * 4,
                         lambda a, s: (["%%p = arith.divf %s, %s : f32" % (a, s)],
                                       "%p"), hint="softmax")

    def mlp(self, layer, xn):
        e, c, dt = self.e, self.cfg, self.dtype
        B, S, H, I = self.batch, self.q_len, c["hidden"], c["intermediate"]
        w = lambda name, shape: self.arg("l%d_%s" % (layer, name), shape)
        wg, wu, wd = w("w_gate", [H, I]), w("w_up", [H, I]), w("w_down", [I, H])
        x2 = e.op("tensor.collapse_shape %s [[0, 1], [2]] : %s into %s" % (
            xn, ttype([B, S, H], dt), ttype([B * S, H], dt)), "x2")
        gate = self.matmul(x2, B * S, H, wg, I)
        up = self.matmul(x2, B * S, H, wu, I)
        def swiglu(g, u):
            return ([
                "%%ng = arith.negf %s : %s" % (g, dt),
                "%%ex = math.exp %%ng : %s" % dt,
                "%%one = arith.constant 1.0 : %s" % dt,
                "%%den = arith.addf %%one, %%ex : %s" % dt,
                "%%silu = arith.divf %s, %%den : %s" % (g, dt),
                "%%h = arith.mulf %%silu, %s : %s" % (u, dt)], "%h")
        act = e.generic([(gate, ttype([B * S, I], dt), dt),
                         (up, ttype([B * S, I], dt), dt)], [B * S, I], dt,
                        [ident(2)] * 3, ["parallel"] * 2, swiglu, hint="act")
        down = self.matmul(act, B * S, I, wd, H)
        return e.op("tensor.expand_shape %s [[0, 1], [2]] output_shape [%d, %d, %d]"
                    " : %s into %s" % (down, B, S, H, ttype([B * S, H], dt),
                                       ttype([B, S, H], dt)), "mlp")

    def emit(self):
        c, dt = self.cfg, self.dtype
        B, S, P, H = self.batch, self.q_len, self.past, c["hidden"]
        Hkv, D = c["kv_heads"], c["head_dim"]
        x = self.arg("hidden", [B, S, H])
        cos, sin = self.rope_tables()
        mask = self.mask()
        caches = []
        for layer in range(self.layers):
            caches.append((self.arg("l%d_past_k" % layer, [B, Hkv, P, D]),
                           self.arg("l%d_past_v" % layer, [B, Hkv, P, D])))
        presents = []
        for layer in range(self.layers):
            xn = self.rms_norm(x, self.arg("l%d_attn_norm" % layer, [H]))
            y, kc, vc = self.attention(layer, xn, cos, sin, mask, *caches[layer])
            presents += [kc, vc]
            x = self.binary(x, y, [B, S, H], "arith.addf")
            xn = self.rms_norm(x, self.arg("l%d_mlp_norm" % layer, [H]))
            x = self.binary(x, self.mlp(layer, xn), [B, S, H], "arith.addf")
        out = self.rms_norm(x, self.arg("final_norm", [H]))
        cache_type = ttype([B, Hkv, P + S, D], dt)
        results = [ttype([B, S, H], dt)] + [cache_type] * len(presents)
        header = [
            "// %s: %d layer(s), %d query / %d KV heads, head_dim %d, hidden %d,"
            % (self.name, self.layers, c["heads"], Hkv, D, H),
            "// intermediate %d, rope theta %g%s%s." % (
                c["intermediate"], c["theta"],
                ", QKV bias" if c["bias"] else "",
                ", sliding window %d" % c["window"] if c["window"] else ""),
            "// One %s step: batch %d, %d past token(s), %d new token(s), %s."
            % ("decode" if S == 1 else "prefill", B, P, S, dt),
            "// Generated by scripts/gen_examples.py; do not edit.",
            "",
            "func.func @%s_step(" % self.name.replace("-", "_").replace(".", "_"),
        ]
        header.append(",\n".join("    %s: %s" % a for a in self.args))
        header[-1] += ")"
        header.append("    -> (%s) {" % ", ".join(results))
        body = self.e.lines
        ret = ["  return %s : %s" % (", ".join([out] + presents),
                                     ", ".join(results)), "}", ""]
        return "\n".join(header + body + ret)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True,
                        help="output directory, or - for stdout (one model)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated subset of: " + ", ".join(MODELS))
    parser.add_argument("--layers", type=int,
                        help="emit this many layers (default: the model's)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--past", type=int, default=4096,
                        help="past tokens in the KV cache")
    parser.add_argument("--q-len", type=int, default=1,
                        help="new tokens: 1 for decode, more for a prefill chunk")
    parser.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="bf16")
    parser.add_argument("--softmax", choices=["linalg", "decomposed"],
                        default="linalg")
    parser.add_argument("--suffix", default="",
                        help="appended to each file name before .mlir")
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    for name in names:
        if name not in MODELS:
            parser.error("unknown model '%s' (known: %s)" % (name, ", ".join(MODELS)))
    if args.out == "-" and len(names) != 1:
        parser.error("--out - prints exactly one model")
    for value, flag in ((args.batch, "--batch"), (args.q_len, "--q-len")):
        if value < 1:
            parser.error("%s must be at least 1" % flag)
    if args.past < 0 or (args.layers is not None and args.layers < 1):
        parser.error("--past must be >= 0 and --layers >= 1")
    if args.out != "-":
        os.makedirs(args.out, exist_ok=True)
    for name in names:
        cfg = MODELS[name]
        layers = args.layers if args.layers is not None else cfg["layers"]
        text = Model(name, cfg, layers, args.batch, args.past, args.q_len,
                     args.dtype, args.softmax).emit()
        if args.out == "-":
            sys.stdout.write(text)
            continue
        path = os.path.join(args.out, name + args.suffix + ".mlir")
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
