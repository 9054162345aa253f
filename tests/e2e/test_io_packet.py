"""AF_PACKET ports (ext/io_packet.c) on a real veth between two network namespaces.

The socket side runs in the node's namespace (io_packet_script.py, one scenario per run, JSON out);
the peer's sockets are made by the same process after setns(2) into the peer namespace. Needs root.
"""
from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control.lab.netns import Topology  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCRIPT = HERE / "io_packet_script.py"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, AF_PACKET)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
]

NODE_MAC, PEER_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"


@pytest.fixture
def topo():
    """ns node (vn, no address: its kernel stays silent) <-> ns peer (vp, 10.9.0.2/24); IPv6 off in
    both (no router solicitations / MLD reports on the wire)."""
    with Topology("afp") as t:
        node, peer = t.netns("node"), t.netns("peer")
        for ns in (node, peer):
            t.run(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                  "net.ipv6.conf.default.disable_ipv6=1")
        t.veth(node, "vn", peer, "vp")
        t.mac(node, "vn", NODE_MAC)
        t.mac(peer, "vp", PEER_MAC)
        t.addr(peer, "vp", "10.9.0.2/24")
        t.neigh(peer, "vp", "10.9.0.1", NODE_MAC)
        yield t, node, peer


def run(topo, scenario: str, *args, timeout: int = 60) -> dict:
    t, node, peer = topo
    r = t.run(node, "env", f"PYTHONPATH={REPO}", sys.executable, SCRIPT, scenario, "--peer", peer, *args,
              check=False, timeout=timeout)
    assert r.returncode == 0, f"{scenario}: rc {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_rx_byte_exact_vlan_restored(topo):
    out = run(topo, "rx")
    assert out["kernel_frames"] == 3, "the peer's kernel UDP frames were not all seen on the peer"
    assert out["got"] == out["expected"]       # in order, byte for byte, tags back in place
    assert out["extra"] == []
    st = out["stats"]
    assert st["rx_packets"] == len(out["expected"])
    assert st["rx_bytes"] == sum(len(f) // 2 for f in out["expected"])
    assert st["rx_dropped"] == st["rx_ring_full"] == st["rx_no_buffer"] == 0
    assert out["free_end"] == out["free0"]


def test_tx_reaches_peer_not_echoed(topo):
    out = run(topo, "tx")
    st = out["stats"]
    assert out["sent"] == len(out["good"]) == 5
    assert out["seen"] == out["good"]           # what the peer's device received, tags restored
    assert out["udp"] == out["udp_expected"]    # the peer's stack accepted the checksums
    assert out["own"] == 0                      # PACKET_IGNORE_OUTGOING
    assert st["tx_packets"] == 5 and st["tx_bytes"] == sum(len(f) // 2 for f in out["good"])
    assert st["tx_too_big"] == 4                # 1515 untagged, 1519 tagged, twice
    assert st["tx_errors"] == 1                 # the 10-byte frame
    assert st["tx_full"] == 0
    assert out["sent2"] == 0
    assert st["wakeups"] == 1                   # one sendmmsg for the first burst, none for the second
    assert st["rx_packets"] == 0
    assert out["free_end"] == out["free0"]


def test_burst_resumes_across_calls_and_empty_pool(topo):
    out = run(topo, "burst")
    assert out["seqs"] == list(range(550))      # none lost, none duplicated, in order
    assert out["mismatch"] == 0
    assert out["extra"] == 0
    assert out["first"] == 5 and out["again"] == 0
    assert out["nobuf1"] == 1 and out["nobuf"] == 2    # once per call that found the pool empty
    st = out["stats"]
    assert st["rx_packets"] == 550 and st["rx_dropped"] == 0 and st["rx_ring_full"] == 0
    assert out["free_end"] == out["free0"]


def test_ring_overflow_counted(topo):
    out = run(topo, "drops", "--count", "4000")
    st = out["stats"]
    assert out["increasing"]
    assert out["received"] == out["stats_open"]["rx_packets"] < out["sent"]    # the ring holds ~2800 of them
    assert out["received"] + st["rx_ring_full"] == out["sent"]
    assert out["free_end"] == out["nframes"]


def test_bad_input(topo):
    out = run(topo, "bad")
    kind, err, msg = out["unknown"]
    assert kind == "OSError" and err == errno.ENODEV and "nosuchif0" in msg
    assert out["long"][:2] == ["OSError", errno.EINVAL] and "x" * 16 in out["long"][2]
    assert out["empty"][:2] == ["OSError", errno.EINVAL]
    assert out["lo"][:2] == ["OSError", errno.EPROTONOSUPPORT] and "Ethernet" in out["lo"][2]
    assert out["nul"][0] == "ValueError"
    assert out["closed_rx"] and "closed" in out["closed_rx"]
    assert out["noperm"].startswith(f"{errno.EPERM} ") and "CAP_NET_RAW" in out["noperm"], out["noperm"]
    assert out["free_end"] == out["nframes"]


def test_device_down_then_up(topo):
    out = run(topo, "down")
    assert out["ev_down"] == []                 # no error state left by binding to a down device
    assert out["sent_down"] == 0 and out["st_down"]["tx_errors"] == 1
    assert out["ev_after_tx"] == []
    assert out["got"] == [7]
    assert out["free_end"] == out["nframes"]


def test_mtu_change_after_open(topo):
    out = run(topo, "mtu")
    assert out["sent_big"] == 1 and out["st_big"]["tx_too_big"] == 0 and out["st_big"]["wakeups"] == 1
    assert out["sent_mixed"] == 2
    assert out["events"] == []                  # the failed sendmmsg left no EPOLLERR behind
    assert out["after_shrink"] == 0
    st = out["st"]
    assert st["tx_too_big"] == 2 and st["tx_errors"] == 0 and st["tx_packets"] == 3
    assert st["wakeups"] == 1 + 3               # the mixed burst: 1 sent, EMSGSIZE, 1 sent
    assert out["seen_ok"], out["seen"]
    assert out["free_end"] == out["nframes"]


def test_lone_frame_latency(topo):
    out = run(topo, "latency", "--count", "20")
    assert out["lost"] == 0
    print("lone frame, ms (min, median, max): fd readable", out["wake_ms"], "busy rx", out["busy_ms"])
    assert out["wake_ms"][1] < 20 and out["busy_ms"][1] < 20
    assert out["free_end"] == out["nframes"]
