#!/usr/bin/env python3
"""Writes the small ONNX models of the ONNX frontend's lit tests.

  .venv/bin/python test/Frontend/ONNX/Inputs/gen_models.py [OUT_DIR] [--refs]

Each model is built with the onnx helper API and checked with
onnx.checker (the bad-input ones excepted); the .onnx files are committed
next to this script, so the tests do not need Python. With onnxruntime
available, `--refs` also writes an onnxruntime reference (*.ref.npz, keys
in:<input>/out:<output>) for the models that run on plain onnxruntime.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
I64 = TensorProto.INT64


def save(model, out_dir, name, check=True):
    if check:
        onnx.checker.check_model(model)
    path = os.path.join(out_dir, name + ".onnx")
    onnx.save(model, path)
    return path


def model(nodes, inputs, outputs, inits=(), opset=18, extra_opsets=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    ops = [helper.make_opsetid("", opset)] + list(extra_opsets)
    m = helper.make_model(graph, opset_imports=ops, producer_name="kvc-tests")
    m.ir_version = 10
    return m


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def attention_models(out):
    # ONNX Attention-23 over a past cache: 4 query heads, 2 KV heads,
    # decode of one token, boolean padding mask over past + new.
    q = vi("q", F, [1, 4, 1, 8])
    k = vi("k", F, [1, 2, 1, 8])
    v = vi("v", F, [1, 2, 1, 8])
    mask = vi("mask", TensorProto.BOOL, [1, 1, 1, 6])
    pk = vi("past_key", F, [1, 2, 5, 8])
    pv = vi("past_value", F, [1, 2, 5, 8])
    node = helper.make_node(
        "Attention", ["q", "k", "v", "mask", "past_key", "past_value"],
        ["y", "present_key", "present_value"], scale=0.25, name="attn")
    save(model([node], [q, k, v, mask, pk, pv],
               [vi("y", F, [1, 4, 1, 8]), vi("present_key", F, [1, 2, 6, 8]),
                vi("present_value", F, [1, 2, 6, 8])], opset=23),
         out, "attention_past")

    # 3-D (batch x tokens x heads*dim) prefill without a past, causal.
    q3 = vi("q", F, ["batch", 3, 32])
    k3 = vi("k", F, ["batch", 3, 16])
    v3 = vi("v", F, ["batch", 3, 16])
    node = helper.make_node("Attention", ["q", "k", "v"],
                            ["y", "present_key", "present_value"],
                            q_num_heads=4, kv_num_heads=2, is_causal=1,
                            name="attn3d")
    save(model([node], [q3, k3, v3],
               [vi("y", F, ["batch", 3, 32]),
                vi("present_key", F, ["batch", 2, 3, 8]),
                vi("present_value", F, ["batch", 2, 3, 8])], opset=23),
         out, "attention_3d_causal")

    # A decode step in the argument order kvc-run's decode mode calls:
    # (cache, q, k, v) -> (out, cache), head_dim 64 so that the default
    # encodings apply. past_key/past_value come first and become the cache.
    node = helper.make_node(
        "Attention", ["q", "k", "v", "", "past_key", "past_value"],
        ["y", "present_key", "present_value"], name="attn_decode")
    save(model([node],
               [vi("past_key", F, [1, 2, 7, 64]),
                vi("past_value", F, [1, 2, 7, 64]), vi("q", F, [1, 4, 1, 64]),
                vi("k", F, [1, 2, 1, 64]), vi("v", F, [1, 2, 1, 64])],
               [vi("y", F, [1, 4, 1, 64]), vi("present_key", F, [1, 2, 8, 64]),
                vi("present_value", F, [1, 2, 8, 64])], opset=23),
         out, "attention_decode")

    ms = helper.make_opsetid("com.microsoft", 1)
    # com.microsoft GroupQueryAttention (BSH inputs, BNSH past).
    # head_dim 32, so that the default encodings (groups of 32) apply.
    gqa_in = [vi("query", F, [2, 1, 128]), vi("key", F, [2, 1, 64]),
              vi("value", F, [2, 1, 64]), vi("past_key", F, [2, 2, 7, 32]),
              vi("past_value", F, [2, 2, 7, 32]),
              vi("seqlens_k", TensorProto.INT32, [2]),
              vi("total_sequence_length", TensorProto.INT32, [])]
    gqa_out = [vi("output", F, [2, 1, 128]),
               vi("present_key", F, [2, 2, 8, 32]),
               vi("present_value", F, [2, 2, 8, 32])]
    names = [i.name for i in gqa_in]
    node = helper.make_node("GroupQueryAttention", names,
                            ["output", "present_key", "present_value"],
                            domain="com.microsoft", num_heads=4,
                            kv_num_heads=2, name="gqa")
    save(model([node], gqa_in, gqa_out, extra_opsets=[ms]), out, "gqa",
         check=False)
    node = helper.make_node("GroupQueryAttention", names,
                            ["output", "present_key", "present_value"],
                            domain="com.microsoft", num_heads=4,
                            kv_num_heads=2, do_rotary=1, name="gqa_rotary")
    save(model([node], gqa_in, gqa_out, extra_opsets=[ms]), out,
         "gqa_rotary", check=False)

    # com.microsoft MultiHeadAttention with a past and an attention bias.
    mha_in = [vi("query", F, [1, 1, 32]), vi("key", F, [1, 1, 32]),
              vi("value", F, [1, 1, 32]), vi("bias_bhst", F, [1, 1, 1, 5])]
    pk4 = vi("past_key", F, [1, 4, 4, 8])
    pv4 = vi("past_value", F, [1, 4, 4, 8])
    node = helper.make_node(
        "MultiHeadAttention",
        ["query", "key", "value", "", "", "bias_bhst", "past_key",
         "past_value"], ["output", "present_key", "present_value"],
        domain="com.microsoft", num_heads=4, name="mha")
    save(model([node], mha_in + [pk4, pv4],
               [vi("output", F, [1, 1, 32]), vi("present_key", F, [1, 4, 5, 8]),
                vi("present_value", F, [1, 4, 5, 8])], extra_opsets=[ms]),
         out, "mha", check=False)


def shape_model(out):
    """Shape arithmetic the TorchScript exporter emits, on a dynamic batch
    and sequence: the result reshapes x to (batch, seq, 2, 4) by a shape
    computed from Shape/Gather/Unsqueeze/Concat, adds a position table made
    by Range/Expand, masks with Where/Equal and slices the last half."""
    x = vi("x", F, ["batch", "seq", 8])
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Constant", [], ["c0"], value_int=0),
        helper.make_node("Constant", [], ["c1"], value_int=1),
        helper.make_node("Gather", ["shape", "c0"], ["batch"], axis=0),
        helper.make_node("Gather", ["shape", "c1"], ["seq"], axis=0),
        helper.make_node("Constant", [], ["axes0"], value_ints=[0]),
        helper.make_node("Unsqueeze", ["batch", "axes0"], ["b1"]),
        helper.make_node("Unsqueeze", ["seq", "axes0"], ["s1"]),
        helper.make_node("Constant", [], ["heads"], value_ints=[2, -1]),
        helper.make_node("Concat", ["b1", "s1", "heads"], ["newshape"], axis=0),
        helper.make_node("Reshape", ["x", "newshape"], ["x4"]),
        # positions 0..seq-1 as float, broadcast over (batch, seq, 2, 4)
        helper.make_node("Range", ["c0", "seq", "c1"], ["pos"]),
        helper.make_node("Cast", ["pos"], ["posf"], to=F),
        helper.make_node("Constant", [], ["axes123"], value_ints=[0, 2, 3]),
        helper.make_node("Unsqueeze", ["posf", "axes123"], ["pos4"]),
        helper.make_node("Shape", ["x4"], ["shape4"]),
        helper.make_node("ConstantOfShape", ["shape4"], ["ones"],
                         value=helper.make_tensor("v", F, [1], [1.0])),
        helper.make_node("Expand", ["pos4", "shape4"], ["posx"]),
        helper.make_node("Add", ["x4", "posx"], ["sum"]),
        helper.make_node("Constant", [], ["minus1"], value_int=-1),
        helper.make_node("Equal", ["shape4", "minus1"], ["isneg"]),
        helper.make_node("Where", ["isneg", "shape4", "shape4"], ["shape4b"]),
        helper.make_node("Expand", ["ones", "shape4b"], ["ones2"]),
        helper.make_node("Mul", ["sum", "ones2"], ["prod"]),
        helper.make_node("Constant", [], ["st"], value_ints=[2]),
        helper.make_node("Constant", [], ["en"], value_ints=[2 ** 62]),
        helper.make_node("Constant", [], ["ax"], value_ints=[-1]),
        helper.make_node("Slice", ["prod", "st", "en", "ax"], ["y"]),
    ]
    save(model(nodes, [x], [vi("y", F, ["batch", "seq", 2, 2])]), out,
         "shape_arith")


def bad_models(out):
    x = vi("x", F, [2, 3])
    y = vi("y", F, [2, 3])
    save(model([helper.make_node("FooBar", ["x"], ["y"], name="mystery")],
               [x], [y]), out, "unknown_op", check=False)
    save(model([helper.make_node("Softmax", ["x"], ["y"], axis=1, flavor=2,
                                 name="fancy_softmax")], [x], [y]),
         out, "unsupported_attr", check=False)
    # A weight stored in a file that is not there.
    w = numpy_helper.from_array(np.ones((3, 3), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "missing_weights.bin"), ("offset", "0"),
                       ("length", "36")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    save(model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
               [x], [y], inits=[w]), out, "external_missing", check=False)
    # The same weight in a file beside the model (read), and one whose
    # location leaves the model's directory (refused).
    data = np.arange(9, dtype=np.float32).reshape(3, 3)
    with open(os.path.join(out, "external_ok.bin"), "wb") as f:
        f.write(b"\0" * 8 + data.tobytes())
    for name, location in (("external_ok", "external_ok.bin"),
                           ("external_escape", "../external_ok.bin")):
        t = numpy_helper.from_array(data, "w")
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "8"),
                           ("length", "36")):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        save(model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                   [vi("x", F, [2, 3])], [vi("y", F, [2, 3])], inits=[t]),
             out, name, check=False)
    # An initializer whose raw data is shorter than its dims say.
    short = numpy_helper.from_array(np.ones((3, 3), np.float32), "w")
    short.raw_data = short.raw_data[:20]
    save(model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
               [x], [y], inits=[short]), out, "short_initializer",
         check=False)
    # Found by the fuzzer: a float-only op on booleans.
    save(model([helper.make_node("Softmax", ["b"], ["y"], name="bool_softmax")],
               [vi("b", TensorProto.BOOL, [2, 3])], [y]), out, "bool_softmax",
         check=False)
    # Two dynamic operands whose --input-shape values do not broadcast.
    save(model([helper.make_node("Add", ["a", "b"], ["c"], name="add_ab")],
               [vi("a", F, ["n", 3]), vi("b", F, ["m", 3])],
               [vi("c", F, ["n", 3])]), out, "add_dynamic")
    # Uses a value no node defines.
    save(model([helper.make_node("Add", ["x", "ghost"], ["y"], name="add")],
               [x], [y]), out, "undefined_input", check=False)


def references(out):
    """onnxruntime references of the models kvc-run can execute."""
    import onnxruntime as ort
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    session = ort.InferenceSession(os.path.join(out, "shape_arith.onnx"),
                                   providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x})
    np.savez(os.path.join(out, "shape_arith.ref.npz"), **{"in:x": x,
                                                          "out:y": y})


def main():
    args = [a for a in sys.argv[1:] if a != "--refs"]
    out = args[0] if args else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out, exist_ok=True)
    attention_models(out)
    shape_model(out)
    bad_models(out)
    if "--refs" in sys.argv:
        references(out)


if __name__ == "__main__":
    main()
