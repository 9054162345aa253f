"""Parser benchmark: pkt_parse_burst over in-memory bursts of 64 pre-built frames, one core.

Prints a table, or one JSON object with --json. Every figure is the median of --runs (>= 5) runs.
Each run is one Python call that parses a descriptor array in C, 64 descriptors per
pkt_parse_burst call (the pipeline's burst), GIL released, repeated until ~0.2 s have passed.
  hot : 64 distinct frames, 64 descriptor bursts (256 KiB of descriptors): frames and
        descriptors cache-resident, as an rx burst the worker just received.
  cold: 2^18 descriptors (16 MiB), each over its own frame buffer (256 B apart, 64 MiB):
        every frame a cache miss that the prefetch 8 packets ahead has to hide.
Traffic: "udp4_64B" = 60-byte Ethernet/IPv4/UDP frames (64 B on the wire with the FCS),
"tcp6" = Ethernet/IPv6/TCP with 12 bytes of TCP options and a 32-byte payload. IPv4 header
checksums are verified (PKT_PARSE_VERIFY_IP4_CSUM) unless the line says "nocsum".
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import logging  # noqa: E402
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

from vrouter import packet  # noqa: E402

BURST = 64
MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def frames_udp4(rng, n):
    out = []
    for i in range(n):
        a, b = rng.integers(0, 256, 4), rng.integers(0, 256, 4)
        f = bytes(Ether(**MACS) / IP(src=".".join(map(str, a)), dst=".".join(map(str, b)), ttl=64)
                  / UDP(sport=int(rng.integers(1024, 65536)), dport=4789) / Raw(b"\0" * 18))
        assert len(f) == 60
        out.append(f)
    return out


def frames_tcp6(rng, n):
    out = []
    for i in range(n):
        src = "2001:db8::%x" % rng.integers(1, 65536)
        dst = "2001:db8:1::%x" % rng.integers(1, 65536)
        out.append(bytes(Ether(**MACS) / IPv6(src=src, dst=dst)
                         / TCP(sport=int(rng.integers(1024, 65536)), dport=443, flags="A",
                               options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])
                         / Raw(b"\0" * 32)))
    return out


def tile(frames, n):
    return [frames[i % len(frames)] for i in range(n)]


def measure(burst_obj, verify, runs):
    n = len(burst_obj)
    t0 = time.perf_counter()
    burst_obj.parse(verify, BURST)                       # warm-up, and the repeat count for ~0.2 s
    one = max(time.perf_counter() - t0, 1e-6)
    repeat = max(1, int(0.2 / one))
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        ok = burst_obj.parse(verify, BURST, repeat)
        dt = time.perf_counter() - t0
        assert ok == n, (ok, n)
        rates.append(n * repeat / dt / 1e6)
    return statistics.median(rates)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--cold", type=int, default=1 << 18, help="frames in the cold set")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    args.runs = max(args.runs, 5)
    rng = np.random.default_rng(args.seed)
    mpps = {}
    for name, make in (("udp4_64B", frames_udp4), ("tcp6", frames_tcp6)):
        base = make(rng, BURST)
        hot = packet.Burst(tile(base, BURST * BURST))
        cold = packet.Burst(tile(make(rng, 4096), args.cold))
        mpps[name] = measure(hot, True, args.runs)
        mpps[name + "_cold"] = measure(cold, True, args.runs)
        if name == "udp4_64B":
            mpps[name + "_nocsum"] = measure(hot, False, args.runs)
    out = {"pkt_parse_Mpps": mpps,
           "pkt_parse_ns_per_packet": {k: 1e3 / v for k, v in mpps.items()},
           "burst": BURST, "runs": args.runs}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"pkt_parse_burst, bursts of {BURST}, median of {args.runs} runs (one core)")
    for k, v in mpps.items():
        print(f"  pkt_parse_Mpps[{k:<16}] {v:8.1f}   ({1e3 / v:5.1f} ns/packet)")


if __name__ == "__main__":
    main()
