"""`vrouter table-demo`: the real full Internet table in one VRF, answered
from the C LPM tables, with the matching prefix shown for each address."""
from __future__ import annotations

import gzip
import ipaddress
import os
import time

import numpy as np

from vrouter.lpm import NO_ROUTE, Lpm4, Lpm6

DEFAULT_ADDRESSES = ["8.8.8.8", "1.1.1.1", "193.0.14.129", "10.1.2.3",
                     "2001:4860:4860::8888", "2606:4700:4700::1111", "fd00::1"]


def default_table_path() -> str:
    env = os.environ.get("VROUTER_DATA")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "shared", "data", "tier1-fullroute-prefixes.txt.gz"))


def load_prefixes(path: str):
    """Parse a gzip file of CIDR prefixes into numpy arrays, fast:
    (v4 addrs uint32, v4 lens uint8, v6 addrs (N,16) uint8, v6 lens uint8,
    the v4 and v6 prefix strings)."""
    with gzip.open(path, "rt") as f:
        lines = [line.strip() for line in f if line.strip()]
    v4 = [p for p in lines if ":" not in p]
    v6 = [p for p in lines if ":" in p]
    a4 = np.empty(len(v4), dtype=np.uint32)
    l4 = np.empty(len(v4), dtype=np.uint8)
    for i, p in enumerate(v4):
        addr, length = p.split("/")
        o = addr.split(".")
        if len(o) != 4:
            raise ValueError(f"{path}: bad IPv4 prefix {p!r}")
        a4[i] = (int(o[0]) << 24) | (int(o[1]) << 16) | (int(o[2]) << 8) | int(o[3])
        l4[i] = int(length)
    a6 = np.empty((len(v6), 16), dtype=np.uint8)
    l6 = np.empty(len(v6), dtype=np.uint8)
    for i, p in enumerate(v6):
        net = ipaddress.IPv6Network(p)
        a6[i] = np.frombuffer(net.network_address.packed, dtype=np.uint8)
        l6[i] = net.prefixlen
    return a4, l4, a6, l6, v4, v6


def run(path, vrf: int, addresses, out) -> int:
    path = path or default_table_path()
    if not os.path.exists(path):
        raise OSError(f"routing table not found: {path} (set VROUTER_DATA or --table)")
    t0 = time.perf_counter()
    a4, l4, a6, l6, v4, v6 = load_prefixes(path)
    parse_s = time.perf_counter() - t0
    t4, t6 = Lpm4(), Lpm6()
    # Next hop = line index, so every answer names the prefix that matched.
    t0 = time.perf_counter()
    t4.insert_batch(vrf, a4, l4, np.arange(len(v4), dtype=np.uint32))
    load4 = time.perf_counter() - t0
    t0 = time.perf_counter()
    t6.insert_batch(vrf, a6, l6, np.arange(len(v6), dtype=np.uint32))
    load6 = time.perf_counter() - t0
    print(f"parsed {len(v4):,} IPv4 + {len(v6):,} IPv6 prefixes from {path} in {parse_s:.2f} s", file=out)
    print(f"VRF {vrf}: IPv4 loaded in {load4:.3f} s ({t4.bytes_used() / 2**20:.1f} MiB), "
          f"IPv6 in {load6:.3f} s ({t6.bytes_used() / 2**20:.1f} MiB)", file=out)
    print(f"VRF {vrf + 1} is empty: isolation means its lookups find nothing", file=out)
    print(f"\n{'address':<28} {'VRF':>5}  {'longest match':<24} next hop", file=out)
    for text in addresses or DEFAULT_ADDRESSES:
        addr = ipaddress.ip_address(text)
        table, names = (t4, v4) if addr.version == 4 else (t6, v6)
        for v in (vrf, vrf + 1):
            nh = table.lookup(v, addr)
            match = "no route" if nh == NO_ROUTE else names[nh]
            shown = "-" if nh == NO_ROUTE else str(nh)
            print(f"{text:<28} {v:>5}  {match:<24} {shown}", file=out)
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**32, 5_000_000, dtype=np.uint64).astype(np.uint32)
    t0 = time.perf_counter()
    res = t4.lookup_batch(vrf, keys)
    dt = time.perf_counter() - t0
    routed = float(np.mean(res != NO_ROUTE))
    print(f"\n5M random IPv4 lookups in one batch: {len(keys) / dt / 1e6:.0f} M/s, "
          f"{routed:.1%} routed (the table covers ~71% of the space)", file=out)
    return 0
