"""Window results of a long accuracy run, logged so that the run can go in parts.

A run evaluates (configuration, window) pairs. Each finished pair is one
JSON line of a log, keyed by what its result depends on: the configuration's
name, the context, the evaluation source and window index, the first scored
position and a hash of the cache policy. A later run with the same log skips
every pair already there under the same key, so a run that takes hours can
be stopped (--time-limit) and resumed; a changed policy is evaluated anew.
run_smollm2.py and run_eviction.py share this.
"""
import hashlib
import json
import multiprocessing
import os
import time

import numpy as np


def add_arguments(parser):
    """The options of a run that can go in parts: --jobs, --log, --time-limit."""
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--log", default=None,
                        help="JSON-lines file: each finished (config, window) is "
                             "appended, and those already in it (same config, cache "
                             "policy, scoring) are not evaluated again, so a long run "
                             "can go in parts")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds: wait for no further evaluation after this "
                             "(with --log: run a part of a long run, summarize what "
                             "is complete)")


def policy_key(policy, evictions=None):
    """A short hash of what a window's result depends on besides its text:
    the tinylm.KVPolicy (None: fp16 cache) and, for the eviction study, the
    per-layer evictions (eviction.Eviction or None)."""
    if policy is None and not any(evictions or []):
        return "fp16"
    fields = {} if policy is None else {
        "layers": policy.layers, "residual": policy.residual,
        "sink": policy.sink, "rotate_keys": policy.rotate_keys}
    if any(evictions or []):
        fields["evictions"] = [None if e is None else [e.spec, e.demote_key, e.demote_value]
                               for e in evictions]
    text = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def work_key(config, context, source, index, score_from, policy):
    return (config, context, source, index, score_from, policy)


def load(path, wanted):
    """Results of earlier runs from the JSON-lines log `path` whose work key
    is in `wanted` (same config, window, scoring and cache policy)."""
    done = {}
    if not path or not os.path.exists(path):
        return done
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                w = json.loads(line)
                key = work_key(w["config"], w["context"], w["source"], w["window"],
                               w["score_from"], w["policy"])
            except (ValueError, KeyError, TypeError) as error:
                raise SystemExit(f"{path}:{number}: not a window result ({error})")
            if key in wanted:
                done[key] = w
    return done


def pending(wanted, log_path, jobs):
    """Splits `wanted` ({work key: work item}) into the results already in
    the log and the work items still to run, and says so."""
    logged = load(log_path, wanted)
    work = [w for key, w in wanted.items() if key not in logged]
    print(f"{len(wanted)} (config, window) evaluations"
          + (f": {len(logged)} logged in {log_path}" if log_path else "")
          + f", {len(work)} to run, {jobs} process(es)", flush=True)
    return logged, work


def complete_windows(windows, names, contexts):
    """The results of the windows that every configuration has finished
    (a partial run is summarized on those only, so the rows stay paired)."""
    have = {}
    for w in windows:
        have.setdefault((w["context"], w["source"], w["window"]), set()).add(w["config"])
    whole = {k for k, configs in have.items() if set(names) <= configs}
    return [w for w in windows if (w["context"], w["source"], w["window"]) in whole
            and w["config"] in names and w["context"] in contexts]


def run(work, evaluate, log_path=None, jobs=1, time_limit=None):
    """evaluate(item) for every item of `work` (in `jobs` worker processes),
    appending each result to the log as it finishes; after `time_limit`
    seconds no further result is waited for. Returns the results."""
    start = time.time()
    results = []
    log = open(log_path, "a") if log_path else None
    pool = multiprocessing.Pool(jobs) if jobs > 1 and work else None
    try:
        finished = (pool.imap_unordered(evaluate, work, chunksize=1) if pool
                    else (evaluate(w) for w in work))
        for done, result in enumerate(finished, 1):
            results.append(result)
            if log:
                log.write(json.dumps(result) + "\n")
                log.flush()
            if time_limit is not None and time.time() - start > time_limit:
                print(f"time limit: {done} of {len(work)} evaluations run", flush=True)
                break
    finally:
        if pool:
            pool.terminate()
        if log:
            log.close()
    return results


def paired_stderr(mine, base, loss="nll"):
    """Standard error over windows of a configuration's per-token loss minus
    the baseline's on the same window (`base`: {(source, window): result}),
    or None with fewer than two paired windows."""
    paired = [(w[loss] - base[(w["source"], w["window"])][loss]) / w["tokens"]
              for w in mine if (w["source"], w["window"]) in base]
    if len(paired) < 2:
        return None
    return float(np.std(paired, ddof=1) / np.sqrt(len(paired)))
