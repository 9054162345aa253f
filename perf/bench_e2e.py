"""End-to-end benchmark (root): real frames through a `vrouter run` process, beside the Linux kernel
doing the same job, in one run.

    vrouter: gen ns --TAP--> vrouter (node ns, pod ingress) --VXLAN--> fabric veth (AF_XDP) --> sink ns
    kernel:  gen ns --veth-> node ns (ip_forward + vxlan device) --VXLAN--> veth --> sink ns

The generator (AF_PACKET, sendmmsg bursts of 64, C loop: vrouter._ext IoPort.tx_repeat) sends 60-byte
UDP frames (64 on the wire) of one flow for --seconds; the sink counts what arrives on its veth
(interface counters; its kernel then drops the datagrams). Generator on CPU 0, vrouter worker (or
the kernel's forwarding, which runs in the sender's softirq) on CPU 1.

Keys: e2e_vxlan_Mpps (sink rate through the vrouter), kernel_vxlan_Mpps, e2e_vs_kernel_ratio,
generator_Mpps (what the generator pushed into the vrouter's TAP: its own ceiling here),
vrouter_cpu_ns_per_packet (vrouter process CPU time / packets forwarded, busy-polling included),
vrouter_busy_ns_per_packet (worker time in rounds that received frames / packets),
idle_cpu_percent (vrouter process CPU over 5 s without traffic). Medians of --runs runs.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))
sys.path.insert(0, os.path.dirname(HERE))

from control.lab.netns import Topology  # noqa: E402

ROUTER_MAC, POD_MAC = "00:00:5e:00:01:00", "02:00:00:00:0a:02"
F1_MAC, F2_MAC = "02:fa:00:00:00:01", "02:fa:00:00:00:02"
GEN_PY = r"""
import json, sys
from vrouter import _ext
ifname, dmac, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
import logging; logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.l2 import Ether
from scapy.layers.inet import IP, UDP
f = bytes(Ether(src="02:00:00:00:0a:02", dst=dmac) / IP(src="10.1.0.2", dst="10.2.0.5", ttl=64) /
          UDP(sport=1234, dport=5678) / (b"\0" * 18))
assert len(f) == 60
pool = _ext.IoPool(4096)
port = _ext.IoPort.open_packet(pool, ifname, 0)
sent = secs = 0.0
while secs < seconds:
    r = port.tx_repeat(f, 200000, 64)
    sent += r["sent"]; secs += r["seconds"]
print(json.dumps({"sent": sent, "seconds": secs}))
"""


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])   # utime + stime


def rx_packets(t: Topology, ns: str, dev: str) -> int:
    return t.counters(ns, dev)["rx_packets"]


def generate(t, ns, ifname, dmac, seconds):
    r = t.run(ns, "taskset", "-c", "0", sys.executable, "-c", GEN_PY, ifname, dmac, seconds,
              timeout=seconds * 4 + 60)
    return json.loads(r.stdout.strip().splitlines()[-1])


def vrouter_topology(t: Topology, io: str):
    gen, node, sink = t.netns("gen"), t.netns("node"), t.netns("sink")
    t.veth(node, "f1", sink, "f2")
    t.mac(node, "f1", F1_MAC)
    t.mac(sink, "f2", F2_MAC)
    t.addr(node, "f1", "192.0.2.1/24")
    t.addr(sink, "f2", "192.0.2.2/24")
    d = tempfile.mkdtemp(prefix="vrouter-bench-")
    conf = {
        "node": {"name": "bench", "workers": 1, "cpus": [1], "run_dir": d, "stats_interval": 0.5, "control": "off"},
        "fabric": {"interface": "f1", "io": io, "ip": "192.0.2.1", "gateway_mac": F2_MAC},
        "vifs": [{"id": 1, "name": "tap-gen", "netns": gen, "vrf": 1, "mac": POD_MAC, "ip": "10.1.0.2/24",
                  "gateway": "10.1.0.1"}],
        "nexthops": [{"id": 100, "type": "tunnel", "encap": "vxlan", "dst": "192.0.2.2", "vni": 100}],
        "routes": [{"vrf": 1, "prefix": "10.2.0.0/16", "nh": 100}],
    }
    import yaml
    path = os.path.join(d, "node.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(conf, f)
    log = open(os.path.join(d, "vrouter.log"), "w")
    proc = t.popen(node, sys.executable, "-m", "vrouter", "run", "--config", path, stdout=log,
                   stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while " started " not in open(log.name).read():
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"vrouter did not start:\n{open(log.name).read()}")
        time.sleep(0.1)
    return gen, sink, proc, d


def kernel_topology(t: Topology):
    gen, node, sink = t.netns("kgen"), t.netns("knode"), t.netns("ksink")
    t.veth(gen, "g0", node, "n0")
    t.mac(node, "n0", ROUTER_MAC)
    t.addr(gen, "g0", "10.1.0.2/24")
    t.addr(node, "n0", "10.1.0.1/24")
    t.veth(node, "f1", sink, "f2")
    t.mac(node, "f1", F1_MAC)
    t.mac(sink, "f2", F2_MAC)
    t.addr(node, "f1", "192.0.2.1/24")
    t.addr(sink, "f2", "192.0.2.2/24")
    t.run(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    t.run(node, "ip", "link", "add", "vx0", "type", "vxlan", "id", "100", "local", "192.0.2.1", "remote",
          "192.0.2.2", "dstport", "4789", "dev", "f1")
    t.up(node, "vx0")
    t.run(node, "ip", "route", "add", "10.2.0.0/16", "via", "10.99.0.2", "dev", "vx0", "onlink")
    t.neigh(node, "vx0", "10.99.0.2", ROUTER_MAC)
    t.neigh(node, "f1", "192.0.2.2", F2_MAC)
    t.neigh(gen, "g0", "10.1.0.1", ROUTER_MAC)
    # the kernel's forwarding runs where the generator's veth transmit does: pin nothing else
    return gen, sink


def one_run(seconds: float, io: str) -> dict:
    out = {}
    with Topology("bench") as t:
        gen, sink, proc, d = vrouter_topology(t, io)
        time.sleep(1.0)
        # idle CPU of the vrouter process
        c0, t0 = cpu_ticks(proc.pid), time.time()
        time.sleep(5.0)
        out["idle_cpu_percent"] = (cpu_ticks(proc.pid) - c0) / os.sysconf("SC_CLK_TCK") / (time.time() - t0) * 100
        r0, c0 = rx_packets(t, sink, "f2"), cpu_ticks(proc.pid)
        with open(os.path.join(d, "stats.json")) as f:
            w0 = json.load(f)["workers"][0]
        g = generate(t, gen, "tap-gen", ROUTER_MAC, seconds)
        time.sleep(0.8)   # let the last frames through, and stats.json catch up
        rx = rx_packets(t, sink, "f2") - r0
        cpu_ns = (cpu_ticks(proc.pid) - c0) / os.sysconf("SC_CLK_TCK") * 1e9
        with open(os.path.join(d, "stats.json")) as f:
            w1 = json.load(f)["workers"][0]
        out["generator_Mpps"] = g["sent"] / g["seconds"] / 1e6
        out["e2e_vxlan_Mpps"] = rx / g["seconds"] / 1e6
        out["e2e_delivered_fraction"] = rx / max(g["sent"], 1)
        out["vrouter_cpu_ns_per_packet"] = cpu_ns / max(rx, 1)
        busy = w1["busy_ns"] - w0["busy_ns"]
        out["vrouter_busy_ns_per_packet"] = busy / max(w1["rx_packets"] - w0["rx_packets"], 1)
        os.kill(proc.pid, 15)
        proc.wait(timeout=30)
    with Topology("kbench") as t:
        gen, sink = kernel_topology(t)
        r0 = rx_packets(t, sink, "f2")
        g = generate(t, gen, "g0", ROUTER_MAC, seconds)
        time.sleep(0.5)
        rx = rx_packets(t, sink, "f2") - r0
        out["kernel_generator_Mpps"] = g["sent"] / g["seconds"] / 1e6
        out["kernel_vxlan_Mpps"] = rx / g["seconds"] / 1e6
    out["e2e_vs_kernel_ratio"] = out["e2e_vxlan_Mpps"] / max(out["kernel_vxlan_Mpps"], 1e-9)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--io", choices=("xdp", "afpacket"), default="xdp", help="the vrouter's fabric I/O")
    ap.add_argument("--seconds", type=float, default=3.0, help="traffic per run and topology")
    args = ap.parse_args()
    if os.geteuid() != 0:
        ap.error("run as root (network namespaces, TAP, AF_XDP)")
    if args.runs < 1 or not 0.5 <= args.seconds <= 60:
        ap.error("--runs >= 1, --seconds 0.5..60")
    runs = [one_run(args.seconds, args.io) for _ in range(args.runs)]
    keys = ["e2e_vxlan_Mpps", "kernel_vxlan_Mpps", "e2e_vs_kernel_ratio", "generator_Mpps",
            "kernel_generator_Mpps", "e2e_delivered_fraction", "vrouter_cpu_ns_per_packet",
            "vrouter_busy_ns_per_packet", "idle_cpu_percent"]
    out = {k: round(statistics.median(r[k] for r in runs), 4) for k in keys}
    out["runs"] = args.runs
    out["fabric_io"] = args.io
    out["frame_bytes"] = 64
    if args.json:
        print(json.dumps(out))
        return
    for k in keys:
        print(f"  {k:28s} {out[k]:10.4f}")


if __name__ == "__main__":
    main()
