"""vrouter-ctl against a real `vrouter run`: two pods in VRF 1 ping each other, then every command of the
CLI (as a subprocess, JSON and table output) reports what the traffic really did; exit codes 1 / 2 / 3."""
import json
import os
import subprocess
import sys

import pytest

from test_node_local import ping, pods_conf

PINGS = 5
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def ctl(vr_or_socket, *args, output="json", timeout=30):
    sock = vr_or_socket if isinstance(vr_or_socket, str) else f"ipc://{vr_or_socket.dir}/control.sock"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "control.ctl", "--socket", sock, *map(str, args)]
    if output:
        cmd += ["-o", output]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def js(vr, *args):
    r = ctl(vr, *args)
    assert r.returncode == 0, f"{args}: rc {r.returncode}: {r.stderr}"
    assert r.stderr == "", r.stderr
    return json.loads(r.stdout)


def table(vr, *args):
    r = ctl(vr, *args, output=None)
    assert r.returncode == 0, f"{args}: rc {r.returncode}: {r.stderr}"
    print(f"\n$ vrouter-ctl {' '.join(map(str, args))}\n{r.stdout}", end="")
    return r.stdout


@pytest.fixture
def node_with_pods(topo, vrouter):
    node, p1, p2 = topo.netns("node"), topo.netns("p1"), topo.netns("p2")
    conf = pods_conf()
    conf["vifs"] = conf["vifs"][:2]
    for v, ns in zip(conf["vifs"], (p1, p2)):
        v["netns"] = ns
    vr = vrouter(node, conf)
    r = ping(topo, p1, "10.1.0.3", PINGS)
    assert r.returncode == 0, r.stdout + r.stderr + vr.text()
    # no route in VRF 1: dropped by the vrouter (no_route)
    assert ping(topo, p1, "192.0.2.9", 2).returncode != 0
    return vr


def test_every_command_reports_the_traffic(node_with_pods, topo):
    vr = node_with_pods

    # flows first: the ICMP pair of the pings ages out 30 s after the last one (a loaded machine takes
    # that long for the commands below)
    flows = js(vr, "flow", "list", "--vrf", 1, "--proto", "icmp")
    pairs = {(f["src"], f["dst"]) for f in flows}
    assert ("10.1.0.2", "10.1.0.3") in pairs and ("10.1.0.3", "10.1.0.2") in pairs, flows
    fwd = [f for f in flows if (f["src"], f["dst"]) == ("10.1.0.2", "10.1.0.3")]
    assert fwd[0]["vif"] == 1 and fwd[0]["packets"] >= PINGS - 1
    assert all(f["proto"] == 1 for f in flows)
    # a pair is charged to the vif its first packet came in on (both entries)
    by_vif = {(f["src"], f["dst"]) for f in js(vr, "flow", "list", "--vif", 1, "--addr", "10.1.0.3")}
    assert by_vif >= {("10.1.0.2", "10.1.0.3"), ("10.1.0.3", "10.1.0.2")}
    assert js(vr, "flow", "list", "--vif", 2, "--proto", "icmp") == []
    assert js(vr, "flow", "list", "--proto", "tcp") == []
    assert "10.1.0.3" in table(vr, "flow", "list")
    shown = js(vr, "flow", "show", fwd[0]["index"])
    assert shown["dst"] == "10.1.0.3" and shown["reverse"]["src"] == "10.1.0.3"
    assert "reverse:" in table(vr, "flow", "show", fwd[0]["index"])
    assert ctl(vr, "flow", "show", 999_999).returncode == 1

    # vifs: the counters saw every echo and every reply
    vifs = {v["id"]: v for v in js(vr, "vif", "list")}
    assert set(vifs) == {1, 2}
    assert vifs[1]["vrf"] == vifs[2]["vrf"] == 1
    assert vifs[1]["stats"]["rx_packets"] >= PINGS and vifs[1]["stats"]["tx_packets"] >= PINGS
    assert vifs[2]["stats"]["rx_packets"] >= PINGS and vifs[2]["stats"]["tx_packets"] >= PINGS
    one = js(vr, "vif", "show", 2)
    assert one["id"] == 2 and one["stats"]["tx_packets"] >= PINGS and "10.1.0.3/32" in one["prefixes"]
    out = table(vr, "vif", "list")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "KIND", "VRF"] and len(lines) == 3
    assert lines[1].split()[0] == "1" and lines[2].split()[0] == "2"

    # vrfs and routes
    vrfs = js(vr, "vrf", "list")
    assert [v["vrf"] for v in vrfs] == [1] and vrfs[0]["routes4"] >= 2
    routes = js(vr, "route", "list", "--vrf", 1, "--family", 4)
    prefixes = {r["prefix"]: r["nh"] for r in routes}
    assert "10.1.0.2/32" in prefixes and "10.1.0.3/32" in prefixes
    inside = js(vr, "route", "list", "--vrf", 1, "--prefix", "10.1.0.3/32")
    assert [r["prefix"] for r in inside] == ["10.1.0.3/32"]
    assert js(vr, "route", "list", "--vrf", 1, "--prefix", "172.16.0.0/12") == []
    v6 = js(vr, "route", "list", "--vrf", 1, "--family", 6)
    assert any(r["prefix"] == "fd00:1::3/128" for r in v6), v6
    hit = js(vr, "route", "lookup", "--vrf", 1, "10.1.0.3")
    assert hit["prefix"] == "10.1.0.3/32" and hit["nh"] == prefixes["10.1.0.3/32"]
    assert "10.1.0.3/32" in table(vr, "route", "lookup", "--vrf", 1, "10.1.0.3")
    r = ctl(vr, "route", "lookup", "--vrf", 1, "192.0.2.9")
    assert r.returncode == 1 and "no route" in r.stderr and r.stdout == ""

    # next hops: the pod's interface next hop
    nh = js(vr, "nh", "show", hit["nh"])
    assert nh["type"] == "interface" and nh["vif"] == 2 and nh["dmac"] == "02:00:00:00:01:03"
    assert hit["nh"] in [n["id"] for n in js(vr, "nh", "list")]
    assert "interface" in table(vr, "nh", "list")


    # drops: the two echoes to 192.0.2.9 had no route
    drops = js(vr, "drops")
    assert drops["reasons"].get("no_route", 0) >= 2, drops
    assert all(v > 0 for v in drops["reasons"].values())
    assert len(js(vr, "drops", "--all")["reasons"]) > len(drops["reasons"])
    assert "no_route" in table(vr, "drops")

    # stats
    st = js(vr, "stats")
    assert st["vifs"]["1"]["rx_packets"] >= PINGS and st["datapath"]["forwarded"] >= 2 * PINGS
    out = table(vr, "stats")
    assert "forwarded" in out and "RX_PKTS" in out
    r = ctl(vr, "stats", "--watch", "--interval", "0.2", "--count", "2")
    assert r.returncode == 0, r.stderr
    samples = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(samples) == 2 and all({"1", "2"} <= set(s["vifs"]) for s in samples)
    assert all("rx_packets_per_s" in s["totals"] and s["interval"] > 0 for s in samples)
    r = ctl(vr, "stats", "--watch", "--interval", "0.2", "--count", "2", output=None)
    assert r.returncode == 0 and r.stdout.count("RX_PPS") == 2, r.stdout + r.stderr

    # trace: allowed, then no route
    t = js(vr, "trace", "--vif", 1, "--smac", "02:00:00:00:01:02", "udp 10.1.0.2:1234 > 10.1.0.3:80")
    assert t["result"]["verdict"] == "forward" and t["result"]["out_vif"] == 2, t
    route = [s for s in t["steps"] if s["stage"] == "route"]
    assert route and route[0]["prefix"] == "10.1.0.3/32", t["steps"]
    t = js(vr, "trace", "--vif", 1, "icmp 10.1.0.2 > 192.0.2.9")
    assert (t["result"]["verdict"], t["result"]["reason"]) == ("drop", "no_route"), t
    out = table(vr, "trace", "--vif", 1, "--smac", "02:00:00:00:01:02", "udp 10.1.0.2:1234 > 10.1.0.3:80")
    assert "result: forward to vif 2" in out
    assert "result: drop (no_route)" in table(vr, "trace", "--vif", 1, "icmp 10.1.0.2 > 192.0.2.9")
    t6 = js(vr, "trace", "--vif", 1, "tcp [fd00:1::2]:40000 > [fd00:1::3]:80")
    assert t6["result"]["verdict"] == "forward" and t6["result"]["out_vif"] == 2, t6

    # flush: nothing left (a fresh echo first: the earlier ones may have aged out by now on a loaded machine)
    assert ping(topo, topo.namespaces[1], "10.1.0.3", 1).returncode == 0
    assert js(vr, "flow", "flush")["deleted"] >= 1
    assert js(vr, "flow", "list") == []


def test_exit_codes(node_with_pods, tmp_path):
    vr = node_with_pods
    r = ctl(vr, "vif", "show", 7)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "vif 7" in r.stderr, r.stderr
    r = ctl(vr, "nh", "show", 4242)
    assert r.returncode == 1, r.stderr
    for spec in ("udp 10.1.0.2 > 10.1.0.3:80", "sctp 10.1.0.2:1 > 10.1.0.3:2", "icmp 10.1.0.2 > fd00::1",
                 "udp 10.1.0.2:1234 10.1.0.3:80", "icmp 10.1.0.2:5 > 10.1.0.3", "udp 10.1.0.999:1 > 10.1.0.3:2"):
        r = ctl(vr, "trace", "--vif", 1, spec)
        assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1, (spec, r.stderr)
    r = ctl(vr, "trace", "--vif", 4000, "udp 10.1.0.2:1 > 10.1.0.3:2")   # refused or dropped, never a crash
    assert r.returncode in (0, 1, 2), r.stderr
    r = ctl(vr, "route", "list")                  # --vrf is required
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    r = ctl(vr, "frobnicate")
    assert r.returncode == 2
    missing = tmp_path / "nothing.sock"
    r = ctl(f"ipc://{missing}", "vif", "list")
    assert r.returncode == 3 and r.stderr.strip() == f"vrouter-ctl: vrouter not running: no control socket at " \
                                                     f"{missing}", r.stderr
    stale = tmp_path / "stale.sock"
    stale.write_text("")                             # a file, nobody listening
    r = ctl(f"ipc://{stale}", "--timeout", "0.3", "vif", "list")
    assert r.returncode == 3 and "not answering" in r.stderr, r.stderr
    env_sock = f"ipc://{vr.dir}/control.sock"        # $VROUTER_CONTROL is the default endpoint
    env = dict(os.environ, VROUTER_CONTROL=env_sock, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-m", "control.ctl", "vrf", "list", "-o", "json"], capture_output=True,
                       text=True, timeout=30, env=env, cwd=ROOT)
    assert r.returncode == 0 and json.loads(r.stdout)[0]["vrf"] == 1, r.stderr


def test_capture_writes_a_pcap_tcpdump_and_tshark_read(node_with_pods, topo, tmp_path):
    import shutil
    from scapy.layers.inet import ICMP
    from scapy.utils import rdpcap
    vr = node_with_pods
    out = tmp_path / "vif2.pcap"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cap = subprocess.Popen([sys.executable, "-m", "control.ctl", "--socket", f"ipc://{vr.dir}/control.sock",
                            "capture", "--vif", "2", "-w", str(out), "--count", "6", "--seconds", "20",
                            "-o", "json"], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    # pings until the capture has its 6 frames: when the capture starts is the capture's business (a
    # loaded machine takes seconds to start a Python process); any 6 consecutive frames of an echo
    # exchange are 3 requests and 3 replies
    ping = topo.popen(topo.namespaces[1], "ping", "-c", "100", "-i", "0.2", "10.1.0.3", stdout=subprocess.DEVNULL)
    try:
        res = json.loads(cap.communicate(timeout=30)[0])
    finally:
        ping.kill()
        ping.wait(timeout=10)
    assert cap.returncode == 0 and res["frames"] == 6
    pkts = rdpcap(str(out))
    echo = [p for p in pkts if p.haslayer(ICMP)]
    assert sorted(p[ICMP].type for p in echo) == [0, 0, 0, 8, 8, 8]
    if shutil.which("tshark"):
        t = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "icmp.type"], capture_output=True,
                           text=True, timeout=60)
        assert sorted(t.stdout.split()) == ["0", "0", "0", "8", "8", "8"], t.stdout + t.stderr


def test_trace_of_denied_and_tunnelled_packets(node_with_pods):
    """Policy and tunnels added over the channel; trace shows the rule that denied and the encapsulation."""
    from control import client as C
    vr = node_with_pods
    with C.Client(f"ipc://{vr.dir}/control.sock") as c:
        c.hello("test")
        c.call("vif_add", {"id": 0, "kind": "fabric", "mac": "02:fa:00:00:00:01", "prefixes": ["192.0.2.1/32"]})
        c.call("nh_add", {"id": 100, "type": "tunnel", "vif": 0, "dmac": "02:fa:00:00:00:02", "encap": "vxlan",
                          "src": "192.0.2.1", "dst": "192.0.2.2", "vni": 100})
        c.add_routes(1, ["10.2.0.0/16"], [100])
        v1 = c.call("get", {"table": "vif", "id": 1})["item"]
        c.call("vif_update", {k: v1[k] for k in ("id", "kind", "vrf", "mac", "mtu", "gw4", "gw6", "prefixes")
                              if v1.get(k) is not None} | {"policy": True})
        c.call("policy_set", {"kind": "vif", "id": 1, "rules": [{"id": 41, "proto": "udp", "dport": 9,
                                                                  "action": "deny"}]})
    smac = "02:00:00:00:01:02"
    t = js(vr, "trace", "--vif", 1, "--smac", smac, "udp 10.1.0.2:1234 > 10.1.0.3:9")
    pol = [s for s in t["steps"] if s["stage"] == "policy"][0]
    assert (pol["rule"], pol["action"]) == (41, "deny") and t["result"]["reason"] == "policy_deny"
    assert "41" in table(vr, "trace", "--vif", 1, "--smac", smac, "udp 10.1.0.2:1234 > 10.1.0.3:9")
    t = js(vr, "trace", "--vif", 1, "--smac", smac, "udp 10.1.0.2:1234 > 10.2.0.7:80")
    enc = [s for s in t["steps"] if s["stage"] == "encap"][0]
    nh = [s for s in t["steps"] if s["stage"] == "nexthop"][0]
    assert enc["vni"] == 100 and nh["type"] == "tunnel" and nh["dst"] == "192.0.2.2"
    assert t["result"]["verdict"] == "forward" and t["result"]["out_vif"] == 0
    assert "vni" in table(vr, "trace", "--vif", 1, "--smac", smac, "udp 10.1.0.2:1234 > 10.2.0.7:80")
