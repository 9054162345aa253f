"""Pipeline benchmark: frames through ext/pipeline.c in bursts of 64, one worker, one core.

Prints a table, or one JSON object with --json. Every figure is the median of --runs runs.
Runs interleave the cases. Each run is one Python call (pl_bench_loop in C, GIL released, from the test / benchmark
helper module vrouter._testext: `python3 setup.py build_testext --inplace`): it copies each frame from a
template row into its buffer (as an rx ring would have written it) and hands bursts of 64 to
pl_process; Mpps counts the whole loop (copy included), cycles/packet only pl_process (TSC).

  vxlan_encap    64-byte UDP frames from a pod to 10,240 flows behind a VXLAN next hop: flow hit,
                 TTL, MTU check, outer Ethernet/IPv4/UDP/VXLAN pushed, UDP source port hashed.
  vxlan_decap    the same flows arriving VXLAN-encapsulated from the fabric for a local pod:
                 VNI -> VRF, strip, inner parse, flow hit, Ethernet rewrite.
  mplsoudp_encap as vxlan_encap, through an MPLSoUDP next hop.
  local          pod to pod on this node (flow hit, TTL, Ethernet rewrite).
  first_packet   262,144 distinct flows, each frame a miss: policy (64 rules on the vif),
                 LPM (VRF with 10,000 routes), next hop, forward + reverse flow installed.
Frames are 60 bytes (64 on the wire with the FCS); the flows differ in their UDP ports.
For scale: FD.io VPP reports 7.5 Mpps per Skylake core for VXLAN encapsulation.
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # numpy's BLAS threads must not spin beside us
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import logging  # noqa: E402
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.layers.vxlan import VXLAN  # noqa: E402
from scapy.packet import Raw  # noqa: E402

from vrouter import _testext  # noqa: E402
from vrouter.flow import Timeouts  # noqa: E402
from vrouter.packet import HEADROOM, Burst  # noqa: E402
from vrouter.pipeline import RESULT_DTYPE, TAILROOM, Datapath  # noqa: E402

BURST = 64
FLOWS = 10_240
FIRST_FLOWS = 262_144
ROUTER_MAC, POD1_MAC, POD2_MAC = "00:00:5e:00:01:00", "02:00:00:00:01:02", "02:00:00:00:01:03"
FABRIC_MAC, UNDERLAY_MAC = "02:fa:00:00:00:01", "02:fa:00:00:00:fe"


def node(flow_capacity: int, policy_rules: int = 0, routes: int = 0) -> Datapath:
    dp = Datapath(flow_capacity=flow_capacity, timeouts=Timeouts(udp=3600.0))
    nh = dp.nh
    nh.set_vif(0, kind="fabric", mac=FABRIC_MAC, mtu=9000, prefixes=("192.0.2.1/32",))
    nh.set_vif(1, kind="virtual", vrf=1, mac=ROUTER_MAC, gw4="10.1.0.1", prefixes=("10.1.0.2/32",),
               policy=policy_rules > 0)
    nh.set_vif(2, kind="virtual", vrf=1, mac=ROUTER_MAC, gw4="10.1.0.1", prefixes=("10.1.0.3/32",))
    nh.set_nh(1, "interface", vif=1, dmac=POD1_MAC)
    nh.set_nh(2, "interface", vif=2, dmac=POD2_MAC)
    nh.set_nh(10, "tunnel", vif=0, dmac=UNDERLAY_MAC, encap="vxlan", src="192.0.2.1", dst="192.0.2.2",
              vni=100, inner_dmac=ROUTER_MAC)
    nh.set_nh(11, "tunnel", vif=0, dmac=UNDERLAY_MAC, encap="mplsoudp", src="192.0.2.1", dst="192.0.2.2",
              label=5000)
    nh.set_vni(100, 1)
    for prefix, n in (("10.1.0.2/32", 1), ("10.1.0.3/32", 2), ("10.2.0.0/16", 10), ("10.3.0.0/16", 11)):
        dp.lpm4.insert(1, prefix, n)
    if routes:
        # other remote subnets of the VRF: /24s under 11.0.0.0/8, all through the VXLAN next hop
        k = np.arange(routes, dtype=np.uint64)
        dp.lpm4.insert_batch(1, (np.uint64(11 << 24) + (k << np.uint64(8))).astype(np.uint32),
                             np.full(routes, 24, np.uint8), np.full(routes, 10, np.uint32))
    if policy_rules:
        rules = [{"id": i, "action": "deny", "proto": "tcp", "dport": 10000 + i} for i in range(policy_rules - 1)]
        rules.append({"id": policy_rules - 1, "action": "pass"})
        dp.policy.set_vif_policy(1, rules)
    return dp


def vary_ports(template: bytes, n: int, udp_off: int) -> np.ndarray:
    """n copies of template whose UDP (sport, dport) differ: n distinct flows; UDP checksum 0."""
    rows = np.tile(np.frombuffer(template, np.uint8), (n, 1))
    i = np.arange(n, dtype=np.uint32)
    sport, dport = 1024 + (i % 60000), 80 + (i // 60000)
    rows[:, udp_off] = sport >> 8
    rows[:, udp_off + 1] = sport & 0xFF
    rows[:, udp_off + 2] = dport >> 8
    rows[:, udp_off + 3] = dport & 0xFF
    rows[:, udp_off + 6:udp_off + 8] = 0
    return np.ascontiguousarray(rows)


def pod_frame(dst: str) -> bytes:
    f = bytes(Ether(src=POD1_MAC, dst=ROUTER_MAC) / IP(src="10.1.0.2", dst=dst, ttl=64) /
              UDP(sport=1, dport=2) / Raw(b"\0" * 18))
    assert len(f) == 60
    return f


def vxlan_frame() -> bytes:
    inner = Ether(src="02:aa:00:00:00:01", dst=ROUTER_MAC) / IP(src="10.2.0.9", dst="10.1.0.3") / \
        UDP(sport=1, dport=2) / Raw(b"\0" * 18)
    return bytes(Ether(src=UNDERLAY_MAC, dst=FABRIC_MAC) / IP(src="192.0.2.2", dst="192.0.2.1") /
                 UDP(sport=50000, dport=4789, chksum=0) / VXLAN(vni=100) / inner)


CASES = {
    # name: (template frame, offset of the flow-varying UDP header, ingress vif)
    "vxlan_encap": (lambda: pod_frame("10.2.0.5"), 34, 1),
    "vxlan_decap": (vxlan_frame, 34 + 8 + 8 + 14 + 20, 0),
    "mplsoudp_encap": (lambda: pod_frame("10.3.0.5"), 34, 1),
    "local": (lambda: pod_frame("10.1.0.3"), 34, 1),
}


def tsc_ghz() -> float:
    c0, t0 = _testext.tsc(), time.perf_counter_ns()
    time.sleep(0.2)
    c1, t1 = _testext.tsc(), time.perf_counter_ns()
    return (c1 - c0) / (t1 - t0) if c1 > c0 else 0.0


def prepare(dp: Datapath, rows: np.ndarray, vif: int):
    n = len(rows)
    burst = Burst([bytes(rows[0])] * n, HEADROOM, vif, TAILROOM)
    lens = np.full(n, rows.shape[1], np.uint16)
    vifs = np.full(n, vif, np.uint16)
    return burst, lens, vifs


def bench(dp: Datapath, burst: Burst, rows: np.ndarray, lens: np.ndarray, vifs: np.ndarray, iterations: int) -> int:
    """Process the frames `iterations` times in one C call (worker 0); returns TSC cycles in pl_process."""
    res = np.zeros(len(burst), RESULT_DTYPE)
    return _testext.pl_bench(dp._pl, burst.descs, rows, lens, vifs, BURST, iterations, res, time.monotonic_ns())


def run_hit(name: str, iters: int) -> tuple[float, float]:
    make, udp_off, vif = CASES[name]
    dp = node(flow_capacity=65536)
    rows = vary_ports(make(), FLOWS, udp_off)
    burst, lens, vifs = prepare(dp, rows, vif)
    bench(dp, burst, rows, lens, vifs, 1)   # installs the flows
    st = dp.stats()
    assert st["forwarded"] == FLOWS and st["flow_installs"] == FLOWS, st
    t0 = time.perf_counter()
    cycles = bench(dp, burst, rows, lens, vifs, iters)
    dt = time.perf_counter() - t0
    st = dp.stats()
    pkts = FLOWS * iters
    assert st["forwarded"] == FLOWS + pkts and st["flow_hits"] >= pkts, st
    return pkts / dt / 1e6, cycles / pkts


def run_first(_iters: int) -> tuple[float, float]:
    dp = node(flow_capacity=2 * FIRST_FLOWS, policy_rules=64, routes=10_000)
    rows = vary_ports(pod_frame("10.2.0.5"), FIRST_FLOWS, 34)
    burst, lens, vifs = prepare(dp, rows, 1)
    t0 = time.perf_counter()
    cycles = bench(dp, burst, rows, lens, vifs, 1)
    dt = time.perf_counter() - t0
    st = dp.stats()
    assert st["flow_installs"] == FIRST_FLOWS and st["forwarded"] == FIRST_FLOWS, st
    return FIRST_FLOWS / dt / 1e6, cycles / FIRST_FLOWS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--runs", type=int, default=5, help="runs per figure (median reported)")
    ap.add_argument("--iterations", type=int, default=100, help="passes over the 10,240 flows per run")
    args = ap.parse_args()
    if args.runs < 1 or args.iterations < 1:
        ap.error("--runs and --iterations must be >= 1")
    ghz = tsc_ghz()
    out = {"tsc_ghz": round(ghz, 3), "burst": BURST, "flows": FLOWS, "first_packet_flows": FIRST_FLOWS,
           "runs": args.runs}
    names = ("vxlan_encap", "vxlan_decap", "mplsoudp_encap", "local", "first_packet")
    res = {n: [] for n in names}
    for _ in range(args.runs):   # interleaved: the machine's noise hits every case alike
        for name in names:
            res[name].append(run_first(args.iterations) if name == "first_packet" else
                             run_hit(name, args.iterations))
    for name in names:
        out[f"pipeline_{name}_Mpps"] = round(statistics.median(r[0] for r in res[name]), 2)
        out[f"pipeline_{name}_cycles_per_packet"] = round(statistics.median(r[1] for r in res[name]), 1)
    if args.json:
        print(json.dumps(out))
        return
    print(f"TSC {ghz:.2f} GHz, bursts of {BURST}, medians of {args.runs} runs")
    for name in ("vxlan_encap", "vxlan_decap", "mplsoudp_encap", "local", "first_packet"):
        print(f"  {name:16s} {out[f'pipeline_{name}_Mpps']:7.2f} Mpps   "
              f"{out[f'pipeline_{name}_cycles_per_packet']:7.1f} cycles/packet")


if __name__ == "__main__":
    main()
