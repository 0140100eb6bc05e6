"""run_smollm2.py's window log: a long run goes in parts, a logged result is
reused only for the same configuration, window, scoring and cache policy,
and a partial run is summarized on the windows every configuration has."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import run_smollm2  # noqa: E402
import tinylm  # noqa: E402


def record(config, window, policy="fp16", nll=1.0):
    return {"config": config, "context": 1024, "source": "dev.txt", "window": window,
            "score_from": 256, "policy": policy, "nll": nll, "tokens": 768, "seconds": 1.0}


def test_policy_key_follows_the_cache_policy():
    a = tinylm.KVPolicy([("q2:channel:g32", "q2:token:g32")] * 2, 128)
    same = tinylm.KVPolicy([("q2:channel:g32", "q2:token:g32")] * 2, 128)
    other_bits = tinylm.KVPolicy([("q4:channel:g32", "q2:token:g32")] * 2, 128)
    with_sink = tinylm.KVPolicy([("q2:channel:g32", "q2:token:g32")] * 2, 128, sink=4)
    rotated = tinylm.KVPolicy([("q2:channel:g32", "q2:token:g32")] * 2, 128, rotate_keys=True)
    key = run_smollm2.policy_key
    assert key(a) == key(same)
    assert len({key(a), key(other_bits), key(with_sink), key(rotated), key(None)}) == 5


def test_load_log_keeps_only_matching_results(tmp_path):
    log = tmp_path / "windows.jsonl"
    lines = [record("fp16", 0), record("kivi2", 0, policy="abc"),
             record("kivi2", 1, policy="stale"), record("fp16", 1) | {"score_from": 128}]
    log.write_text("".join(json.dumps(r) + "\n" for r in lines) + "\n")
    wanted = {run_smollm2._work_key("fp16", 1024, "dev.txt", w, 256, "fp16") for w in (0, 1)}
    wanted |= {run_smollm2._work_key("kivi2", 1024, "dev.txt", w, 256, "abc") for w in (0, 1)}
    done = run_smollm2.load_log(str(log), wanted)
    assert sorted((k[0], k[3]) for k in done) == [("fp16", 0), ("kivi2", 0)]
    assert run_smollm2.load_log(str(tmp_path / "absent.jsonl"), wanted) == {}


def test_load_log_rejects_a_line_that_is_not_a_result(tmp_path):
    log = tmp_path / "windows.jsonl"
    log.write_text(json.dumps(record("fp16", 0)) + "\n{\"config\": \"fp16\"}\n")
    with pytest.raises(SystemExit, match=r"windows.jsonl:2: not a window result"):
        run_smollm2.load_log(str(log), set())
    log.write_text("not json\n")
    with pytest.raises(SystemExit, match=r"windows.jsonl:1: not a window result"):
        run_smollm2.load_log(str(log), set())


def test_complete_windows_pairs_the_configurations():
    windows = [record("fp16", 0), record("kivi2", 0), record("fp16", 1), record("kivi4", 0),
               record("kivi2", 2)]
    kept = run_smollm2.complete_windows(windows, ["fp16", "kivi2"], [1024])
    assert sorted((w["config"], w["window"]) for w in kept) == [("fp16", 0), ("kivi2", 0)]
    assert run_smollm2.complete_windows(windows, ["fp16", "kivi2"], [4096]) == []
