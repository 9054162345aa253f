"""Flow table and policy benchmark: batch C APIs on numpy arrays, one core.

Prints a table, or one JSON object with --json. Every figure is the median
of --runs runs (>= 5). Lookups go through FlowTable.lookup_raw (one C call
per array; the C side works in bursts of 64 with prefetching); the
``flow_lookup_hit_call64_Mpps`` line shows the cost when Python calls per 64.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from vrouter.flow import KEY_DTYPE, RESULT_DTYPE, FlowTable, Timeouts  # noqa: E402
from vrouter.policy import RESULT_DTYPE as POL_RESULT, PolicyTable  # noqa: E402


def random_keys(rng, n, vrf_count=16):
    k = np.zeros(n, KEY_DTYPE)
    k["family"] = 4
    k["proto"] = rng.choice(np.array([6, 17], np.uint8), n)
    k["vrf"] = rng.integers(1, vrf_count + 1, n)
    k["src"][:, 10:12] = 255
    k["dst"][:, 10:12] = 255
    k["src"][:, 12:] = rng.integers(0, 256, (n, 4), dtype=np.uint8)
    k["dst"][:, 12:] = rng.integers(0, 256, (n, 4), dtype=np.uint8)
    k["sport"] = rng.integers(1024, 65536, n)
    k["dport"] = rng.choice(np.array([80, 443, 53, 8080, 22], np.uint16), n)
    return k


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_flows(args, rng):
    pairs = args.flows
    cap = 2 * pairs
    keys = random_keys(rng, pairs)
    keys = np.unique(keys)            # no duplicate 5-tuples
    pairs = len(keys)
    ins_rates = []
    for _ in range(args.runs):
        t = FlowTable(cap, Timeouts())
        dt = timed(lambda: t.insert_pairs(keys, 7, now=1))
        ins_rates.append(pairs / dt)
    st = t.stats()
    assert st["inserts"] == pairs, st
    both = np.concatenate([keys, t.reverse_keys(keys)])
    hit_keys = both[rng.permutation(len(both))]
    miss_keys = random_keys(rng, len(hit_keys), vrf_count=16)
    miss_keys["vrf"] += 100               # different VRFs: all miss
    res = np.empty(len(hit_keys), RESULT_DTYPE)
    hits, misses, call64 = [], [], []
    for _ in range(args.runs):
        hits.append(len(hit_keys) / timed(lambda: t.lookup_raw(hit_keys, res)) / 1e6)
        assert res["found"].all()
        misses.append(len(miss_keys) / timed(lambda: t.lookup_raw(miss_keys, res)) / 1e6)
        assert not res["found"].any()
        r64 = np.empty(64, RESULT_DTYPE)
        n64 = min(len(hit_keys), 1 << 18) // 64
        chunks = [hit_keys[i * 64:(i + 1) * 64] for i in range(n64)]

        def per64():
            for c in chunks:
                t.lookup_raw(c, r64)
        call64.append(n64 * 64 / timed(per64) / 1e6)
    return {
        "flow_lookup_hit_Mpps": statistics.median(hits),
        "flow_lookup_miss_Mpps": statistics.median(misses),
        "flow_lookup_hit_call64_Mpps": statistics.median(call64),
        "flow_insert_pair_per_s": statistics.median(ins_rates),
        "flow_bytes_per_entry": st["memory_bytes"] / cap,
        "flow_entries": int(st["entries"]),
    }


def policy_rules(rng, n):
    """A realistic mix: mostly TCP/UDP service ports with /16-/32 prefixes,
    some port ranges, some ICMP and a few any-protocol rules."""
    rules = []
    for i in range(n):
        r = {"id": i + 1, "action": "deny" if rng.random() < 0.3 else "pass"}
        x = rng.random()
        if x < 0.45:
            r["proto"] = "tcp"
        elif x < 0.85:
            r["proto"] = "udp"
        elif x < 0.95:
            r["proto"] = "icmp"
        if "proto" in r and r["proto"] != "icmp":
            if rng.random() < 0.8:
                r["dport"] = int(rng.integers(1, 65536))
            else:
                lo = int(rng.integers(1024, 60000))
                r["dport"] = (lo, lo + int(rng.integers(1, 2000)))
        plen = int(rng.choice([16, 24, 32]))
        net = int(rng.integers(0, 1 << 32)) & ~((1 << (32 - plen)) - 1)
        r["dst"] = f"{net >> 24}.{(net >> 16) & 255}.{(net >> 8) & 255}.{net & 255}/{plen}"
        if rng.random() < 0.3:
            r["src"] = "10.%d.0.0/16" % rng.integers(0, 256)
        rules.append(r)
    return rules


def bench_policy(args, rng):
    p = PolicyTable()
    p.set_vrf_policy(1, policy_rules(rng, args.rules), default="deny")
    keys = random_keys(rng, 200_000, vrf_count=1)
    res = np.empty(len(keys), POL_RESULT)
    ns = []
    for _ in range(args.runs):
        ns.append(timed(lambda: p.evaluate_raw(keys, res)) / len(keys) * 1e9)
    lin = timed(lambda: p.evaluate_raw(keys[:20000], res[:20000], linear=True)) / 20000 * 1e9
    return {"policy_eval_1k_rules_ns": statistics.median(ns), "policy_eval_linear_scan_ns": lin}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--flows", type=int, default=1 << 19,
                    help="pairs to insert (entries = 2x: the default is 1M flow entries)")
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    args.runs = max(args.runs, 5)
    rng = np.random.default_rng(args.seed)
    out = {}
    out.update(bench_flows(args, rng))
    out.update(bench_policy(args, rng))
    out["runs"] = args.runs
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:32s} {v:14.2f}" if isinstance(v, float) else f"{k:32s} {v:14d}")


if __name__ == "__main__":
    main()
