"""AF_XDP back-end (ext/io_xsk.c) on real veth pairs between namespaces (root).

The XDP socket's side runs in its namespace as tests/e2e/xsk_agent.py (a
process there: sockets bind to devices of their own namespace) and reports
what it saw as JSON; these tests build the topology, run it, and judge.
Namespaces are unique per test and removed when it ends, failed or not.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig

import pytest

from control.lab.netns import Topology

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
AGENT = os.path.join(HERE, "xsk_agent.py")
BPF_OBJ = os.path.join(ROOT, "vrouter", "bpf", "xdp_tunnel.o")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, XDP)"),
    pytest.mark.skipif(not os.path.exists(BPF_OBJ), reason="vrouter/bpf/xdp_tunnel.o not built (setup.py build_ext)"),
]

MODES = ["native", "skb"]


def agent(t: Topology, ns: str, scenario: str, args: dict, timeout: float = 90) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, AGENT, scenario, json.dumps(args)],
                       capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, f"agent {scenario} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def pair(t: Topology, x: str, p: str, xif: str, pif: str, net: int, queues: int = 1) -> dict:
    """A veth pair xif (node side) <-> pif (peer side) with 10.<net>.0.1/2 and fd<net>::1/2."""
    t.veth(x, xif, p, pif, queues=queues)
    t.addr(x, xif, f"10.{net}.0.1/24")
    t.addr(p, pif, f"10.{net}.0.2/24")
    t.addr(x, xif, f"fd{net}::1/64")
    t.addr(p, pif, f"fd{net}::2/64")
    return {"xif": xif, "pif": pif, "x4": f"10.{net}.0.1", "p4": f"10.{net}.0.2", "x6": f"fd{net}::1",
            "p6": f"fd{net}::2", "xmac": t.mac(x, xif), "pmac": t.mac(p, pif)}


@pytest.mark.parametrize("mode", MODES)
def test_datapath(mode):
    """(a) UDP to 4789 / 6635 over IPv4 (also with options), IPv6 and an 802.1Q tag reaches the XDP socket with
    the peer's bytes; (b) ping both ways, ND/ARP, UDP to another port and fragments go to the kernel, and the
    socket sees none of it; (c) frames sent on the socket reach the peer's sockets; (d) in both attach modes;
    (e) detach leaves no program; (f) every frame returns to the pool."""
    with Topology("xsk") as t:
        x, p = t.netns("x"), t.netns("p")
        a = pair(t, x, p, "vx0", "vp0", 99)
        # 802.1Q-tagged frames (this kernel has no VLAN devices) are sent and caught with packet sockets
        a.update(pns=p, mode=mode, n=20, ntx=150, x4v="10.98.0.1", p4v="10.98.0.2")
        r = agent(t, x, "datapath", a)

    # attach
    assert r["attach_mode"] == mode
    assert r["xdp_attached"]["prog"]["name"] == "xdp_tunnel"
    assert r["xdp_attached"]["mode"] == (1 if mode == "native" else 2)   # XDP_ATTACHED_DRV / _SKB
    assert r["kind"] == "xsk"

    # (a) every tunnel datagram, with its own bytes, in every encapsulation
    rx = r["rx"]
    assert len(rx) == r["rx_expected"] == 6 * 20, rx[:5]
    assert r["rx_payload_match"]
    assert r["rx_first_tail"] == "v4-vxlan/0000"
    kinds = {}
    for f in rx:
        kinds.setdefault(f["payload"].split("/")[0], []).append(f)
    assert {k: len(v) for k, v in kinds.items()} == {k: 20 for k in ("v4-vxlan", "v4-mpls", "v6-vxlan", "v6-mpls",
                                                                      "v4-opts", "vlan-vxlan")}
    assert all(f["l3"] == "ip4" and f["ihl"] == 5 and f["vlan"] is None for f in kinds["v4-vxlan"])
    assert all(f["dport"] == 6635 for f in kinds["v4-mpls"] + kinds["v6-mpls"])
    assert all(f["l3"] == "ip6" for f in kinds["v6-vxlan"] + kinds["v6-mpls"])
    assert all(f["ihl"] == 6 for f in kinds["v4-opts"])
    assert all(f["vlan"] == 10 and f["dport"] == 4789 for f in kinds["vlan-vxlan"])
    st = r["stats"]
    assert st["rx_packets"] == 120
    assert st["rx_bytes"] == sum(f["len"] for f in rx)

    # (b) the kernel's traffic is untouched and never seen by the socket
    assert r["ping4_from_node"] == 0 and r["ping6_from_node"] == 0 and r["ping4_from_peer"] == 0
    assert r["kernel_5555"] == 20 and r["kernel_5555v6"] == 20
    assert r["kernel_4789"] == [3000], "IPv4 fragments of a 4789 datagram must go to the kernel"
    assert r["kernel_4789v6"] == [3000], "IPv6 with a fragment header must go to the kernel"
    assert r["rx_after_kernel_traffic"] == []

    # (c) transmit: all crafted frames arrive; the tagged full-size one too; the too-big one is refused
    assert r["tx_offered"] == 150 + 8 + 2
    assert r["tx_accepted"] == 150 + 8 + 1
    assert st["tx_too_big"] == 1
    assert st["tx_packets"] == 159 and st["tx_errors"] == 0 and st["tx_full"] == 0
    assert st["wakeups"] >= 1
    assert r["big_tagged_len"] == 1518
    assert r["peer_rx4_ok"], "every IPv4 frame sent on the socket reaches the peer's socket"
    assert r["peer_rx4"] == 150 and r["peer_rx6"] == 8
    assert r["peer_big_tagged"] and r["peer_big_tagged"][0] in (1514, 1518)   # the tag may be lifted into metadata
    assert r["peer_too_big"] == 0
    assert r["kstats"]["tx_invalid_descs"] == 0 and r["kstats"]["rx_invalid_descs"] == 0

    # (f) pool accounting: TX completions give back every frame; closing gives back the fill ring's
    assert r["free_after_completions"] == r["free_before_tx"]
    assert r["free_after_open"] < r["nframes"]
    assert r["free_after_close"] == r["nframes"]

    # (e) detach
    assert r["detach"] is True and r["detach_again"] is False
    assert r["xdp_after_detach"] is None
    assert r["mode_after_detach"] is None


def test_bad_input(tmp_path):
    """Unknown device, missing / non-BPF object, queue beyond the device or the map, pool too small, open before
    attach, double attach, queue taken: an OSError with a clear message each; nothing leaks."""
    not_bpf = tmp_path / "not_bpf.o"
    not_bpf.write_text("not an ELF file\n")
    foreign = tmp_path / "other.o"   # someone else's XDP program
    src = tmp_path / "other.bpf.c"
    src.write_text('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n'
                   'SEC("xdp") int xdp_other(struct xdp_md *ctx) { return XDP_PASS; }\n'
                   'char _license[] SEC("license") = "GPL";\n')
    multiarch = sysconfig.get_config_var("MULTIARCH")
    cc = subprocess.run(["clang", "-O2", "-g", "-target", "bpf", f"-I/usr/include/{multiarch}", "-c", str(src),
                         "-o", str(foreign)], capture_output=True, timeout=60)
    assert cc.returncode == 0, cc.stderr
    with Topology("xske") as t:
        x, p = t.netns("x"), t.netns("p")
        a = pair(t, x, p, "vx0", "vp0", 97, queues=2)
        a.update(not_bpf=str(not_bpf), queues=2, foreign_obj=str(foreign))
        r = agent(t, x, "errors", a)

    def err(key, code, *words):
        e = r[key]
        assert e["ok"] is False, (key, e)
        assert e["errno"] == code, (key, e)
        for w in words:
            assert w in e["msg"], (key, e)

    err("attach_unknown_dev", "ENODEV", "nosuchdev0", "no such device")
    err("attach_missing_obj", "ENOENT", "/nonexistent/xdp_tunnel.o")
    assert r["attach_not_bpf"]["ok"] is False and str(not_bpf) in r["attach_not_bpf"]["msg"], r["attach_not_bpf"]
    err("open_before_attach", "ENOENT", "vx0", "no XDP program attached")
    assert r["mode_before"] is None
    assert r["attach"]["ok"] and r["mode"] == "native"
    err("attach_twice", "EEXIST", "vx0", "already attached")
    err("open_unknown_dev", "ENODEV", "nosuchdev0")
    err("open_queue_beyond_dev", "EINVAL", "queue 2", "2 receive queues")
    err("open_queue_beyond_map", "EINVAL", "queue 64")
    err("open_small_pool", "ENOBUFS", "too small", "64 frames")
    assert r["free_after_failures"] == r["nframes"]
    assert r["open_last_queue"]["ok"]
    err("open_same_queue_twice", "EBUSY", "queue 1", "already open")
    assert r["free_after_close"] == r["nframes"]
    assert r["detach"] is True and r["detach_again"] is False and r["detach_unknown"] is False
    assert r["tiny_rx"] == 0
    assert r["tiny_free_after_del"] == r["tiny_nframes"]
    assert r["leftover"] == "xdp_tunnel"
    assert r["attach_over_leftover"]["ok"] and r["mode_over_leftover"] == "native"
    err("attach_over_foreign", "EEXIST", "another XDP program (xdp_other)")
    assert r["foreign_kept"] == "xdp_other"
    assert r["xdp_after"] is None


@pytest.mark.parametrize("mode", MODES)
def test_shared_umem(mode):
    """One pool, two devices: both sockets receive; the UMEM owner closing first keeps the other working;
    reopening it works; TX on the second socket; every frame back in the pool; no program left."""
    with Topology("xsks") as t:
        x, p = t.netns("x"), t.netns("p")
        a0 = pair(t, x, p, "vx0", "vp0", 96)
        a1 = pair(t, x, p, "vx1", "vp1", 95)
        args = {"pns": p, "mode": mode, "xifs": [a0["xif"], a1["xif"]], "x4s": [a0["x4"], a1["x4"]],
                "p4s": [a0["p4"], a1["p4"]], "xmacs": [a0["xmac"], a1["xmac"]], "pmacs": [a0["pmac"], a1["pmac"]]}
        r = agent(t, x, "shared", args)
    assert r["a1"] == 20 and r["b1"] == 20
    assert r["b2"] == 20, "the second socket keeps receiving after the UMEM owner closed"
    assert r["a2"] == 20, "reopening the owner's queue on the same pool works"
    assert r["b_tx"] == 40 and r["b_tx_peer"] == 40
    assert r["free_after_all_closed"] == r["nframes"]
    assert r["xdp_after"] == [None, None]


@pytest.mark.parametrize("mode", MODES)
def test_tx_device_down_and_long_bursts(mode):
    """Frames sent while the device is down wait in the TX ring (the kernel says ENETDOWN) and leave once it is
    up again, poll_tx kicking them; a long run of bursts is all delivered (or counted as tx_full); the pool
    ends whole."""
    with Topology("xskt") as t:
        x, p = t.netns("x"), t.netns("p")
        a = pair(t, x, p, "vx0", "vp0", 94)
        a.update(pns=p, mode=mode)
        r = agent(t, x, "down", a)
    assert r["down_accepted"] == 2048, "the TX ring holds 2048 while the device is down"
    assert r["down_tx_full"] == r["down_offered"] - 2048
    assert r["down_held"] == 2048
    assert r["up_free_settled"], "frames held while the device was down must leave and complete once it is up"
    assert r["down_delivered_after_up"] == 2048
    st = r["stats"]
    assert r["burst_accepted"] + st["tx_full"] - r["down_tx_full"] == r["burst_offered"]
    assert r["burst_peer"] == r["burst_accepted"]
    assert r["burst_free_settled"]
    assert r["free_after_close"] == r["nframes"]
