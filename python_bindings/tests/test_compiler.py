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


ATTEND = """
func.func @attend(%c: !kvc.cache<1x2x?x64xf16>, %q: tensor<1x8x1x64xf32>) -> tensor<1x8x1x64xf32> {
  %o = kvc.attend %q, %c : tensor<1x8x1x64xf32>, !kvc.cache<1x2x?x64xf16> -> tensor<1x8x1x64xf32>
  return %o : tensor<1x8x1x64xf32>
}
"""


def test_gpu_chip_is_checked():
    """A chip, PTX version or instruction LLVM's NVPTX backend does not take
    would abort the process there; kvc-gpu-pipeline raises a CompileError."""
    with pytest.raises(kvc.CompileError, match="key-product=mma needs chip sm_80"):
        kvc.run_pipeline(ATTEND, "builtin.module(kvc-gpu-pipeline{chip=sm_75 key-product=mma format=isa})")
    with pytest.raises(kvc.CompileError, match="chip 'sm_90x' is not a processor"):
        kvc.run_pipeline(ATTEND, "builtin.module(kvc-gpu-pipeline{chip=sm_90x format=isa})")
    with pytest.raises(kvc.CompileError, match="needs PTX 8.6 or later"):
        kvc.run_pipeline(ATTEND, "builtin.module(kvc-gpu-pipeline{chip=sm_100a features=+ptx80 format=isa})")
    sm100 = "builtin.module(kvc-gpu-pipeline{chip=sm_100a format=isa})"
    if not _cuda_toolkit_has_libdevice():
        # PTX calling unlinked libdevice functions would not load.
        with pytest.raises(kvc.CompileError, match="needs libdevice"):
            kvc.run_pipeline(ATTEND, sm100)
        return
    ptx = kvc.run_pipeline(ATTEND, sm100)
    assert 'features = "+ptx86"' in ptx and ".version 8.6" in ptx
    assert "__nv_" not in ptx


def _cuda_toolkit_has_libdevice():
    """Where kvc-gpu-pipeline (upstream's NVVM target) looks for libdevice."""
    for var in ("CUDA_ROOT", "CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.path.isfile(
                os.path.join(os.environ[var], "nvvm", "libdevice", "libdevice.10.bc"))
    return False
