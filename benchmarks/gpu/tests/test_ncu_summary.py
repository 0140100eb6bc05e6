"""ncu_summary.py on the real Nsight Compute output of the 2026-12-04 H200
run (benchmarks/results/gpu-profile-2026-12-04-ncu.txt: five ncu runs of
kvc_attention_bench, ncu --set full), whose figures gpu.md's profile table
quotes by hand, and on the output of a run that profiled nothing."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import ncu_summary  # noqa: E402

FIXTURE = os.path.join(HERE, "..", "..", "results",
                       "gpu-profile-2026-12-04-ncu.txt")


def kernels():
    with open(FIXTURE, encoding="utf-8") as report:
        return ncu_summary.parse(report.read())


def test_each_kernel_belongs_to_its_benchmark_row():
    found = [(k.variant, k.length, k.name, k.grid) for k in kernels()]
    assert len(found) == 10
    assert found[0] == ("bench_kf16_vf16_r128_b1_h32x8_d128", 1024,
                        "attend0_split0", "2, 8, 1")
    assert found[7] == ("bench_k2c128_v2t128_r128_b8_h32x8_d128_p128", 32768,
                        "attend1_combine", "32, 8, 1")
    assert found[8][0] == "bench_k2c128_v2t128_r128_b8_h32x8_d128_p128_mma"


def test_metrics_of_the_k2v2_g128_split_kernel_at_batch_8():
    split = kernels()[6]
    assert split.name == "attend1_split0"
    assert split.metric("GPU Speed Of Light Throughput", "Duration") == 743.33
    assert split.metric("GPU Speed Of Light Throughput", "DRAM Throughput") == 4.48
    assert split.metric("Launch Statistics", "Registers Per Thread") == 80
    assert split.metric("Occupancy", "Theoretical Occupancy") == 37.5
    assert split.metric("Scheduler Statistics",
                        "Eligible Warps Per Scheduler") == 0.84
    # Two sections have a "Memory Throughput": % in one, Gbyte/s in the other.
    assert split.metric("GPU Speed Of Light Throughput",
                        "Memory Throughput") != split.metric(
                            "Memory Workload Analysis", "Memory Throughput")
    assert split.stall() == ("long scoreboard (L1TEX: global/local)", 71.3, 11.2)
    # 8 x 32768 tokens x 8 KV heads x 128 channels x keys and values.
    assert split.cache_elements() == 8 * 32768 * 8 * 128 * 2


def test_rows_give_the_instructions_per_cache_element():
    rows = [ncu_summary.row(k) for k in kernels()]
    column = ncu_summary.COLUMNS.index("lane-instructions / cache element")
    # gpu.md: 21.6 (CUDA cores), 17.5 (tensor-core keys), 12.5 (fp16).
    assert [rows[i][column] for i in (4, 6, 8)] == ["12.54", "21.61", "17.51"]
    assert rows[5][column] == ""  # a combine kernel reads no cache
    assert rows[6][ncu_summary.COLUMNS.index("warp instructions (M)")] == "362.55"
    explains = ncu_summary.COLUMNS.index("explains the target")
    assert rows[6][explains].startswith("≥ 85 % of peak at B ≥ 8")
    assert rows[7][explains] == ""  # the combine kernel
    assert rows[0][explains] == ""  # B = 1 at S = 1024: no target there


def test_a_report_without_kernels_is_named(tmp_path):
    report = tmp_path / "ncu-stand-in.txt"
    report.write_text("==PROF== kvc rehearsal stand-in: nothing is profiled\n"
                      "attention_bench: bench_x_b1_h32x8_d128: filled to S=128 in 0.0 s\n"
                      "1 passed, 0 failed\n")
    out = tmp_path / "summary.md"
    assert ncu_summary.main([FIXTURE, str(report), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("## Profile (Nsight Compute)\n")
    assert text.count("| attend") == 10
    assert "No kernel profiled in `ncu-stand-in.txt`" in text


def test_no_table_without_kernels(tmp_path):
    report = tmp_path / "ncu-empty.txt"
    report.write_text("==ERROR== the profiling failed\n")
    text = ncu_summary.render([(str(report), [])], "## Profile")
    assert "| variant |" not in text
    assert "No kernel profiled in `ncu-empty.txt`" in text


def test_an_unreadable_report_fails(tmp_path, capsys):
    assert ncu_summary.main([str(tmp_path / "missing.txt")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_batch_1_kernels_explain_the_batch_1_targets():
    name = "bench_k2c32_v2t32_r128_b1_h32x8_d128_mma_vmma_fused"
    at = lambda S: ncu_summary.Kernel("attend0_split0", "8, 8, 1", "128, 1, 1",
                                      name, S)
    assert ncu_summary.target(at(4096)) == "K2/V2 g32 ≥ 9× SDPA at B = 1, S = 4k"
    assert ncu_summary.target(at(32768)) == "≥ 70 % of peak at B = 1, S = 32k"
    assert ncu_summary.target(at(16384)) == ""
