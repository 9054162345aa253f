"""Control channel benchmark (root): a `vrouter run` process with no pods, a client over ipc://.

  control_routes_per_s  1,000,000 IPv4 routes pushed in route_add messages of 10,000 (columnar bodies
                        built with numpy), from the first send until the last acknowledgement: every
                        route is in the vrouter's table when its message is acknowledged.
  control_rtt_us        median round trip of ping (1,000 of them).
  resync_1M_routes_s    a full re-snapshot of the same 1M routes (snapshot_begin, every batch again,
                        snapshot_end with its sweep): what an agent restart costs; nothing is reset.
Medians of --runs runs (a fresh vrouter per run). Target: 1M routes in <= 2 s end to end.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

from control import client as C  # noqa: E402
from control.lab.netns import Topology  # noqa: E402
from vrproc import VrouterProc  # noqa: E402

ROUTES, BATCH = 1_000_000, 10_000


def bodies(vrf: int, nh: int):
    i = np.arange(ROUTES, dtype=np.uint64)
    addrs = ((np.uint64(10 << 24) + (i << np.uint64(8))) & np.uint64(0xFFFFFFFF)).astype(">u4")
    # 10.0.0.0/24 ... : 1M distinct /24s from 10.0.0.0 on (wrapping past 10/8 into 11-25/8)
    lens = np.full(ROUTES, 24, np.uint8)
    nhs = np.full(ROUTES, nh, "<u4")
    for k in range(0, ROUTES, BATCH):
        yield {"vrf": vrf, "family": 4, "addrs": addrs[k:k + BATCH].tobytes(), "lens": lens[k:k + BATCH].tobytes(),
               "nhs": nhs[k:k + BATCH].tobytes()}


def one_run() -> dict:
    out = {}
    with Topology("cbench") as t:
        ns = t.netns("node")
        vr = VrouterProc(t, ns, {"node": {"name": "cb", "stats_interval": 0}}, "cb").wait_started()
        try:
            with C.Client(f"ipc://{vr.dir}/control.sock", timeout=60, generation=1) as c:
                c.hello("bench")
                c.call("vrf_add", {"vrf": 1})
                c.call("nh_add", {"id": 1, "type": "discard"})
                msgs = list(bodies(1, 1))
                t0 = time.perf_counter()
                n = sum(c.call("route_add", b)["routes"] for b in msgs)
                dt = time.perf_counter() - t0
                assert n == ROUTES
                out["control_routes_per_s"] = ROUTES / dt
                out["control_1M_routes_s"] = dt
                rtts = [c.ping() for _ in range(1000)]
                out["control_rtt_us"] = statistics.median(rtts) * 1e6
                c.generation = 2
                c.hello("bench")
                t0 = time.perf_counter()
                c.call("snapshot_begin", {"generation": 2})
                c.call("vrf_add", {"vrf": 1})
                c.call("nh_add", {"id": 1, "type": "discard"})
                for b in msgs:
                    c.call("route_add", b)
                swept = c.call("snapshot_end", {"generation": 2})["swept"]
                out["resync_1M_routes_s"] = time.perf_counter() - t0
                assert swept["routes"] == 0, swept
        finally:
            vr.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        ap.error("run as root (the vrouter runs in a network namespace)")
    runs = [one_run() for _ in range(max(1, args.runs))]
    keys = ["control_routes_per_s", "control_1M_routes_s", "control_rtt_us", "resync_1M_routes_s"]
    out = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    out["runs"] = len(runs)
    out["routes"] = ROUTES
    out["batch"] = BATCH
    if args.json:
        print(json.dumps(out))
    else:
        for k in keys:
            print(f"  {k:24s} {out[k]:14.3f}")


if __name__ == "__main__":
    main()
