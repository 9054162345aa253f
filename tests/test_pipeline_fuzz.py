"""Random and mutated frames through the pipeline: no crash (the ASan run of
tools/test.sh runs this too), every frame forwarded, answered, handed to the
host or dropped with one named reason, and what leaves is a well-formed frame.
Where tshark is installed, it dissects the encapsulated output: no malformed
frame, no error-level expert info."""
import os
import shutil
import subprocess
import tempfile

import pytest
from hypothesis import given, strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrRouting
from scapy.layers.l2 import ARP, Ether
from scapy.utils import wrpcap

from pl_topo import (FABRIC, GW4, GW6, HOST, LABEL_POD1, LABEL_VRF1, POD1, POD2, POD3, ROUTER_MAC, VNI1, VNI2,
                     from_pod, ip_packet, make_node, mpls_in, vxlan_in)
from vrouter.packet import parse
from vrouter.pipeline import DROP_REASONS, REPLIES

VIFS = (FABRIC, POD1.vif, POD2.vif, POD3.vif, HOST, 99)


def corpus() -> list[tuple[int, bytes]]:
    """Valid frames of every kind the pipeline handles, with the vif they arrive on."""
    out = []
    for kind in ("udp", "tcp", "icmp"):
        for fam, dsts in ((4, (POD2.ip4, "10.2.0.5", "10.3.0.5", "10.4.0.5", GW4, "10.9.0.1")),
                          (6, (POD2.ip6, "fd00:2::5", "fd00:3::5", GW6))):
            for dst in dsts:
                out.append((POD1.vif, from_pod(POD1, dst, kind, family=fam)))
    out.append((POD1.vif, bytes(Ether(src=POD1.mac, dst="ff:ff:ff:ff:ff:ff") /
                                ARP(hwsrc=POD1.mac, psrc=POD1.ip4, pdst=GW4))))
    out.append((POD1.vif, bytes(Ether(src=POD1.mac, dst="33:33:ff:00:00:01") /
                                IPv6(src=POD1.ip6, dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt=GW6))))
    ext = IPv6(src=POD1.ip6, dst=POD2.ip6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() / \
        IPv6ExtHdrFragment(m=1) / UDP(sport=5, dport=6)
    out.append((POD1.vif, bytes(Ether(src=POD1.mac, dst=ROUTER_MAC) / ext)))
    out.append((POD1.vif, bytes(Ether(src=POD1.mac, dst=ROUTER_MAC) /
                                IP(src=POD1.ip4, dst="10.2.0.5", options=b"\x01" * 8) / UDP())))
    for vni in (VNI1, VNI2):
        out.append((FABRIC, vxlan_in(vni, ip_packet("10.2.0.9", "10.1.0.2", "tcp"))))
    out.append((FABRIC, vxlan_in(VNI1, ip_packet("fd00:2::9", POD1.ip6, "udp"), "2001:db8:f::2",
                                 "2001:db8:f::1")))
    out.append((FABRIC, mpls_in(LABEL_POD1, ip_packet("10.3.0.9", POD1.ip4, "udp"))))
    out.append((FABRIC, vxlan_in(VNI1, ARP(op=1, hwsrc="02:aa:00:00:00:01", psrc="10.1.0.77", pdst=POD1.ip4))))
    out.append((FABRIC, mpls_in(LABEL_VRF1, ip_packet("fd00:3::9", POD2.ip6, "icmp"))))
    out.append((FABRIC, bytes(Ether() / IP(src="192.0.2.2", dst="192.0.2.1") / UDP(dport=22))))
    out.append((HOST, from_pod(POD1, POD2.ip4)))
    return out


CORPUS = corpus()


@st.composite
def mutated(draw):
    vif, frame = draw(st.sampled_from(CORPUS))
    b = bytearray(frame)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "extend", "header"]))
        if not b:
            break
        if op == "flip":
            i = draw(st.integers(0, len(b) - 1))
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            i = draw(st.integers(0, len(b) - 1))
            b[i] = draw(st.integers(0, 255))
        elif op == "truncate":
            del b[draw(st.integers(0, len(b))):]
        elif op == "extend":
            b += draw(st.binary(max_size=64))
        else:   # a byte inside the first 80: Ethernet, IP, UDP, tunnel headers
            i = draw(st.integers(0, min(79, len(b) - 1)))
            b[i] = draw(st.sampled_from([0, 1, 4, 5, 6, 0x40, 0x45, 0x60, 0x81, 0x86, 0xdd, 0xff]))
    if draw(st.booleans()):
        vif = draw(st.sampled_from(VIFS))
    return vif, bytes(b)


frames_st = st.lists(st.one_of(mutated(), st.tuples(st.sampled_from(VIFS), st.binary(max_size=200))),
                     min_size=1, max_size=70)


@pytest.fixture(scope="module")
def node():
    return make_node(flow_capacity=4096)


def check_results(frames, results):
    assert len(results) == len(frames)
    for (vif, sent), r in zip(frames, results):
        assert r.verdict in ("forward", "reply", "host", "drop")
        if r.verdict == "drop":
            assert r.reason in DROP_REASONS and r.reason != "none"
        elif r.verdict == "reply":
            assert r.reason in REPLIES and r.out_vif == vif
        elif r.verdict == "host":
            assert r.out_vif is None
        else:
            assert r.out_vif in VIFS and r.reason is None
        if r.verdict in ("forward", "reply"):
            # what leaves parses cleanly; a tunnel's inner frame too
            rec = parse([r.frame], verify_ip4_csum=False)[0]
            assert rec["drop"] == "none", (r, rec)
            if r.out_vif == FABRIC and r.verdict == "forward":
                assert rec["proto"] == 17 and rec["dport"] in (4789, 6635)


@given(frames_st)
def test_random_and_mutated_frames(node, frames):
    by_vif = node.process([f for _, f in frames], [v for v, _ in frames])
    check_results(frames, by_vif)
    stats = node.stats()
    assert stats["packets"] == stats["forwarded"] + stats["replies"] + stats["to_host"] + stats["dropped"]


@given(st.lists(mutated(), min_size=1, max_size=8))
def test_trace_agrees_with_processing(frames):
    dp = make_node()
    for vif, f in frames:
        t = dp.trace(f, vif)
        r = dp.process([f], vif)[0]
        assert (t.result.verdict, t.result.reason, t.result.out_vif) == (r.verdict, r.reason, r.out_vif)
        assert t.result.frame == r.frame
        assert t.steps[-1]["stage"] == "result"


def test_every_corpus_frame_has_an_outcome(node):
    rs = node.process([f for _, f in CORPUS], [v for v, _ in CORPUS])
    check_results(CORPUS, rs)
    assert sum(r.verdict == "forward" for r in rs) >= 20


@pytest.mark.skipif(shutil.which("tshark") is None,
                    reason="tshark not installed (tools/bootstrap.sh installs it; scapy checks the same frames)")
def test_tshark_finds_no_malformed_frame():
    dp = make_node()
    frames = [f for _, f in CORPUS]
    rs = dp.process(frames, [v for v, _ in CORPUS])
    out = [r.frame for r in rs if r.verdict in ("forward", "reply")]
    assert len(out) > 20
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "out.pcap")
        wrpcap(path, [Ether(f) for f in out])
        res = subprocess.run(["tshark", "-n", "-r", path, "-d", "udp.port==6635,mpls", "-T", "fields",
                              "-e", "frame.number", "-e", "frame.protocols", "-e", "_ws.expert.severity",
                              "-e", "_ws.malformed"],
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.rstrip("\n").split("\n")
    assert len(lines) == len(out)
    bad = [ln for ln in lines if "_ws.malformed" in ln or "malformed" in ln.split("\t")[1] or
           any(s and int(s) >= 8388608 for s in ln.split("\t")[2].split(","))]   # PI_ERROR = 0x00800000
    assert not bad, bad
    protos = "\n".join(ln.split("\t")[1] for ln in lines)
    assert "vxlan" in protos and "mpls" in protos and "icmpv6" in protos and "arp" in protos


def test_twenty_thousand_mutations_in_bursts(node):
    """Beyond hypothesis' examples: 20,000 seeded mutations of the corpus in bursts of 256."""
    import random
    rng = random.Random(4789)
    for _ in range(80):
        frames = []
        for _ in range(256):
            vif, f = rng.choice(CORPUS)
            b = bytearray(f)
            for _ in range(rng.randint(1, 6)):
                if not b:
                    break
                i = rng.randrange(len(b))
                what = rng.random()
                if what < 0.5:
                    b[i] = rng.randrange(256)
                elif what < 0.7:
                    del b[i:]
                elif what < 0.85:
                    b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
                else:
                    vif = rng.choice(VIFS)
            frames.append((vif, bytes(b)))
        rs = node.process([f for _, f in frames], [v for v, _ in frames])
        check_results(frames, rs)
