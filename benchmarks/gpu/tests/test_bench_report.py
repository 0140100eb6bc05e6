"""bench_report.py: the merge of a kvc benchmark run and its SDPA baseline,
the speedups and issue 5's targets, on small hand-made inputs."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bench_report  # noqa: E402


def kvc_row(encoding, batch, S, us, percent, ok=True, ran=True, problem=""):
    return {"encoding": encoding, "name": "bench_x", "batch": batch, "S": S,
            "ok": ok, "ran": ran, "problem": problem, "gpu_us_median": us,
            "gpu_us_p10": us * 0.9, "gpu_us_p90": us * 1.1, "gpu_us_min": us * 0.8,
            "call_us_median": us + 20, "bytes": 1_000_000, "tbps": 1.0,
            "percent_of_peak": percent, "storage_bits_per_element": 3.0}


def sdpa_row(batch, S, us):
    return {"batch": batch, "S": S, "ok": True, "ran": True, "problem": "",
            "gpu_us_median": us, "gpu_us_p10": us, "gpu_us_p90": us,
            "bytes": 2_000_000, "tbps": 2.0, "percent_of_peak": 60.0}


KVC = {"command": "kvc_attention_bench --json k.json", "device": "H100",
       "timing": "cuda events", "reps": 50, "warmup": 10, "seed": 7,
       "l2_flush_bytes": 100_000_000, "peak_tbps": 3.35,
       "rows": [kvc_row("K2/V2 g32", 32, 32768, 100.0, 90.0),
                kvc_row("K2/V2 g32", 1, 4096, 10.0, 40.0),
                kvc_row("K2/V2 g128", 32, 32768, 100.0, 80.0),
                kvc_row("K4/V4 g128", 32, 32768, 0, 0, ok=False,
                        problem="3 of 4096 outputs are not finite"),
                kvc_row("K8/V8 g128", 1, 32768, 50.0, 0, ok=False, ran=False,
                        problem="time budget"),
                kvc_row("fp16", 32, 32768, 600.0, 50.0)]}
SDPA = {"command": "sdpa_baseline.py --json s.json", "device": "H100",
        "torch": "2.5.1", "cuda": "12.4", "reps": 50,
        "rows": [sdpa_row(32, 32768, 500.0), sdpa_row(1, 4096, 95.0)]}


def statuses():
    return {(r["target"].text, r["encoding"], r["batch"], r["S"]):
            (r["status"], r["value"]) for r in bench_report.evaluate(KVC, SDPA)}


def test_speedup_is_sdpa_over_kvc():
    assert bench_report.speedup(KVC["rows"][0], SDPA["rows"][0]) == 5.0
    assert bench_report.speedup(KVC["rows"][3], SDPA["rows"][0]) is None
    assert bench_report.speedup(KVC["rows"][0], None) is None


def test_targets_met_not_met_and_not_measured():
    s = statuses()
    peak85 = bench_report.TARGETS[0].text
    assert s[(peak85, "K2/V2 g32", 32, 32768)] == ("met", 90.0)
    assert s[(peak85, "K2/V2 g128", 32, 32768)] == ("not met", 80.0)
    assert s[(peak85, "K4/V4 g128", 32, 32768)] == ("not measured", None)
    # kvc's fp16 kernel is the reference row: no target.
    assert not any(key[1] == "fp16" for key in s)
    assert s[(bench_report.TARGETS[1].text, "K8/V8 g128", 1, 32768)][0] == \
        "not measured"
    assert s[(bench_report.TARGETS[2].text, "K2/V2 g128", 32, 32768)] == \
        ("not met", 5.0)
    assert s[(bench_report.TARGETS[3].text, "K2/V2 g32", 32, 32768)] == \
        ("met", 5.0)
    assert s[(bench_report.TARGETS[4].text, "K2/V2 g32", 1, 4096)] == \
        ("met", 9.5)
    assert s[(bench_report.TARGETS[5].text, "K4/V4 g128", 32, 32768)][0] == \
        "not measured"


def test_report_file(tmp_path):
    for name, data in (("k.json", KVC), ("s.json", SDPA)):
        (tmp_path / name).write_text(json.dumps(data))
    (tmp_path / "machine.txt").write_text("NVIDIA H100 80GB HBM3, 550.54.15\n")
    (tmp_path / "commands.txt").write_text("scripts/gpu_attention_bench.sh\n")
    out = tmp_path / "report.md"
    assert bench_report.main(
        ["--kvc", str(tmp_path / "k.json"), "--sdpa", str(tmp_path / "s.json"),
         "--machine", str(tmp_path / "machine.txt"), "--commands",
         str(tmp_path / "commands.txt"), "--date", "2025-01-02",
         "--out", str(out)]) == 0
    text = out.read_text()
    assert "(2025-01-02)" in text
    assert "NVIDIA H100 80GB HBM3, 550.54.15" in text
    assert "scripts/gpu_attention_bench.sh" in text
    assert "# kvc: kvc_attention_bench --json k.json" in text
    for encoding in ("K2/V2 g32", "K2/V2 g128", "K4/V4 g128", "fp16"):
        assert f"## {encoding} (" in text
    # The B = 32, S = 32k row of K2/V2 g32: 500 / 100 = 5x, both targets.
    row = next(line for line in text.splitlines()
               if line.startswith("| 32 | 32768 | 100.0 (90.0-110.0)"))
    assert "| 500.0 | 2.000 | 5.00 |" in row
    assert ">= 85% of peak: met" in row
    assert "K2/V2 g32 >= 4.5x SDPA: met" in row
    assert "FAIL: 3 of 4096 outputs are not finite" in text
    assert "not run: time budget" in text
    # Plus the append share at 4 rows, none of them timed here.
    assert "3 met, 2 not met, 7 not measured" in text


def test_missing_baseline_leaves_speedups_unmeasured(tmp_path):
    (tmp_path / "k.json").write_text(json.dumps(KVC))
    out = tmp_path / "report.md"
    bench_report.main(["--kvc", str(tmp_path / "k.json"), "--sdpa",
                       str(tmp_path / "missing.json"), "--out", str(out)])
    text = out.read_text()
    assert "| K2/V2 g32 >= 9x SDPA at B = 1, S = 4k | K2/V2 g32 | 1 | 4096 | -x " \
           "| not measured |" in text


def test_append_share_is_of_the_attention_device_time():
    # Runs since wait-on-return=false: both device times (CUDA events).
    row = kvc_row("K2/V2 g32", 1, 4096, 10.0, 40.0)  # GPU us: 10
    row.update(append_gpu_us_per_step=None, append_enqueue_us_per_step=None)
    assert bench_report.append_share(row) is None  # not timed
    row.update(append_gpu_us_per_step=0.4, append_enqueue_us_per_step=7.5,
               enqueue_us_median=12.5)
    assert abs(bench_report.append_share(row) - 4.0) < 1e-9
    big = dict(kvc_row("K2/V2 g128", 32, 32768, 100.0, 80.0),
               append_gpu_us_per_step=7.5, append_enqueue_us_per_step=9.0)
    kvc = dict(KVC, wait_on_return="false", rows=[row, big])
    got = {(r["encoding"], r["batch"], r["S"]): (r["status"], r["value"])
           for r in bench_report.evaluate(kvc, SDPA)
           if r["target"].kind == "append"}
    assert got[("K2/V2 g32", 1, 4096)] == ("met", 4.0)
    assert got[("K2/V2 g128", 32, 32768)] == ("not met", 7.5)
    text = bench_report.render(kvc, SDPA)
    # GPU us, enqueue us, call us, append GPU us (share), append enqueue us.
    assert "| 1 | 4096 | 10.0 (9.0-11.0) | 12.5 | 30.0 | 0.4 (4.0) | 7.5 |" \
        in text
    assert "wait-on-return false" in text


def test_append_share_of_older_runs_is_of_the_call_time():
    # Runs from before: host clock times of whole calls.
    row = kvc_row("K2/V2 g32", 1, 4096, 10.0, 40.0)  # call us: 30
    assert bench_report.append_share(row) is None  # not timed
    row["append_us_per_step"] = 1.2
    assert abs(bench_report.append_share(row) - 4.0) < 1e-9
    kvc = dict(KVC, rows=[row, dict(kvc_row("K2/V2 g128", 32, 32768, 100.0,
                                            80.0), append_us_per_step=9.0),
                          kvc_row("K4/V2 g32", 1, 4096, 0, 0, ok=False)])
    got = {(r["encoding"], r["batch"], r["S"]): (r["status"], r["value"])
           for r in bench_report.evaluate(kvc, SDPA)
           if r["target"].kind == "append"}
    assert got[("K2/V2 g32", 1, 4096)][0] == "met"
    assert got[("K2/V2 g128", 32, 32768)] == ("not met", 7.5)
    assert got[("K4/V2 g32", 1, 4096)] == ("not measured", None)
    text = bench_report.render(kvc, SDPA)
    assert "| 1.2 (4.0) | - |" in text
    assert "the append's share is of the call" in text


def test_tensor_core_rows_meet_targets_on_their_own():
    # The same encoding with the tensor-core key pass (key-product=mma) is
    # a row of its own, measured against the same targets.
    rows = [kvc_row("K2/V2 g32", 32, 32768, 125.0, 70.0),
            kvc_row("K2/V2 g32 mma", 32, 32768, 100.0, 88.0)]
    got = {(r["target"].text, r["encoding"]): (r["status"], r["value"])
           for r in bench_report.evaluate(dict(KVC, rows=rows), SDPA)}
    speedup = bench_report.TARGETS[3].text  # K2/V2 g32 >= 4.5x at B 32
    assert got[(speedup, "K2/V2 g32")] == ("not met", 4.0)
    assert got[(speedup, "K2/V2 g32 mma")] == ("met", 5.0)
    peak85 = bench_report.TARGETS[0].text
    assert got[(peak85, "K2/V2 g32")] == ("not met", 70.0)
    assert got[(peak85, "K2/V2 g32 mma")] == ("met", 88.0)
    assert "## K2/V2 g32 mma (" in bench_report.render(dict(KVC, rows=rows),
                                                        SDPA)


def test_tensor_core_value_rows_take_their_encodings_targets():
    # value-product=mma rows (" vmma", " mma vmma") are rows of their own
    # under the encoding's targets.
    assert bench_report.base_encoding("K2/V2 g32 mma vmma") == "K2/V2 g32"
    assert bench_report.base_encoding("K4/V4 g128 vmma") == "K4/V4 g128"
    assert bench_report.base_encoding("K2/V2 g32 mma vmma l2bulk") == \
        "K2/V2 g32"
    rows = [kvc_row("K2/V2 g32", 32, 32768, 125.0, 70.0),
            kvc_row("K2/V2 g32 mma vmma", 32, 32768, 100.0, 88.0)]
    got = {(r["target"].text, r["encoding"]): (r["status"], r["value"])
           for r in bench_report.evaluate(dict(KVC, rows=rows), SDPA)}
    speedup = bench_report.TARGETS[3].text  # K2/V2 g32 >= 4.5x at B 32
    assert got[(speedup, "K2/V2 g32 mma vmma")] == ("met", 5.0)


def test_key_stages_rows_take_their_encodings_targets():
    # key-stages rows (" ks2", after " l2bulk" when both) are rows of their
    # own under the encoding's targets.
    assert bench_report.base_encoding("K2/V2 g32 mma vmma ks2") == \
        "K2/V2 g32"
    assert bench_report.base_encoding("K4/V4 g128 mma vmma l2bulk ks2") == \
        "K4/V4 g128"
    assert bench_report.base_encoding("K2/V2 g128 mma vmma ks3") == \
        "K2/V2 g128"
    rows = [kvc_row("K2/V2 g32", 32, 32768, 125.0, 70.0),
            kvc_row("K2/V2 g32 mma vmma ks2", 32, 32768, 100.0, 88.0),
            kvc_row("K2/V2 g32 mma vmma l2bulk ks2", 32, 32768, 80.0, 90.0)]
    got = {(r["target"].text, r["encoding"]): (r["status"], r["value"])
           for r in bench_report.evaluate(dict(KVC, rows=rows), SDPA)}
    speedup = bench_report.TARGETS[3].text  # K2/V2 g32 >= 4.5x at B 32
    assert got[(speedup, "K2/V2 g32 mma vmma ks2")] == ("met", 5.0)
    assert got[(speedup, "K2/V2 g32 mma vmma l2bulk ks2")] == ("met", 6.25)
    peak85 = bench_report.TARGETS[0].text
    assert got[(peak85, "K2/V2 g32 mma vmma ks2")] == ("met", 88.0)
    text = bench_report.render(dict(KVC, rows=rows), SDPA)
    assert "## K2/V2 g32 mma vmma ks2 (" in text
    assert "## K2/V2 g32 mma vmma l2bulk ks2 (" in text


def test_fused_combine_rows_take_their_encodings_targets():
    # combine=fused rows (" fused", last) are rows of their own under the
    # encoding's targets, beside the same kernels with a combine kernel.
    assert bench_report.base_encoding("K2/V2 g32 mma vmma fused") == \
        "K2/V2 g32"
    assert bench_report.base_encoding(
        "K2/V2 g128 mma vmma l2bulk ks2 vs2 fused") == "K2/V2 g128"
    rows = [kvc_row("K2/V2 g32 mma vmma", 32, 32768, 100.0, 88.0),
            kvc_row("K2/V2 g32 mma vmma fused", 32, 32768, 80.0, 90.0)]
    got = {(r["target"].text, r["encoding"]): (r["status"], r["value"])
           for r in bench_report.evaluate(dict(KVC, rows=rows), SDPA)}
    speedup = bench_report.TARGETS[3].text  # K2/V2 g32 >= 4.5x at B 32
    assert got[(speedup, "K2/V2 g32 mma vmma")] == ("met", 5.0)
    assert got[(speedup, "K2/V2 g32 mma vmma fused")] == ("met", 6.25)


def test_fastest_kernel_per_encoding_batch_and_length():
    # Rows of one encoding, B and S compete; failed rows and lone rows
    # do not; the report names the fastest, its runner-up and the margin.
    rows = [kvc_row("K2/V2 g32", 32, 32768, 120.0, 70.0),
            kvc_row("K2/V2 g32 mma vmma", 32, 32768, 100.0, 84.0),
            kvc_row("K2/V2 g32 mma vmma fused", 32, 32768, 80.0, 90.0),
            kvc_row("K2/V2 g32 mma vmma l2bulk", 32, 32768, 0, 0, ok=False,
                    problem="3 of 4096 outputs are not finite"),
            kvc_row("K2/V2 g32", 1, 4096, 10.0, 40.0),
            kvc_row("K2/V2 g32 mma vmma", 1, 4096, 12.0, 33.0),
            kvc_row("K4/V4 g128", 32, 32768, 60.0, 80.0)]
    fastest = bench_report.fastest_kernels(dict(KVC, rows=rows))
    assert [(f["encoding"], f["batch"], f["S"]) for f in fastest] == \
        [("K2/V2 g32", 32, 32768), ("K2/V2 g32", 1, 4096)]
    assert [k[0] for k in fastest[0]["kernels"]] == \
        ["mma vmma fused", "mma vmma", "plain"]
    assert [k[0] for k in fastest[1]["kernels"]] == ["plain", "mma vmma"]
    text = bench_report.render(dict(KVC, rows=rows), SDPA)
    assert "## Fastest kernel per encoding, B and S" in text
    assert ("| K2/V2 g32 | 32 | 32768 | mma vmma fused | 80.0 | 90.0 | "
            "mma vmma | 100.0 | 1.250 | 120.0 |") in text
    assert ("| K2/V2 g32 | 1 | 4096 | plain | 10.0 | 40.0 | mma vmma | "
            "12.0 | 1.200 | 10.0 |") in text
