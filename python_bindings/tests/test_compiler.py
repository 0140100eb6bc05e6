"""kvc.run_pipeline: kvc's passes and pipelines on IR text."""
import os
import subprocess
import sys

import pytest

import kvc

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


@pytest.fixture(scope="module")
def decode_step(tmp_path_factory):
    """A 2-layer Llama-3-8B decode step in linalg, from the example generator."""
    out = tmp_path_factory.mktemp("examples")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_examples.py"),
                    "--out", str(out), "--models", "llama3-8b", "--layers", "2",
                    "--past", "16"], check=True, capture_output=True)
    with open(out / "llama3-8b.mlir") as f:
        return f.read()


def test_compress_raises_and_encodes(decode_step):
    out = kvc.run_pipeline(
        decode_step,
        "builtin.module(kvc-compress{spec=key=q4:channel:g32,value=q2:token:g32,residual=64 report=none})")
    assert out.count("kvc.attend") == 2
    assert out.count("kvc.append") == 2
    assert "quant<bits = 4, axis = channel, group = 32>" in out
    assert "quant<bits = 2, axis = token, group = 32>" in out


def test_cpu_pipeline_lowers_to_llvm(decode_step):
    raised = kvc.run_pipeline(decode_step, "builtin.module(kvc-compress{report=none})")
    lowered = kvc.run_pipeline(raised, "builtin.module(kvc-cpu-pipeline)")
    assert "llvm.func" in lowered
    assert "kvc." not in lowered.replace("kvc_rt", "").replace("kvc.layer", "")


def test_parse_error_is_located():
    with pytest.raises(kvc.CompileError, match=r"<python>:1:18: error: custom op 'retur'"):
        kvc.run_pipeline("func.func @f() { retur }", "builtin.module(canonicalize)")


def test_unknown_pass_is_an_error():
    with pytest.raises(kvc.CompileError, match="no-such-pass"):
        kvc.run_pipeline("module {}", "builtin.module(no-such-pass)")


def test_bad_spec_is_an_error(decode_step):
    with pytest.raises(kvc.CompileError, match="q9"):
        kvc.run_pipeline(decode_step,
                         "builtin.module(kvc-compress{spec=key=q9:channel:g32})")


def test_generic_printing():
    out = kvc.run_pipeline("func.func @f() { return }", "builtin.module(canonicalize)",
                           generic=True)
    assert '"func.func"()' in out
