"""Workers and the writer at the same time: two worker threads run bursts
through one pipeline (GIL released, each its own worker id) over shared flows
while the control thread rewrites routes, next hops and ECMP members. Nothing
may crash or tear (ASan runs this too): every frame gets a valid outcome, the
flow table holds each key once, and the counters add up."""
import threading

import numpy as np

from pl_topo import (FABRIC, NH_ECMP, NH_MPLS, NH_VX, NH_VXB, NH_VXC, POD1, POD2, from_pod, make_node)
from vrouter.flow import make_key
from vrouter.pipeline import DROP_REASONS


def test_two_workers_and_a_writer():
    dp = make_node(workers=2, flow_capacity=1 << 15)
    frames = [from_pod(POD1, f"10.4.{i % 4}.{i % 250 + 1}", "udp", sport=1000 + i) for i in range(600)]
    frames += [from_pod(POD1, POD2.ip4, "tcp", sport=2000 + i) for i in range(200)]
    bursts = [dp.burst(frames, POD1.vif) for _ in range(2)]
    stop = threading.Event()
    errors = []
    sent = [0, 0]
    rounds_done = [0, 0]

    def worker(w):
        try:
            rounds = 0
            while not stop.is_set() or rounds < 3:
                b = dp.burst(frames, POD1.vif)
                rs = dp.run(b, worker=w)
                sent[w] += len(rs)
                for r in rs:
                    assert r.verdict in ("forward", "drop"), r
                    if r.verdict == "drop":
                        assert r.reason in ("no_route", "nh_invalid") and r.reason in DROP_REASONS, r
                    else:
                        assert r.out_vif in (FABRIC, POD2.vif)
                rounds += 1
                rounds_done[w] = rounds
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    members = [[NH_VX, NH_VXB, NH_VXC], [NH_VX, None, NH_VXC], [None, NH_VXB, None], [NH_VXC, NH_VX, NH_VXB]]
    i = 0
    while (i < 300 or min(rounds_done) < 10) and not errors and i < 100_000:
        i += 1
        dp.nh.set_nh(NH_ECMP, "ecmp", members=members[i % len(members)])
        if i % 3 == 0:
            dp.lpm4.delete(1, "10.4.0.0/16")
        else:
            dp.lpm4.insert(1, "10.4.0.0/16", NH_ECMP if i % 3 == 1 else NH_MPLS)
        dp.lpm4.insert(1, f"10.4.{i % 4}.0/24", NH_VX if i % 2 else NH_ECMP)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]
    del bursts
    st = dp.stats()
    assert st["packets"] == sum(sent) == st["forwarded"] + st["dropped"]
    assert dp.vif_stats(POD1.vif)["rx_packets"] == sum(sent)
    # each flow key is in the table once, though both workers raced to install it
    for i in (0, 7, 650, 799):
        sport = 1000 + i if i < 600 else 2000 + i - 600
        dst = f"10.4.{i % 4}.{i % 250 + 1}" if i < 600 else POD2.ip4
        key = make_key(vrf=1, src=POD1.ip4, dst=dst, proto=17 if i < 600 else 6, sport=sport, dport=80)
        assert dp.flows.key_copies(key) == 1, i
    assert np.all(np.asarray(sent) > 0)
