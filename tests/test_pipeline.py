"""The packet pipeline, frame by frame: frames built with scapy go through the C
pipeline (vrouter.pipeline.Datapath) and what comes out is dissected by scapy.
The node is tests/pl_topo.py's."""
import ipaddress

import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror
from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,
                                ICMPv6ND_RS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, ICMPv6PacketTooBig,
                                ICMPv6TimeExceeded, IPv6)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from pl_topo import (FABRIC, FABRIC_MAC, FABRIC_MTU, GW4, GW6, HOST, LABEL_OUT, LABEL_OUT6, LABEL_POD1,
                     LABEL_VRF1, NH_ECMP, NH_MPLS, NH_VX, NH_VXB, NH_VXC, NODE4, NODE6, PEER4, PEER6, POD1, POD2,
                     POD3, ROUTER_MAC, UNDERLAY_MAC, VNI1, VNI2, csum_ok, dissect, from_pod, ip_packet,
                     Pod, make_node, mpls_in, vxlan_in)
from vrouter.pipeline import DROP_REASONS, Datapath


@pytest.fixture
def node():
    return make_node()


def one(dp, frame, vif, **kw):
    return dp.process([frame], vif, **kw)[0]


# ------------------------------------------------------------------ same VRF, local

@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("kind", ["udp", "tcp", "icmp"])
def test_pod_to_pod_same_vrf(node, family, kind):
    dst = POD2.ip4 if family == 4 else POD2.ip6
    sent = from_pod(POD1, dst, kind, family, ttl=17)
    r = one(node, sent, POD1.vif)
    assert (r.verdict, r.out_vif) == ("forward", POD2.vif)
    out, inp = dissect(r.frame), dissect(sent)
    assert (out.src, out.dst) == (ROUTER_MAC, POD2.mac)
    ip_out, ip_in = (out[IP], inp[IP]) if family == 4 else (out[IPv6], inp[IPv6])
    if family == 4:
        assert ip_out.ttl == 16 and csum_ok(out, IP)
        assert bytes(ip_out)[9:] != b"" and bytes(ip_out.payload) == bytes(ip_in.payload)
    else:
        assert ip_out.hlim == 16 and bytes(ip_out.payload) == bytes(ip_in.payload)
    assert (ip_out.src, ip_out.dst) == (ip_in.src, ip_in.dst)
    assert len(r.frame) == 14 + len(ip_in)


def test_reply_direction_uses_the_reverse_flow(node):
    fwd = from_pod(POD1, POD2.ip4, "tcp", sport=40000, dport=80)
    back = from_pod(POD2, POD1.ip4, "tcp", sport=80, dport=40000, flags="SA")
    assert one(node, fwd, POD1.vif).out_vif == POD2.vif
    st = node.stats()
    r = one(node, back, POD2.vif)
    assert (r.verdict, r.out_vif) == ("forward", POD1.vif)
    assert dissect(r.frame).dst == POD1.mac
    st2 = node.stats()
    assert st2["flow_hits"] == st["flow_hits"] + 1 and st2["flow_installs"] == st["flow_installs"]


def test_second_packet_hits_the_flow(node):
    f = from_pod(POD1, POD2.ip4, "udp")
    node.process([f], POD1.vif)
    node.process([f, f, f], POD1.vif)
    st = node.stats()
    assert st["flow_installs"] == 1 and st["flow_hits"] == 3 and st["flow_misses"] == 1


def test_same_new_flow_twice_in_one_burst(node):
    f = from_pod(POD1, POD2.ip4, "udp", sport=999)
    rs = node.process([f, f], POD1.vif)
    assert [r.out_vif for r in rs] == [POD2.vif, POD2.vif]
    assert node.stats()["flow_installs"] == 1


# ------------------------------------------------------------------ isolation

def test_overlapping_subnets_are_isolated_by_vrf(node):
    # pod3 has pod1's address, in VRF 2, where 10.1.0.3 does not exist
    r = one(node, from_pod(POD3, POD2.ip4), POD3.vif)
    assert (r.verdict, r.reason) == ("drop", "no_route")
    # VRF 1 traffic to 10.1.0.2 reaches pod1, never pod3
    r = one(node, from_pod(POD2, POD1.ip4), POD2.vif)
    assert r.out_vif == POD1.vif
    # the same inner packet arriving with VNI 200 reaches pod3, with VNI 100 pod1
    inner = ip_packet("10.2.0.9", "10.1.0.2")
    assert one(node, vxlan_in(VNI2, inner), FABRIC).out_vif == POD3.vif
    assert one(node, vxlan_in(VNI1, inner), FABRIC).out_vif == POD1.vif
    # and pod3's route to 10.2/16 uses VNI 200
    out = dissect(one(node, from_pod(POD3, "10.2.0.9"), POD3.vif).frame)
    assert out[VXLAN].vni == VNI2


# ------------------------------------------------------------------ VXLAN

@pytest.mark.parametrize("kind", ["udp", "tcp", "icmp"])
def test_vxlan_encap_is_byte_exact(node, kind):
    sent = from_pod(POD1, "10.2.0.5", kind, ttl=30)
    r = one(node, sent, POD1.vif)
    assert (r.verdict, r.out_vif) == ("forward", FABRIC)
    out = dissect(r.frame)
    inner_ip = dissect(sent)[IP]
    assert (out.dst, out.src, out.type) == (UNDERLAY_MAC, FABRIC_MAC, 0x0800)
    ip = out[IP]
    assert (ip.version, ip.ihl, ip.tos, ip.flags, ip.frag, ip.ttl, ip.proto) == (4, 5, 0, 2, 0, 64, 17)
    assert (ip.src, ip.dst) == (NODE4, PEER4) and ip.len == len(r.frame) - 14 and csum_ok(out, IP)
    udp = out[UDP]
    assert udp.dport == 4789 and 49152 <= udp.sport <= 65535 and udp.chksum == 0
    assert udp.len == len(r.frame) - 14 - 20
    vx = out[VXLAN]
    assert vx.flags == 0x08 and vx.vni == VNI1 and vx.reserved1 == 0 and vx.reserved2 == 0
    inner = vx.payload
    assert isinstance(inner, Ether) and (inner.dst, inner.src, inner.type) == (ROUTER_MAC, FABRIC_MAC, 0x0800)
    got = inner[IP]
    assert got.ttl == 29 and csum_ok(inner, IP)
    want = inner_ip.copy()
    want.ttl = 29
    del want.chksum
    assert bytes(got) == bytes(IP(bytes(want)))
    # exactly 50 bytes of outer headers in front of the inner frame
    assert len(r.frame) == 50 + 14 + len(inner_ip)


def test_vxlan_source_port_is_a_flow_hash(node):
    ports = {}
    for sport in range(1000, 1200):
        f = from_pod(POD1, "10.2.0.5", "udp", sport=sport)
        a = dissect(one(node, f, POD1.vif).frame)[UDP].sport
        b = dissect(one(node, f, POD1.vif).frame)[UDP].sport
        assert a == b and 49152 <= a <= 65535
        ports[sport] = a
    assert len(set(ports.values())) > 150   # 200 flows spread over 16384 ports


def test_vxlan_over_ipv6_underlay_has_udp_checksum(node):
    sent = from_pod(POD1, "fd00:2::5", "tcp", family=6)
    r = one(node, sent, POD1.vif)
    out = dissect(r.frame)
    assert out.type == 0x86DD and (out[IPv6].src, out[IPv6].dst) == (NODE6, PEER6)
    assert out[IPv6].hlim == 64 and out[IPv6].nh == 17 and out[IPv6].plen == len(r.frame) - 54
    assert out[UDP].dport == 4789 and out[UDP].chksum != 0 and csum_ok(out, UDP)
    assert out[VXLAN].vni == VNI1 and out[VXLAN].payload[IPv6].hlim == 63
    assert len(r.frame) == 70 + 14 + len(dissect(sent)[IPv6])


@pytest.mark.parametrize("outer", ["4", "6"])
def test_vxlan_decap_delivers_to_the_pod(node, outer):
    inner = ip_packet("10.2.0.9", POD1.ip4, "tcp", ttl=40)
    src, dst = (PEER4, NODE4) if outer == "4" else (PEER6, NODE6)
    r = one(node, vxlan_in(VNI1, inner, src, dst), FABRIC)
    assert (r.verdict, r.out_vif) == ("forward", POD1.vif)
    out = dissect(r.frame)
    assert (out.src, out.dst) == (ROUTER_MAC, POD1.mac)
    assert bytes(out[IP]) == bytes(inner)   # not decremented again: the overlay is one hop
    assert node.stats()["decap_vxlan"] == 1


def test_vxlan_round_trip_through_two_nodes():
    a, b = make_node(), make_node()
    # on node b, 10.2.0.0/16 is local: a pod there with 10.2.0.5
    b.nh.set_vif(7, kind="virtual", vrf=1, mac=ROUTER_MAC, mtu=1500, gw4="10.2.0.1", prefixes=("10.2.0.5/32",))
    b.nh.set_nh(70, "interface", vif=7, dmac="02:00:00:00:07:07")
    b.lpm4.insert(1, "10.2.0.5/32", 70)
    sent = from_pod(POD1, "10.2.0.5", "udp")
    enc = one(a, sent, POD1.vif)
    # swap the underlay addresses as node b sees them
    f = dissect(enc.frame)
    f[IP].dst = NODE4
    f[IP].src = PEER4
    del f[IP].chksum
    f[Ether].dst = FABRIC_MAC
    r = one(b, bytes(f), FABRIC)
    assert (r.verdict, r.out_vif) == ("forward", 7)
    got = dissect(r.frame)[IP]
    assert got.ttl == 63 and bytes(got.payload) == bytes(dissect(sent)[IP].payload)


def test_vxlan_without_i_flag_and_unknown_vni(node):
    inner = ip_packet("10.2.0.9", POD1.ip4)
    assert one(node, vxlan_in(VNI1, inner, flags=0x00), FABRIC).reason == "bad_tunnel"
    assert one(node, vxlan_in(4242, inner), FABRIC).reason == "unknown_vni"


def test_fabric_traffic_that_is_not_a_tunnel_goes_to_the_host(node):
    ssh = bytes(Ether(src=UNDERLAY_MAC, dst=FABRIC_MAC) / IP(src=PEER4, dst=NODE4) / TCP(dport=22))
    arp = bytes(Ether(src=UNDERLAY_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=PEER4, pdst=NODE4))
    other_dst = vxlan_in(VNI1, ip_packet("10.2.0.9", POD1.ip4), outer_dst="192.0.2.77")
    zmq = bytes(Ether(src=UNDERLAY_MAC, dst=FABRIC_MAC) / IP(src=PEER4, dst=NODE4) / UDP(dport=5555))
    for f in (ssh, arp, other_dst, zmq):
        r = one(node, f, FABRIC)
        assert r.verdict == "host" and r.frame == f


# ------------------------------------------------------------------ MPLSoUDP

@pytest.mark.parametrize("family", [4, 6])
def test_mplsoudp_encap(node, family):
    dst = "10.3.0.7" if family == 4 else "fd00:3::7"
    sent = from_pod(POD1, dst, "udp", family=family)
    r = one(node, sent, POD1.vif)
    assert r.out_vif == FABRIC
    out = dissect(r.frame)
    label = LABEL_OUT if family == 4 else LABEL_OUT6
    if family == 4:
        assert (out[IP].src, out[IP].dst, out[IP].flags) == (NODE4, PEER4, 2) and csum_ok(out, IP)
        assert out[UDP].chksum == 0
    else:
        assert (out[IPv6].src, out[IPv6].dst) == (NODE6, PEER6) and csum_ok(out, UDP)
    assert out[UDP].dport == 6635 and 49152 <= out[UDP].sport <= 65535
    m = out[MPLS]
    assert (m.label, m.s, m.ttl, m.cos) == (label, 1, 64, 0)
    # the inner IP packet follows the label directly: no inner Ethernet
    inner = bytes(m.payload)
    sent_ip = bytes(dissect(sent).payload)
    assert len(inner) == len(sent_ip) and inner[0] >> 4 == family
    overhead = (20 if family == 4 else 40) + 8 + 4 + 14
    assert len(r.frame) == overhead + len(sent_ip)


def test_mplsoudp_decap_label_to_interface_and_to_vrf(node):
    inner = ip_packet("10.3.0.9", POD1.ip4, "udp", ttl=50)
    r = one(node, mpls_in(LABEL_POD1, inner), FABRIC)
    assert (r.verdict, r.out_vif) == ("forward", POD1.vif)
    out = dissect(r.frame)
    assert (out.src, out.dst, out.type) == (ROUTER_MAC, POD1.mac, 0x0800) and bytes(out[IP]) == bytes(inner)
    # label -> "look up in VRF 1": routed to pod2 by its address
    inner2 = ip_packet("10.3.0.9", POD2.ip4, "tcp")
    r = one(node, mpls_in(LABEL_VRF1, inner2), FABRIC)
    assert r.out_vif == POD2.vif and bytes(dissect(r.frame)[IP]) == bytes(inner2)
    # IPv6 inside
    inner6 = ip_packet("fd00:3::9", POD2.ip6, "udp")
    r = one(node, mpls_in(LABEL_VRF1, inner6, PEER6, NODE6), FABRIC)
    assert r.out_vif == POD2.vif and dissect(r.frame).type == 0x86DD
    assert node.stats()["decap_mpls"] == 3


def test_mplsoudp_bad_label_stack_and_unknown_label(node):
    inner = ip_packet("10.3.0.9", POD1.ip4)
    assert one(node, mpls_in(LABEL_POD1, inner, s=0), FABRIC).reason == "bad_tunnel"
    assert one(node, mpls_in(77777, inner), FABRIC).reason == "unknown_label"


# ------------------------------------------------------------------ ECMP

def _member(frame) -> str:
    return dissect(frame)[IP].dst


def test_ecmp_spreads_flows_and_keeps_each_on_its_member(node):
    frames = [from_pod(POD1, "10.4.0.1", "tcp", sport=s) for s in range(2000, 2300)]
    first = [_member(r.frame) for r in node.process(frames, POD1.vif)]
    again = [_member(r.frame) for r in node.process(frames, POD1.vif)]
    assert first == again
    counts = {m: first.count(m) for m in set(first)}
    assert set(counts) == {"192.0.2.2", "192.0.2.3", "192.0.2.4"}
    assert min(counts.values()) > 50     # 300 flows over 3 members


def test_ecmp_member_removal_moves_only_its_flows(node):
    frames = [from_pod(POD1, "10.4.0.1", "udp", sport=s) for s in range(3000, 3300)]
    before = [_member(r.frame) for r in node.process(frames, POD1.vif)]
    # remove the middle member: its slot becomes empty, the others keep theirs
    node.nh.set_nh(NH_ECMP, "ecmp", members=[NH_VX, None, NH_VXC])
    after = [_member(r.frame) for r in node.process(frames, POD1.vif)]
    for b, a in zip(before, after):
        if b != "192.0.2.3":
            assert a == b
        else:
            assert a in ("192.0.2.2", "192.0.2.4")
    assert "192.0.2.3" in before and "192.0.2.3" not in after
    # adding a member back moves no existing flow
    node.nh.set_nh(NH_ECMP, "ecmp", members=[NH_VX, NH_VXB, NH_VXC])
    assert [_member(r.frame) for r in node.process(frames, POD1.vif)] == after


def test_ecmp_new_flows_after_removal_avoid_the_removed_member(node):
    node.nh.set_nh(NH_ECMP, "ecmp", members=[NH_VX, None, NH_VXC])
    got = {_member(r.frame) for r in node.process(
        [from_pod(POD1, "10.4.0.2", "udp", sport=s) for s in range(100)], POD1.vif)}
    assert got == {"192.0.2.2", "192.0.2.4"}
    node.nh.set_nh(NH_ECMP, "ecmp", members=[None, None, None])
    assert one(node, from_pod(POD1, "10.4.0.3", "udp"), POD1.vif).reason == "nh_invalid"


# ------------------------------------------------------------------ TTL and MTU

@pytest.mark.parametrize("dst", [POD2.ip4, "10.2.0.5"])
def test_ttl_expiry_answers_time_exceeded(node, dst):
    sent = from_pod(POD1, dst, "udp", ttl=1)
    r = one(node, sent, POD1.vif)
    assert (r.verdict, r.reason, r.out_vif) == ("reply", "time_exceeded", POD1.vif)
    out = dissect(r.frame)
    assert (out.src, out.dst) == (ROUTER_MAC, POD1.mac)
    assert (out[IP].src, out[IP].dst, out[IP].proto) == (GW4, POD1.ip4, 1) and csum_ok(out, IP)
    assert (out[ICMP].type, out[ICMP].code) == (11, 0) and csum_ok(out, ICMP)
    quoted = out[IPerror]
    assert (quoted.src, quoted.dst, quoted.ttl) == (POD1.ip4, dst, 1)
    assert bytes(out[ICMP].payload) == bytes(dissect(sent)[IP])


def test_ttl_expiry_ipv6(node):
    sent = from_pod(POD1, POD2.ip6, "tcp", family=6, ttl=1)
    r = one(node, sent, POD1.vif)
    out = dissect(r.frame)
    te = out[ICMPv6TimeExceeded]
    assert (out[IPv6].src, out[IPv6].dst, te.code) == (GW6, POD1.ip6, 0) and csum_ok(out, ICMPv6TimeExceeded)
    assert bytes(te.payload) == bytes(dissect(sent)[IPv6])


def test_ttl_expiry_of_an_icmp_error_is_dropped_silently(node):
    err = bytes(Ether(src=POD1.mac, dst=ROUTER_MAC) / IP(src=POD1.ip4, dst=POD2.ip4, ttl=1) /
                ICMP(type=3, code=3) / IP(src=POD2.ip4, dst=POD1.ip4) / UDP())
    assert one(node, err, POD1.vif).reason == "ttl_expired"


def test_ttl_is_not_checked_for_decapsulated_packets(node):
    inner = ip_packet("10.2.0.9", POD1.ip4, ttl=1)
    r = one(node, vxlan_in(VNI1, inner), FABRIC)
    assert r.verdict == "forward" and dissect(r.frame)[IP].ttl == 1


def test_pmtu_ipv4_with_df_gets_fragmentation_needed(node):
    mtu_inner = FABRIC_MTU - 50
    ok = from_pod(POD1, "10.2.0.5", "udp", payload=b"x" * (mtu_inner - 28))
    assert one(node, ok, POD1.vif).verdict == "forward"
    big = from_pod(POD1, "10.2.0.5", "udp", payload=b"x" * (mtu_inner - 27))
    r = one(node, big, POD1.vif)
    assert (r.verdict, r.reason) == ("reply", "too_big")
    out = dissect(r.frame)
    assert (out[ICMP].type, out[ICMP].code, out[ICMP].nexthopmtu) == (3, 4, mtu_inner)
    assert out[IP].dst == POD1.ip4 and csum_ok(out, ICMP) and csum_ok(out, IP)
    assert len(out[IP]) == 576 and r.frame[14 + 20 + 8:] == bytes(dissect(big)[IP])[:548]


def test_pmtu_ipv4_without_df_is_dropped(node):
    big = from_pod(POD1, "10.2.0.5", "udp", payload=b"x" * 1500, df=False)
    assert one(node, big, POD1.vif).reason == "too_big"


def test_pmtu_ipv6_packet_too_big(node):
    big = from_pod(POD1, "fd00:2::5", "udp", family=6, payload=b"y" * 1400)
    r = one(node, big, POD1.vif)
    out = dissect(r.frame)
    ptb = out[ICMPv6PacketTooBig]
    assert ptb.mtu == FABRIC_MTU - 70 and csum_ok(out, ICMPv6PacketTooBig)
    assert out[IPv6].dst == POD1.ip6 and len(out[IPv6]) <= 1280


def test_local_mtu_of_the_out_vif(node):
    node.nh.set_vif(POD2.vif, kind="virtual", vrf=1, mac=ROUTER_MAC, mtu=1000, gw4=GW4, gw6=GW6,
                    prefixes=(f"{POD2.ip4}/32", f"{POD2.ip6}/128"))
    r = one(node, from_pod(POD1, POD2.ip4, "udp", payload=b"z" * 1000), POD1.vif)
    assert r.reason == "too_big" and dissect(r.frame)[ICMP].nexthopmtu == 1000


# ------------------------------------------------------------------ ARP / ND / echo

def arp_req(pod, target, psrc=None):
    return bytes(Ether(src=pod.mac, dst="ff:ff:ff:ff:ff:ff") /
                 ARP(op=1, hwsrc=pod.mac, psrc=psrc or pod.ip4, pdst=target))


@pytest.mark.parametrize("target", [GW4, POD2.ip4, "10.2.0.77"])
def test_arp_proxy_answers_gateway_and_routed_addresses(node, target):
    r = one(node, arp_req(POD1, target), POD1.vif)
    assert (r.verdict, r.reason, r.out_vif) == ("reply", "arp_reply", POD1.vif)
    out = dissect(r.frame)
    a = out[ARP]
    assert (out.dst, out.src) == (POD1.mac, ROUTER_MAC)
    assert (a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst) == (2, ROUTER_MAC, target, POD1.mac, POD1.ip4)


@pytest.mark.parametrize("target,psrc", [(POD1.ip4, None),        # its own address (conflict check)
                                         ("10.77.0.1", None),     # nothing routes there
                                         (POD1.ip4, "0.0.0.0")])  # RFC 5227 probe
def test_arp_not_answered(node, target, psrc):
    assert one(node, arp_req(POD1, target, psrc), POD1.vif).reason == "arp_not_for_us"


def test_arp_reply_and_spoofed_arp(node):
    rep = bytes(Ether(src=POD1.mac, dst=ROUTER_MAC) / ARP(op=2, hwsrc=POD1.mac, psrc=POD1.ip4, pdst=GW4))
    assert one(node, rep, POD1.vif).reason == "arp_not_for_us"
    assert one(node, arp_req(POD1, GW4, psrc="10.1.0.99"), POD1.vif).reason == "spoofed_source"


def ns(pod, target, src=None, hlim=255):
    return bytes(Ether(src=pod.mac, dst="33:33:ff:00:00:01") /
                 IPv6(src=src or pod.ip6, dst="ff02::1:ff00:1", hlim=hlim) /
                 ICMPv6ND_NS(tgt=target) / ICMPv6NDOptSrcLLAddr(lladdr=pod.mac))


@pytest.mark.parametrize("target", [GW6, POD2.ip6])
def test_nd_proxy_answers_with_an_advertisement(node, target):
    r = one(node, ns(POD1, target), POD1.vif)
    assert (r.verdict, r.reason) == ("reply", "neighbour_advert")
    out = dissect(r.frame)
    ip, na = out[IPv6], out[ICMPv6ND_NA]
    assert (out.dst, out.src) == (POD1.mac, ROUTER_MAC)
    assert (ip.src, ip.dst, ip.hlim) == (target, POD1.ip6, 255)
    assert (na.R, na.S, na.O, na.tgt) == (1, 1, 1, target) and csum_ok(out, ICMPv6ND_NA)
    assert out[ICMPv6NDOptDstLLAddr].lladdr == ROUTER_MAC


def test_nd_not_answered(node):
    assert one(node, ns(POD1, POD1.ip6), POD1.vif).reason == "nd_not_for_us"          # itself
    assert one(node, ns(POD1, GW6, src="::"), POD1.vif).reason == "nd_not_for_us"       # DAD
    assert one(node, ns(POD1, GW6, hlim=64), POD1.vif).reason == "nd_not_for_us"        # off-link
    rs = bytes(Ether(src=POD1.mac, dst="33:33:00:00:00:02") / IPv6(src=POD1.ip6, dst="ff02::2", hlim=255) /
               ICMPv6ND_RS())
    assert one(node, rs, POD1.vif).reason == "nd_not_for_us"


def test_echo_to_the_gateway(node):
    r = one(node, from_pod(POD1, GW4, "icmp", ident=99), POD1.vif)
    assert (r.verdict, r.reason) == ("reply", "echo_reply")
    out = dissect(r.frame)
    assert (out[IP].src, out[IP].dst, out[ICMP].type, out[ICMP].id) == (GW4, POD1.ip4, 0, 99)
    assert csum_ok(out, IP) and csum_ok(out, ICMP) and out.dst == POD1.mac
    r6 = one(node, from_pod(POD1, GW6, "icmp", family=6, ident=98), POD1.vif)
    out6 = dissect(r6.frame)
    assert out6.haslayer(ICMPv6EchoReply) and out6[ICMPv6EchoReply].id == 98
    assert (out6[IPv6].src, out6[IPv6].dst) == (GW6, POD1.ip6) and csum_ok(out6, ICMPv6EchoReply)


def test_other_traffic_to_the_gateway_is_dropped(node):
    assert one(node, from_pod(POD1, GW4, "tcp", dport=22), POD1.vif).reason == "to_gateway"


# ------------------------------------------------------------------ anti-spoofing, policy, drops

@pytest.mark.parametrize("family,src", [(4, "10.1.0.99"), (4, POD2.ip4), (6, "fd00:1::99")])
def test_spoofed_source_is_dropped(node, family, src):
    pkt = ip_packet(src, POD2.ip4 if family == 4 else POD2.ip6)
    f = bytes(Ether(src=POD1.mac, dst=ROUTER_MAC) / pkt)
    assert one(node, f, POD1.vif).reason == "spoofed_source"


def test_policy_deny_installs_a_drop_flow(node):
    node.nh.set_vif(POD1.vif, kind="virtual", vrf=1, mac=ROUTER_MAC, mtu=1500, gw4=GW4, gw6=GW6,
                    prefixes=(f"{POD1.ip4}/32", f"{POD1.ip6}/128"), policy=True)
    node.policy.set_vif_policy(POD1.vif, [{"id": 7, "action": "deny", "proto": "tcp", "dport": 22}])
    ssh = from_pod(POD1, POD2.ip4, "tcp", dport=22)
    web = from_pod(POD1, POD2.ip4, "tcp", dport=80)
    assert one(node, ssh, POD1.vif).reason == "policy_deny"
    assert one(node, ssh, POD1.vif).reason == "policy_deny"
    assert one(node, web, POD1.vif).out_vif == POD2.vif
    st = node.stats()
    assert st["drops"]["policy_deny"] == 2 and st["flow_installs"] == 2 and st["flow_hits"] == 1


def test_destination_vif_policy_applies_out(node):
    node.nh.set_vif(POD2.vif, kind="virtual", vrf=1, mac=ROUTER_MAC, mtu=1500, gw4=GW4, gw6=GW6,
                    prefixes=(f"{POD2.ip4}/32", f"{POD2.ip6}/128"), policy=True)
    node.policy.set_vif_policy(POD2.vif, [{"id": 1, "action": "pass", "direction": "egress", "proto": "tcp",
                                           "dport": 80}], default="deny")
    assert one(node, from_pod(POD1, POD2.ip4, "tcp", dport=80), POD1.vif).out_vif == POD2.vif
    assert one(node, from_pod(POD1, POD2.ip4, "tcp", dport=81), POD1.vif).reason == "policy_deny"


def test_leaked_route_reply_comes_back_through_the_destination_vrf(node):
    """A route leaked into VRF 2 delivers to POD2 (VRF 1) on this node. The reply arrives in POD2's VRF,
    so the pair's reverse entry is keyed there: the reply hits it, even though the initiator's vif
    accepts no new connection (its policy denies everything towards it)."""
    leak = Pod(5, 2, "02:00:00:00:05:02", "10.5.0.2", "fd00:5::2", 5)
    node.nh.set_vif(leak.vif, kind="virtual", vrf=2, mac=ROUTER_MAC, mtu=1500, gw4="10.5.0.1",
                    prefixes=(f"{leak.ip4}/32",), policy=True)
    node.nh.set_nh(leak.nh, "interface", vif=leak.vif, dmac=leak.mac)
    node.lpm4.insert(2, f"{POD2.ip4}/32", POD2.nh)      # VRF 2 reaches POD2 ...
    node.lpm4.insert(1, f"{leak.ip4}/32", leak.nh)      # ... and VRF 1 the new pod
    node.policy.set_vif_policy(leak.vif, [{"id": 1, "action": "deny", "direction": "egress"}])
    fwd = from_pod(leak, POD2.ip4, "tcp", sport=40000, dport=80)
    back = from_pod(POD2, leak.ip4, "tcp", sport=80, dport=40000, flags="SA")
    assert one(node, fwd, leak.vif).out_vif == POD2.vif
    installs = node.stats()["flow_installs"]
    r = one(node, back, POD2.vif)
    assert (r.verdict, r.out_vif) == ("forward", leak.vif)
    assert dissect(r.frame).dst == leak.mac
    assert node.stats()["flow_installs"] == installs          # the reverse entry, not a new flow
    assert len(node.flows.flows(vrf=2)[0]) == 1 and len(node.flows.flows(vrf=1)[0]) == 1   # one pair
    # a connection POD2 starts is new, and the leaked pod's policy refuses it
    assert one(node, from_pod(POD2, leak.ip4, "tcp", sport=81, dport=22), POD2.vif).reason == "policy_deny"
    # a route change in the reverse entry's VRF re-validates the pair
    assert node.revalidate_flows(1) == 0
    node.lpm4.delete(1, f"{leak.ip4}/32")
    assert node.revalidate_flows(1) == 2     # the leaked pod's pair and the denied one POD2 started


def test_flow_table_full_and_quotas_leave_existing_flows_alone():
    dp = make_node(flow_capacity=16)
    frames = [from_pod(POD1, POD2.ip4, "udp", sport=s) for s in range(40)]
    rs = dp.process(frames, POD1.vif)
    ok = [r for r in rs if r.verdict == "forward"]
    full = [r for r in rs if r.reason == "flow_table_full"]
    assert ok and full and len(ok) + len(full) == 40
    # the flows that got in keep forwarding
    again = dp.process(frames[:len(ok)], POD1.vif)
    assert all(r.verdict == "forward" for r in again)

    dp = make_node()
    dp.flows.set_quota(vif=POD1.vif, limit=2)
    rs = dp.process([from_pod(POD1, POD2.ip4, "udp", sport=s) for s in range(4)], POD1.vif)
    assert [r.reason for r in rs] == [None, None, "flow_vif_quota", "flow_vif_quota"]
    dp.flows.set_quota(vrf=1, limit=1)
    r = one(dp, from_pod(POD2, POD1.ip4, "udp", sport=5), POD2.vif)
    assert r.reason == "flow_vrf_quota"


def test_discard_receive_and_missing_next_hop(node):
    assert one(node, from_pod(POD1, "10.9.0.1"), POD1.vif).reason == "discard"
    r = one(node, from_pod(POD1, "10.8.0.1"), POD1.vif)
    assert r.verdict == "host"
    assert one(node, from_pod(POD1, "10.66.0.1"), POD1.vif).reason == "nh_invalid"


def test_multicast_and_broadcast_are_not_forwarded(node):
    for dst in ("224.0.0.5", "255.255.255.255"):
        f = bytes(Ether(src=POD1.mac, dst="01:00:5e:00:00:05") / IP(src=POD1.ip4, dst=dst) / UDP())
        assert one(node, f, POD1.vif).reason == "multicast"
    f6 = bytes(Ether(src=POD1.mac, dst="33:33:00:00:00:fb") / IPv6(src=POD1.ip6, dst="ff02::fb") / UDP())
    assert one(node, f6, POD1.vif).reason == "multicast"


def test_vlan_tagged_vifs(node):
    node.nh.set_vif(POD1.vif, kind="virtual", vrf=1, mac=ROUTER_MAC, mtu=1500, gw4=GW4, vlan=42,
                    prefixes=(f"{POD1.ip4}/32",))
    untagged = from_pod(POD1, POD2.ip4)
    assert one(node, untagged, POD1.vif).reason == "vlan_mismatch"
    tagged = bytes(Ether(src=POD1.mac, dst=ROUTER_MAC) / Dot1Q(vlan=42) /
                   IP(src=POD1.ip4, dst=POD2.ip4) / UDP())
    assert one(node, tagged, POD1.vif).out_vif == POD2.vif
    # towards pod1, frames carry its tag (the next hop's header was rebuilt with the vif)
    r = one(node, from_pod(POD2, POD1.ip4), POD2.vif)
    out = dissect(r.frame)
    assert out.haslayer(Dot1Q) and out[Dot1Q].vlan == 42 and out[IP].dst == POD1.ip4


def test_admin_down_and_unknown_vif(node):
    assert one(node, from_pod(POD1, POD2.ip4), 99).reason == "unknown_vif"
    node.nh.set_vif(POD2.vif, kind="virtual", vrf=1, mac=ROUTER_MAC, mtu=1500, admin_down=True,
                    prefixes=(f"{POD2.ip4}/32",))
    assert one(node, from_pod(POD1, POD2.ip4), POD1.vif).reason == "vif_down"
    assert one(node, from_pod(POD2, POD1.ip4), POD2.vif).reason == "vif_down"


def test_non_ip_frames(node):
    lldp = bytes(Ether(src=POD1.mac, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x00" * 40))
    assert one(node, lldp, POD1.vif).reason == "l2_unsupported"


def test_no_room_for_the_encapsulation(node):
    r = node.process([from_pod(POD1, "10.2.0.5")], POD1.vif, headroom=0)[0]
    assert r.reason == "no_room"


# ------------------------------------------------------------------ counters

def test_counters_match_what_was_sent(node):
    a = from_pod(POD1, POD2.ip4, "udp")
    b = from_pod(POD1, "10.2.0.5", "udp")
    c = from_pod(POD1, "10.77.0.1", "udp")
    rs = node.process([a, a, b, c], POD1.vif)
    assert [r.verdict for r in rs] == ["forward", "forward", "forward", "drop"]
    v1, v2, v0 = node.vif_stats(POD1.vif), node.vif_stats(POD2.vif), node.vif_stats(FABRIC)
    assert (v1["rx_packets"], v1["rx_bytes"], v1["drops"]) == (4, 2 * len(a) + len(b) + len(c), 1)
    assert (v2["tx_packets"], v2["tx_bytes"]) == (2, 2 * len(rs[0].frame))
    assert (v0["tx_packets"], v0["tx_bytes"]) == (1, len(rs[2].frame))
    st = node.stats()
    assert (st["packets"], st["forwarded"], st["dropped"], st["encap_vxlan"]) == (4, 3, 1, 1)
    assert node.drop_stats()["no_route"] == 1 and sum(node.drop_stats().values()) == 1
    assert node.vrf_stats(1)["packets"] == 4
    node.clear_stats()
    assert node.stats()["packets"] == 0 and node.vif_stats(POD1.vif)["rx_packets"] == 0


def test_counters_are_per_worker_and_summed():
    dp = make_node(workers=3)
    f = from_pod(POD1, POD2.ip4)
    for w in range(3):
        dp.process([f] * (w + 1), POD1.vif, worker=w)
    assert dp.vif_stats(POD1.vif)["rx_packets"] == 6 and dp.stats()["forwarded"] == 6
    with pytest.raises(ValueError, match="worker"):
        dp.process([f], POD1.vif, worker=3)


# ------------------------------------------------------------------ every drop reason

def test_every_drop_reason_is_reachable():
    """Each drop reason, from a frame that provokes it (the tests above check the details)."""
    seen = set()

    def note(dp, frame, vif, **kw):
        r = dp.process([frame], vif, **kw)[0]
        assert r.verdict == "drop", (r, frame)
        seen.add(r.reason)

    dp = make_node(verify_ip4_csum=True)
    eth = Ether(src=POD1.mac, dst=ROUTER_MAC)
    good = eth / IP(src=POD1.ip4, dst=POD2.ip4) / UDP(sport=1, dport=2) / Raw(b"abcdefgh")
    raw = bytes(good)
    note(dp, raw[:10], POD1.vif)                                                   # truncated
    note(dp, bytes(eth / Dot1Q(vlan=1) / Dot1Q(vlan=2) / IP()), POD1.vif)          # vlan_stacked
    note(dp, bytes(eth / ARP(hwlen=8)), POD1.vif)                                  # bad_arp
    note(dp, raw[:14] + bytes([0x65]) + raw[15:], POD1.vif)                        # bad_ip_version
    note(dp, raw[:14] + bytes([0x44]) + raw[15:], POD1.vif)                        # bad_ihl
    note(dp, bytes(eth / IP(src=POD1.ip4, dst=POD2.ip4, len=400) / UDP()), POD1.vif)   # bad_ip_length
    note(dp, bytes(eth / IP(src=POD1.ip4, dst=POD2.ip4, chksum=1) / UDP()), POD1.vif)  # bad_ip_checksum
    note(dp, bytes(eth / IP(src=POD1.ip4, dst=POD2.ip4, frag=8190, proto=17) / Raw(b"x" * 64)),
         POD1.vif)                                                                  # bad_fragment
    from scapy.layers.inet6 import IPv6ExtHdrDestOpt
    chain = IPv6(src=POD1.ip6, dst=POD2.ip6)
    for _ in range(12):
        chain = chain / IPv6ExtHdrDestOpt()
    note(dp, bytes(eth / chain / UDP()), POD1.vif)                                  # ipv6_ext_chain
    note(dp, bytes(eth / IP(src=POD1.ip4, dst=POD2.ip4, proto=6) / Raw(b"x" * 8)), POD1.vif)  # l4_truncated
    note(dp, bytes(eth / IP(src=POD1.ip4, dst=POD2.ip4) / TCP(dataofs=4)), POD1.vif)  # bad_tcp_offset
    note(dp, bytes(eth / IP(src=POD1.ip4, dst=POD2.ip4) / UDP(len=4)), POD1.vif)      # bad_udp_length
    note(dp, raw, 99)                                                               # unknown_vif
    note(dp, bytes(Ether(src=POD1.mac) / Dot1Q(vlan=5) / IP(src=POD1.ip4, dst=POD2.ip4) / UDP()),
         POD1.vif)                                                                  # vlan_mismatch
    note(dp, bytes(Ether(src=POD1.mac, type=0x88CC) / Raw(b"\0" * 40)), POD1.vif)   # l2_unsupported
    note(dp, bytes(eth / IP(src=POD1.ip4, dst="224.0.0.9") / UDP()), POD1.vif)     # multicast
    note(dp, arp_req(POD1, "10.77.7.7"), POD1.vif)                                  # arp_not_for_us
    note(dp, ns(POD1, POD1.ip6), POD1.vif)                                          # nd_not_for_us
    note(dp, bytes(eth / IP(src="10.1.0.200", dst=POD2.ip4) / UDP()), POD1.vif)    # spoofed_source
    note(dp, bytes(eth / IP(src=POD1.ip4, dst=GW4) / UDP()), POD1.vif)             # to_gateway
    note(dp, vxlan_in(VNI1, ip_packet("10.2.0.9", POD1.ip4), flags=0), FABRIC)     # bad_tunnel
    note(dp, vxlan_in(999, ip_packet("10.2.0.9", POD1.ip4)), FABRIC)               # unknown_vni
    note(dp, mpls_in(99999, ip_packet("10.3.0.9", POD1.ip4)), FABRIC)              # unknown_label
    note(dp, from_pod(POD1, "10.77.0.1"), POD1.vif)                                 # no_route
    note(dp, from_pod(POD1, "10.9.0.1"), POD1.vif)                                  # discard
    note(dp, from_pod(POD1, "10.66.0.1"), POD1.vif)                                 # nh_invalid
    note(dp, bytes(eth / IP(src=POD1.ip4, dst=POD2.ip4, ttl=1) / ICMP(type=11) / IP() / UDP()),
         POD1.vif)                                                                  # ttl_expired
    note(dp, from_pod(POD1, "10.2.0.5", payload=b"x" * 1480, df=False), POD1.vif)  # too_big
    note(dp, from_pod(POD1, "10.2.0.5"), POD1.vif, headroom=0)                     # no_room
    dp.nh.set_vif(POD2.vif, kind="virtual", vrf=1, mac=ROUTER_MAC, mtu=1500, admin_down=True)
    note(dp, from_pod(POD2, POD1.ip4), POD2.vif)                                    # vif_down
    dp.nh.set_vif(POD1.vif, kind="virtual", vrf=1, mac=ROUTER_MAC, mtu=1500, policy=True, gw4=GW4,
                  prefixes=(f"{POD1.ip4}/32", f"{POD1.ip6}/128"))
    dp.policy.set_vif_policy(POD1.vif, [{"id": 1, "action": "deny", "proto": "udp", "dport": 9}])
    note(dp, from_pod(POD1, "10.2.0.5", dport=9), POD1.vif)                         # policy_deny

    small = make_node(flow_capacity=16)
    rs = small.process([from_pod(POD1, "10.2.0.5", sport=s) for s in range(40)], POD1.vif)
    seen.update(r.reason for r in rs if r.verdict == "drop")                        # flow_table_full
    q = make_node()
    q.flows.set_quota(vif=POD1.vif, limit=1)
    rs = q.process([from_pod(POD1, "10.2.0.5", sport=s) for s in range(2)], POD1.vif)
    seen.update(r.reason for r in rs if r.verdict == "drop")                        # flow_vif_quota
    q.flows.set_quota(vrf=1, limit=1)
    rs = q.process([from_pod(POD2, "10.2.0.5", sport=7)], POD2.vif)
    seen.update(r.reason for r in rs if r.verdict == "drop")                        # flow_vrf_quota

    assert seen == set(DROP_REASONS) - {"none"}, set(DROP_REASONS) - {"none"} - seen


# ------------------------------------------------------------------ trace

def test_trace_of_a_tunnelled_packet_names_every_stage(node):
    t = node.trace(from_pod(POD1, "10.2.0.5", "tcp"), POD1.vif)
    assert [s["stage"] for s in t.steps] == ["vif", "parse", "flow", "route", "flow", "nexthop", "encap",
                                             "result"]
    assert t.stage("vif")[0] == {"stage": "vif", "id": POD1.vif, "kind": "virtual", "vrf": 1}
    assert t.stage("route")[0]["prefix"] == "10.2.0.0/16" and t.stage("route")[0]["nh"] == NH_VX
    assert t.stage("flow")[0]["result"] == "miss" and t.stage("flow")[1]["rev_nh"] == POD1.nh
    nh = t.stage("nexthop")[0]
    assert (nh["type"], nh["encap"], nh["vni"], nh["dst"]) == ("tunnel", "vxlan", VNI1, PEER4)
    assert t.stage("result")[0] == {"stage": "result", "verdict": "forward", "out_vif": FABRIC,
                                    "len": len(t.result.frame)}
    assert t.result.verdict == "forward" and dissect(t.result.frame)[VXLAN].vni == VNI1
    # a dry run: nothing installed, nothing counted
    assert node.stats()["packets"] == 0 and node.flows.stats()["inserts"] == 0


def test_trace_of_allowed_denied_and_unrouted_packets(node):
    node.nh.set_vif(POD1.vif, kind="virtual", vrf=1, mac=ROUTER_MAC, mtu=1500, gw4=GW4, gw6=GW6,
                    prefixes=(f"{POD1.ip4}/32", f"{POD1.ip6}/128"), policy=True)
    node.policy.set_vif_policy(POD1.vif, [{"id": 41, "action": "deny", "proto": "tcp", "dport": 22},
                                          {"id": 42, "action": "pass", "proto": "tcp"}])
    t = node.trace(from_pod(POD1, POD2.ip4, "tcp", dport=22), POD1.vif)
    pol = t.stage("policy")[0]
    assert (pol["rule"], pol["action"], pol["direction"]) == (41, "deny", "in")
    assert t.result.reason == "policy_deny" and t.stage("result")[0]["reason"] == "policy_deny"
    t = node.trace(from_pod(POD1, POD2.ip4, "tcp", dport=80), POD1.vif)
    assert t.stage("policy")[0]["rule"] == 42 and t.result.out_vif == POD2.vif
    assert t.stage("nexthop")[0]["type"] == "interface"
    t = node.trace(from_pod(POD1, "10.77.0.1"), POD1.vif)
    assert t.stage("route")[0]["result"] == "no_route" and t.result.reason == "no_route"
    # after real traffic the trace shows the flow hit
    node.process([from_pod(POD1, POD2.ip4, "tcp", dport=80)], POD1.vif)
    t = node.trace(from_pod(POD1, POD2.ip4, "tcp", dport=80), POD1.vif)
    assert t.stage("flow")[0]["result"] == "hit" and t.stage("flow")[0]["rule"] == 42


def test_trace_of_a_decapsulated_packet(node):
    t = node.trace(mpls_in(LABEL_VRF1, ip_packet("10.3.0.9", POD2.ip4)), FABRIC)
    dec = t.stage("decap")[0]
    assert (dec["encap"], dec["label"]) == ("mplsoudp", LABEL_VRF1)
    assert [s["dst"] for s in t.stage("parse")] == [NODE4, POD2.ip4]
    assert t.result.out_vif == POD2.vif


@pytest.mark.parametrize("outer", ["4", "6"])
def test_arp_inside_vxlan_is_answered_back_through_the_tunnel(node, outer):
    """A remote VTEP (a Linux vxlan device, say) resolving a local pod gets the answer in VXLAN."""
    src, dst = (PEER4, NODE4) if outer == "4" else (PEER6, NODE6)
    req = ARP(op=1, hwsrc="02:aa:00:00:00:01", psrc="10.1.0.77", pdst=POD1.ip4)
    r = one(node, vxlan_in(VNI1, req, src, dst), FABRIC)
    assert (r.verdict, r.reason, r.out_vif) == ("reply", "vxlan_arp_reply", FABRIC)
    out = dissect(r.frame)
    ip = out[IP] if outer == "4" else out[IPv6]
    assert (out.dst, out.src) == (UNDERLAY_MAC, FABRIC_MAC) and (ip.src, ip.dst) == (dst, src)
    if outer == "4":
        assert csum_ok(out, IP) and out[UDP].chksum == 0
    else:
        assert csum_ok(out, UDP)
    assert out[UDP].dport == 4789 and out[VXLAN].vni == VNI1
    a = out[VXLAN].payload[ARP]
    assert (a.op, a.psrc, a.hwsrc, a.pdst, a.hwdst) == (2, POD1.ip4, FABRIC_MAC, "10.1.0.77", "02:aa:00:00:00:01")
    assert out[VXLAN].payload.dst == "02:aa:00:00:00:01"
    # not for addresses that are not local pods
    req2 = ARP(op=1, hwsrc="02:aa:00:00:00:01", psrc="10.1.0.77", pdst="10.2.0.5")
    assert one(node, vxlan_in(VNI1, req2), FABRIC).reason == "arp_not_for_us"


def test_route_changes_re_decide_the_flows_they_move(node):
    """A flow caches its next hop; after a route change revalidate_flows deletes exactly the
    pairs whose route moved, and their next packet follows the new route."""
    to_remote = from_pod(POD1, "10.2.0.5", "udp", sport=4000)
    local = from_pod(POD1, POD2.ip4, "udp", sport=4001)
    assert dissect(one(node, to_remote, POD1.vif).frame).haslayer(VXLAN)
    assert one(node, local, POD1.vif).out_vif == POD2.vif
    node.lpm4.insert(1, "10.2.0.0/16", NH_MPLS)              # the remote subnet moved
    assert dissect(one(node, to_remote, POD1.vif).frame).haslayer(VXLAN)   # still the cached decision
    assert node.revalidate_flows(1) == 1                     # only that pair: the local one stayed
    out = dissect(one(node, to_remote, POD1.vif).frame)
    assert out.haslayer(MPLS) and not out.haslayer(VXLAN)
    node.lpm4.delete(1, "10.2.0.0/16")                       # withdrawn
    assert node.revalidate_flows() == 1
    assert one(node, to_remote, POD1.vif).reason == "no_route"
    assert node.stats()["flow_installs"] == 3 and one(node, local, POD1.vif).out_vif == POD2.vif
