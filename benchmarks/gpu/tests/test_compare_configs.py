"""compare_configs.py: rows of several kvc_attention_bench runs matched by
(encoding, B, S), each build's GPU us and its speedup over the first."""
import json
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                      "compare_configs.py")


def run_json(path, rows):
    path.write_text(json.dumps({"rows": [
        {"encoding": e, "batch": b, "S": s, "ok": ok, "gpu_us_median": us}
        for e, b, s, us, ok in rows]}))
    return str(path)


def compare(*arguments):
    return subprocess.run([sys.executable, SCRIPT, *arguments],
                          capture_output=True, text=True)


def test_speedups_are_over_the_first_build(tmp_path):
    fixed = run_json(tmp_path / "a.json", [("K2/V2 g32", 1, 4096, 120.0, True),
                                           ("fp16", 8, 1024, 50.0, True)])
    adaptive = run_json(tmp_path / "b.json",
                        [("K2/V2 g32", 1, 4096, 40.0, True),
                         ("fp16", 8, 1024, 100.0, False)])
    result = compare(f"fixed={fixed}", f"adaptive={adaptive}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("| encoding | B | S | fixed GPU us | adaptive GPU us "
                        "| adaptive speedup |")
    assert "| K2/V2 g32 | 1 | 4096 | 120.0 | 40.0 | 3.00x |" in lines
    # A failed row has no time and no speedup.
    assert "| fp16 | 8 | 1024 | 50.0 | - | - |" in lines


def test_bad_arguments_are_errors(tmp_path):
    result = compare("no-label")
    assert result.returncode == 1
    assert "expected LABEL=RUN.json" in result.stderr
    result = compare(f"x={tmp_path / 'missing.json'}")
    assert result.returncode == 1
    assert "cannot read" in result.stderr
