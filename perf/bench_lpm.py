"""Benchmark of vrouter.lpm on the real full routing table (next hop = line index mod 65536).

    python perf/bench_lpm.py [--runs 5] [--keys 10000000] [--json] [--data PATH]

Prints a table of figures beside their targets; with --json prints one JSON object on stdout (the table
goes to stderr). Lookup figures are medians over --runs runs of --keys keys through lookup_batch.
Keys: "random" = uniform 32-bit for IPv4, uniform under 2000::/3 (where the IPv6 table lives) for IPv6;
"in-prefix" = random host bits under a randomly chosen prefix of the table.
"""
import argparse
import json
import os
import pathlib
import statistics
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import lpm_ref  # noqa: E402  (the shared parser and key generators)

TARGETS = {  # key: (comparison, target, unit)
    "lpm4_lookup_random_Mlps": (">=", 130, "Mlps"),
    "lpm4_lookup_inprefix_Mlps": (">=", 180, "Mlps"),
    "lpm6_lookup_inprefix_Mlps": (">=", 60, "Mlps"),
    "lpm4_load_s": ("<=", 1.0, "s"),
    "lpm6_load_s": ("<=", 1.0, "s"),
    "lpm4_insert_per_s": (">=", 1e6, "/s"),
    "lpm4_insert_batch_per_s": (">=", 1e6, "/s"),
    "vrf4096x256_bytes": ("<=", 256 * 2**20, "B"),
}


BURST = 65536


def data_path(arg):
    if arg:
        return pathlib.Path(arg)
    env = os.environ.get("VROUTER_DATA")
    if env:
        p = pathlib.Path(env)
        return p / "tier1-fullroute-prefixes.txt.gz" if p.is_dir() else p
    return REPO / "tests" / "data" / "tier1-fullroute-prefixes.txt.gz"


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def median_time(fn, runs):
    fn()                                                   # warm caches and page in the output
    return statistics.median(timed(fn)[0] for _ in range(runs))


def new_v4_prefixes(rng, n, taken: set, lo=24, hi=32):
    """n distinct random /lo../hi prefixes not in `taken` (a set of addr << 8 | len); adds them to it."""
    out_a, out_l = [], []
    while len(out_a) < n:
        lens = rng.integers(lo, hi + 1, 2 * n).astype(np.uint64)
        addrs = rng.integers(0, 1 << 32, 2 * n, dtype=np.uint64)
        addrs &= (np.uint64(0xFFFFFFFF) << (np.uint64(32) - lens)) & np.uint64(0xFFFFFFFF)
        for a, ln in zip(addrs.tolist(), lens.tolist()):
            k = a << 8 | ln
            if k not in taken:
                taken.add(k)
                out_a.append(a)
                out_l.append(ln)
                if len(out_a) == n:
                    break
    return np.array(out_a, dtype=np.uint32), np.array(out_l, dtype=np.uint8)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per lookup figure (median reported)")
    ap.add_argument("--keys", type=int, default=10_000_000, help="keys per lookup run")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--data", help="the routing table file (default: $VROUTER_DATA or tests/data/)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    human = sys.stderr if args.json else sys.stdout

    from vrouter.lpm import Lpm4, Lpm6
    from vrouter import lpm
    impls = tuple(dict.fromkeys(("auto", "scalar", "batch") + tuple(getattr(lpm, "IMPLS", ()))))
    import pytricia

    rng = np.random.default_rng(args.seed)
    res = {"keys": args.keys, "runs": args.runs, "cpus": os.cpu_count(), "loadavg_1m_start": os.getloadavg()[0]}
    res["parse_s"], full = timed(lambda: lpm_ref.load_full_table(data_path(args.data)))
    nh4, nh6 = full.v4_nhs(), full.v6_nhs()
    res["lpm4_prefixes"], res["lpm6_prefixes"] = len(full.v4_addrs), len(full.v6_addrs)

    # ---- load: insert_batch of the whole parsed table into an empty table (median of 3) ----
    def load(cls, addrs, lens, nhs):
        t = cls()
        dt, _ = timed(lambda: t.insert_batch(0, addrs, lens, nhs))
        return dt, t
    loads4 = [load(Lpm4, full.v4_addrs, full.v4_lens, nh4) for _ in range(3)]
    loads6 = [load(Lpm6, full.v6_addrs, full.v6_lens, nh6) for _ in range(3)]
    res["lpm4_load_s"] = statistics.median(d for d, _ in loads4)
    res["lpm6_load_s"] = statistics.median(d for d, _ in loads6)
    t4, t6 = loads4[-1][1], loads6[-1][1]
    del loads4, loads6
    res["lpm4_bytes"], res["lpm6_bytes"] = t4.bytes_used(), t6.bytes_used()
    assert t4.count(0) == len(full.v4_addrs) and t6.count(0) == len(full.v6_addrs)

    # ---- lookups ----
    keys4_random = rng.integers(0, 1 << 32, args.keys, dtype=np.uint64).astype(np.uint32)
    keys4_in = lpm_ref.random_inprefix_v4(rng, full.v4_addrs, full.v4_lens, args.keys)
    keys6_in = lpm_ref.random_inprefix_v6(rng, full.v6_addrs, full.v6_lens, args.keys)
    keys6_random = rng.integers(0, 256, (args.keys, 16), dtype=np.uint8)
    keys6_random[:, 0] = 0x20 | (keys6_random[:, 0] & 0x1F)
    for name, table, keys in [("lpm4_lookup_random", t4, keys4_random), ("lpm4_lookup_inprefix", t4, keys4_in),
                              ("lpm6_lookup_random", t6, keys6_random), ("lpm6_lookup_inprefix", t6, keys6_in)]:
        answers = {impl: table.lookup_batch(0, keys, impl=impl) for impl in impls}
        assert all(np.array_equal(answers["scalar"], a) for a in answers.values()), f"{name}: impls disagree"
        res[f"{name}_hit_ratio"] = float((answers["auto"] != lpm_ref.NO_ROUTE).mean())
        for impl in impls:
            dt = median_time(lambda: table.lookup_batch(0, keys, impl=impl), args.runs)
            suffix = "" if impl == "auto" else "_" + impl.replace("-", "_")
            res[f"{name}{suffix}_Mlps"] = len(keys) / dt / 1e6
        # The same keys in bursts of 64k: a fresh 40 MB result array per 10M-key call costs page faults
        # (glibc mmaps blocks over 32 MB), which a burst-sized call does not pay.
        bursts = [keys[i:i + BURST] for i in range(0, len(keys), BURST)]
        dt = median_time(lambda: [table.lookup_batch(0, b) for b in bursts], args.runs)
        res[f"{name}_burst64k_Mlps"] = len(keys) / dt / 1e6

    # ---- pytricia on the same kind of keys, one get() per key (a 1M-key sample, scaled) ----
    pt = pytricia.PyTricia(32)
    for text, nh in zip(full.v4_text, nh4.tolist()):
        pt[text] = nh
    for name, keys in [("pytricia_lookup", keys4_random), ("pytricia_lookup_inprefix", keys4_in)]:
        sample = keys[:1_000_000].tolist()
        get = pt.get
        dt = median_time(lambda: [get(k) for k in sample], max(1, min(args.runs, 3)))
        res[f"{name}_Mlps"] = len(sample) / dt / 1e6
    del pt

    # ---- inserts into the loaded table: single calls, then insert_batch chunks of 10k ----
    taken = set(((full.v4_addrs.astype(np.uint64) << np.uint64(8)) | full.v4_lens.astype(np.uint64)).tolist())
    a1, l1 = new_v4_prefixes(rng, 100_000, taken)
    pairs = list(zip(a1.tolist(), l1.tolist()))
    insert = t4.insert
    dt, _ = timed(lambda: [insert(0, p, i) for i, p in enumerate(pairs)])
    res["lpm4_insert_per_s"] = len(pairs) / dt
    a2, l2 = new_v4_prefixes(rng, 500_000, taken)
    nh2 = np.arange(len(a2), dtype=np.uint32)
    chunks = [(a2[i:i + 10_000], l2[i:i + 10_000], nh2[i:i + 10_000]) for i in range(0, len(a2), 10_000)]
    dt, _ = timed(lambda: [t4.insert_batch(0, a, ln, n) for a, ln, n in chunks])
    res["lpm4_insert_batch_per_s"] = len(a2) / dt
    assert t4.count(0) == len(full.v4_addrs) + len(a1) + len(a2)
    del t4, t6

    # ---- many small VRFs: 4096 VRFs x 256 random /16../32 routes under a per-VRF /8 ----
    t = Lpm4()
    def fill():
        for vrf in range(4096):
            base = int(rng.integers(1, 224)) << 24
            lens = rng.integers(16, 33, 256 * 2).astype(np.uint64)
            addrs = (rng.integers(0, 1 << 24, 256 * 2, dtype=np.uint64) | np.uint64(base))
            addrs &= (np.uint64(0xFFFFFFFF) << (np.uint64(32) - lens)) & np.uint64(0xFFFFFFFF)
            uniq = np.unique((addrs << np.uint64(8)) | lens)[:256]
            t.insert_batch(vrf, (uniq >> np.uint64(8)).astype(np.uint32), (uniq & np.uint64(0xFF)).astype(np.uint8),
                           np.arange(len(uniq), dtype=np.uint32))
    res["vrf4096x256_build_s"], _ = timed(fill)
    res["vrf4096x256_routes"] = t.count()
    res["vrf4096x256_bytes"] = t.bytes_used()

    res["loadavg_1m_end"] = os.getloadavg()[0]
    report(res, human)
    if max(res["loadavg_1m_start"], res["loadavg_1m_end"]) > 1.5:
        print("warning: the machine was busy (load average > 1.5): figures are unreliable", file=human)
    if args.json:
        print(json.dumps(res, sort_keys=True))


def fmt(key, v):
    if key.endswith("_bytes"):
        return f"{v / 2**20:10.1f} MB"
    if key.endswith("_per_s"):
        return f"{v / 1e6:10.2f} M/s"
    if key.endswith("_Mlps"):
        return f"{v:10.1f} Mlps"
    if key.endswith("_s"):
        return f"{v:10.3f} s"
    if isinstance(v, float):
        return f"{v:10.3f}"
    return f"{v:10}"


def report(res, out):
    print(f"{'figure':44} {'value':>15}   target", file=out)
    for key in sorted(res):
        line = f"{key:44} {fmt(key, res[key]):>15}"
        if key in TARGETS:
            op, target, _ = TARGETS[key]
            ok = res[key] >= target if op == ">=" else res[key] <= target
            line += f"   {op} {fmt(key, target).strip():>10}  {'ok' if ok else 'MISSED'}"
        print(line, file=out)


if __name__ == "__main__":
    main()
