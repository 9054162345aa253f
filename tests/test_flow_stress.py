"""Concurrency contract of the flow table (ext/flow.h): C pthreads started
with the GIL released insert, look up (scalar and bulk), delete and sweep at
the same time; ext/testext/flow_stress.c (in vrouter._testext, not in the
product) then checks the table against what every thread recorded: each raced
shared key inserted exactly once, no lost or stale pair, no torn entry seen,
counters equal to the records."""
import threading

import numpy as np
import pytest

from conftest import c_testext
from vrouter.flow import FlowTable, Timeouts, make_key


def run_stress(t: FlowTable, threads: int, keys_per_thread: int, rounds: int, seed: int):
    """The C pthread stress (GIL released) on t's table. Returns (ok, message)."""
    rc, msg = c_testext().flow_stress(t._t, threads, keys_per_thread, rounds, seed)
    return rc == 0, msg


@pytest.mark.parametrize("threads,keys,rounds", [(2, 10000, 4), (4, 3000, 3), (8, 1000, 2)])
def test_concurrent_workers_leave_a_table_matching_their_records(threads, keys, rounds):
    # Sized so that buckets are shared and contended but the table never fills.
    t = FlowTable(4 * (threads * keys + 512), Timeouts())
    ok, msg = run_stress(t, threads, keys, rounds, seed=threads * 7919 + keys)
    assert ok, msg
    s = t.stats()
    assert s["inserts"] - s["removed"] == s["entries"] // 2
    assert s["exists"] >= 512 * (threads - 1)       # every raced shared key lost by all but one


def test_stress_on_a_small_table_with_heavy_bucket_sharing():
    t = FlowTable(4 * (4 * 300 + 512), Timeouts())
    for seed in range(2):
        t2 = FlowTable(4 * (4 * 300 + 512), Timeouts())
        ok, msg = run_stress(t2, 4, 300, 10, seed=seed)
        assert ok, msg
    del t


def test_python_threads_lookup_while_another_inserts_and_deletes():
    """Lookups release the GIL: a reader thread polling a fixed set of pairs
    must see every pair whole (both ends or neither) while they churn."""
    t = FlowTable(4096, Timeouts())
    keys = np.concatenate([make_key(1, "tcp", f"10.0.{i // 250}.{i % 250 + 1}", "10.9.0.1", 1000 + i, 80)
                           for i in range(200)])
    rev = t.reverse_keys(keys)
    stop = threading.Event()
    errors = []

    def reader():
        while not stop.is_set():
            a = t.lookup(keys)
            b = t.lookup(rev)
            # pairs churn between the calls: only per-entry facts are stable
            if (a.index[a.found] & 1).any() or not (b.index[b.found] & 1).all():
                errors.append("forward/reverse entry confused")
            if (a.nh[a.found] != 7).any() or (b.nh[b.found] != 8).any():
                errors.append("torn next hop")

    th = threading.Thread(target=reader)
    th.start()
    try:
        for _ in range(30):
            t.insert_pairs(keys, 7, 8)
            for i in range(0, 200, 3):
                t.delete(keys[i:i + 1])
            for i in range(0, 200):
                t.delete(rev[i:i + 1])
    finally:
        stop.set()
        th.join()
    assert not errors, errors[:3]
