"""The window log of run_smollm2.py and run_eviction.py (runlog.py): a long
run goes in parts, a logged result is reused only for the same
configuration, window, scoring and cache policy, and a partial run is
summarized on the windows every configuration has."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import eviction  # noqa: E402
import runlog  # noqa: E402
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
    key = runlog.policy_key
    assert key(a) == key(same)
    assert len({key(a), key(other_bits), key(with_sink), key(rotated), key(None)}) == 5
    # Layers without eviction leave the key as it was (logs stay valid).
    assert key(a, [None, None]) == key(a) and key(None, [None, None]) == "fp16"


def test_policy_key_follows_the_evictions():
    import kvc  # noqa: F401 (eviction.Eviction checks its spec with it)
    a = tinylm.KVPolicy([("q4:channel:g32", "q2:token:g32")] * 2, 128)
    h2o = eviction.Eviction("h2o:sink=4:window=128:budget=256")
    h2o_again = eviction.Eviction("h2o:sink=4:window=128:budget=256")
    smaller = eviction.Eviction("h2o:sink=4:window=64:budget=128")
    two_tier = eviction.Eviction("h2o:sink=4:window=128:budget=256",
                                 "q2:token:g32", "q2:token:g32")
    key = runlog.policy_key
    assert key(a, [None, h2o]) == key(a, [None, h2o_again])
    keys = {key(a), key(a, [None, h2o]), key(a, [h2o, None]), key(a, [None, smaller]),
            key(a, [None, two_tier]), key(None, [None, h2o])}
    assert len(keys) == 6


def test_load_log_keeps_only_matching_results(tmp_path):
    log = tmp_path / "windows.jsonl"
    lines = [record("fp16", 0), record("kivi2", 0, policy="abc"),
             record("kivi2", 1, policy="stale"), record("fp16", 1) | {"score_from": 128}]
    log.write_text("".join(json.dumps(r) + "\n" for r in lines) + "\n")
    wanted = {runlog.work_key("fp16", 1024, "dev.txt", w, 256, "fp16") for w in (0, 1)}
    wanted |= {runlog.work_key("kivi2", 1024, "dev.txt", w, 256, "abc") for w in (0, 1)}
    done = runlog.load(str(log), wanted)
    assert sorted((k[0], k[3]) for k in done) == [("fp16", 0), ("kivi2", 0)]
    assert runlog.load(str(tmp_path / "absent.jsonl"), wanted) == {}


def test_load_log_rejects_a_line_that_is_not_a_result(tmp_path):
    log = tmp_path / "windows.jsonl"
    log.write_text(json.dumps(record("fp16", 0)) + "\n{\"config\": \"fp16\"}\n")
    with pytest.raises(SystemExit, match=r"windows.jsonl:2: not a window result"):
        runlog.load(str(log), set())
    log.write_text("not json\n")
    with pytest.raises(SystemExit, match=r"windows.jsonl:1: not a window result"):
        runlog.load(str(log), set())


def test_complete_windows_pairs_the_configurations():
    windows = [record("fp16", 0), record("kivi2", 0), record("fp16", 1), record("kivi4", 0),
               record("kivi2", 2)]
    kept = runlog.complete_windows(windows, ["fp16", "kivi2"], [1024])
    assert sorted((w["config"], w["window"]) for w in kept) == [("fp16", 0), ("kivi2", 0)]
    assert runlog.complete_windows(windows, ["fp16", "kivi2"], [4096]) == []


def _square(x):
    return {"config": "c", "context": 1, "source": "s", "window": x, "score_from": 0,
            "policy": "p", "value": x * x}


@pytest.mark.parametrize("jobs", [1, 2])
def test_run_logs_every_result_and_stops_at_the_time_limit(tmp_path, jobs):
    log = tmp_path / "windows.jsonl"
    results = runlog.run(list(range(5)), _square, str(log), jobs=jobs)
    assert sorted(r["value"] for r in results) == [0, 1, 4, 9, 16]
    logged = runlog.load(str(log), {runlog.work_key("c", 1, "s", w, 0, "p") for w in range(5)})
    assert sorted(w["value"] for w in logged.values()) == [0, 1, 4, 9, 16]
    # A time limit already spent: the first result is kept, nothing more waited for.
    assert len(runlog.run(list(range(5)), _square, str(log), jobs=1, time_limit=-1)) == 1
    assert len(log.read_text().splitlines()) == 6
