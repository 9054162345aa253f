"""A small node for the pipeline tests, and frames for it built with scapy.

    pod1 (vif 1, VRF 1) 10.1.0.2  fd00:1::2 ─┐
    pod2 (vif 2, VRF 1) 10.1.0.3  fd00:1::3 ─┤  vrouter   fabric (vif 0) 192.0.2.1 / 2001:db8:f::1
    pod3 (vif 3, VRF 2) 10.1.0.2  fd00:1::2 ─┘  (router MAC 00:00:5e:00:01:00)
    host (vif 4, VRF 1)

VRF 1 and VRF 2 use the same pod subnet (10.1.0.0/24, fd00:1::/64): only the
VRF tells pod1 from pod3. Remote subnets of VRF 1 sit behind tunnels:
10.2.0.0/16 VXLAN VNI 100 to 192.0.2.2, 10.3.0.0/16 MPLSoUDP label 5000 to
192.0.2.2, 10.4.0.0/16 ECMP over three VXLAN peers, fd00:2::/64 VXLAN over an
IPv6 underlay, fd00:3::/64 MPLSoUDP over IPv6. 10.9.0.0/16 is a discard
route, 10.8.0.0/16 goes to the host, 10.66.0.0/16 names a next hop that does
not exist. Arriving from the fabric: VNI 100 -> VRF 1, VNI 200 -> VRF 2,
label 6001 -> pod1's next hop, label 6002 -> "look up in VRF 1".
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.contrib.mpls import MPLS  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.layers.vxlan import VXLAN  # noqa: E402
from scapy.packet import Raw, bind_layers  # noqa: E402

from vrouter.pipeline import Datapath  # noqa: E402

bind_layers(UDP, MPLS, dport=6635)

ROUTER_MAC = "00:00:5e:00:01:00"
FABRIC_MAC = "02:fa:00:00:00:01"
UNDERLAY_MAC = "02:fa:00:00:00:fe"      # the underlay router the node's tunnels go through
NODE4, NODE6 = "192.0.2.1", "2001:db8:f::1"
PEER4, PEER4B, PEER4C, PEER6 = "192.0.2.2", "192.0.2.3", "192.0.2.4", "2001:db8:f::2"
GW4, GW6 = "10.1.0.1", "fd00:1::1"
FABRIC, HOST = 0, 4
FABRIC_MTU = 1500


@dataclass(frozen=True)
class Pod:
    vif: int
    vrf: int
    mac: str
    ip4: str
    ip6: str
    nh: int


POD1 = Pod(1, 1, "02:00:00:00:01:02", "10.1.0.2", "fd00:1::2", 1)
POD2 = Pod(2, 1, "02:00:00:00:01:03", "10.1.0.3", "fd00:1::3", 2)
POD3 = Pod(3, 2, "02:00:00:00:02:02", "10.1.0.2", "fd00:1::2", 3)
PODS = (POD1, POD2, POD3)

# next hops
NH_VX, NH_MPLS, NH_VX6, NH_VXB, NH_VXC, NH_MPLS6 = 10, 11, 12, 13, 14, 15
NH_ECMP, NH_DISCARD, NH_RECEIVE, NH_VRF1, NH_VX_VRF2 = 20, 30, 31, 32, 40
VNI1, VNI2 = 100, 200
LABEL_OUT, LABEL_OUT6, LABEL_POD1, LABEL_VRF1 = 5000, 5001, 6001, 6002


def make_node(**kw) -> Datapath:
    dp = Datapath(**kw)
    nh = dp.nh
    nh.set_vif(FABRIC, kind="fabric", mac=FABRIC_MAC, mtu=FABRIC_MTU, prefixes=(f"{NODE4}/32", f"{NODE6}/128"))
    for p in PODS:
        nh.set_vif(p.vif, kind="virtual", vrf=p.vrf, mac=ROUTER_MAC, mtu=1500, gw4=GW4, gw6=GW6,
                   prefixes=(f"{p.ip4}/32", f"{p.ip6}/128"))
        nh.set_nh(p.nh, "interface", vif=p.vif, dmac=p.mac)
    nh.set_vif(HOST, kind="host", vrf=1, mac="02:00:00:00:00:04", mtu=1500)
    tun = dict(vif=FABRIC, dmac=UNDERLAY_MAC)
    vx = dict(tun, inner_dmac=ROUTER_MAC)
    nh.set_nh(NH_VX, "tunnel", encap="vxlan", src=NODE4, dst=PEER4, vni=VNI1, **vx)
    nh.set_nh(NH_MPLS, "tunnel", encap="mplsoudp", src=NODE4, dst=PEER4, label=LABEL_OUT, **tun)
    nh.set_nh(NH_VX6, "tunnel", encap="vxlan", src=NODE6, dst=PEER6, vni=VNI1, **vx)
    nh.set_nh(NH_VXB, "tunnel", encap="vxlan", src=NODE4, dst=PEER4B, vni=VNI1, **vx)
    nh.set_nh(NH_VXC, "tunnel", encap="vxlan", src=NODE4, dst=PEER4C, vni=VNI1, **vx)
    nh.set_nh(NH_MPLS6, "tunnel", encap="mplsoudp", src=NODE6, dst=PEER6, label=LABEL_OUT6, **tun)
    nh.set_nh(NH_VX_VRF2, "tunnel", encap="vxlan", src=NODE4, dst=PEER4, vni=VNI2, **vx)
    nh.set_nh(NH_ECMP, "ecmp", members=[NH_VX, NH_VXB, NH_VXC])
    nh.set_nh(NH_DISCARD, "discard")
    nh.set_nh(NH_RECEIVE, "receive")
    nh.set_nh(NH_VRF1, "vrf", vrf=1)
    nh.set_vni(VNI1, 1)
    nh.set_vni(VNI2, 2)
    nh.set_label(LABEL_POD1, POD1.nh)
    nh.set_label(LABEL_VRF1, NH_VRF1)
    for p in PODS:
        dp.lpm4.insert(p.vrf, f"{p.ip4}/32", p.nh)
        dp.lpm6.insert(p.vrf, f"{p.ip6}/128", p.nh)
    for prefix, n in (("10.2.0.0/16", NH_VX), ("10.3.0.0/16", NH_MPLS), ("10.4.0.0/16", NH_ECMP),
                      ("10.9.0.0/16", NH_DISCARD), ("10.8.0.0/16", NH_RECEIVE), ("10.66.0.0/16", 999)):
        dp.lpm4.insert(1, prefix, n)
    dp.lpm6.insert(1, "fd00:2::/64", NH_VX6)
    dp.lpm6.insert(1, "fd00:3::/64", NH_MPLS6)
    dp.lpm4.insert(2, "10.2.0.0/16", NH_VX_VRF2)
    return dp


# ------------------------------------------------------------------ frames

def l4(kind: str, sport=1234, dport=80, payload=b"payload-bytes", ident=7, flags="S"):
    if kind == "udp":
        return UDP(sport=sport, dport=dport) / Raw(payload)
    if kind == "tcp":
        return TCP(sport=sport, dport=dport, flags=flags) / Raw(payload)
    if kind == "icmp":
        return ICMP(type=8, id=ident, seq=1) / Raw(payload)
    raise ValueError(kind)


def ip_packet(src: str, dst: str, kind="udp", ttl=64, **kw):
    if ":" in src:
        if kind == "icmp":
            from scapy.layers.inet6 import ICMPv6EchoRequest
            return IPv6(src=src, dst=dst, hlim=ttl) / ICMPv6EchoRequest(id=kw.get("ident", 7), seq=1,
                                                                         data=kw.get("payload", b"payload-bytes"))
        return IPv6(src=src, dst=dst, hlim=ttl) / l4(kind, **kw)
    df = kw.pop("df", True)
    return IP(src=src, dst=dst, ttl=ttl, flags="DF" if df else 0) / l4(kind, **kw)


def from_pod(pod: Pod, dst: str, kind="udp", family=4, **kw) -> bytes:
    src = pod.ip4 if family == 4 else pod.ip6
    return bytes(Ether(src=pod.mac, dst=ROUTER_MAC) / ip_packet(src, dst, kind, **kw))


def vxlan_in(vni: int, inner, outer_src=PEER4, outer_dst=NODE4, flags=0x08, sport=50001) -> bytes:
    ip = IPv6(src=outer_src, dst=outer_dst) if ":" in outer_dst else IP(src=outer_src, dst=outer_dst)
    return bytes(Ether(src=UNDERLAY_MAC, dst=FABRIC_MAC) / ip / UDP(sport=sport, dport=4789) /
                 VXLAN(vni=vni, flags=flags) / Ether(src="02:aa:00:00:00:01", dst=ROUTER_MAC) / inner)


def mpls_in(label: int, inner, outer_src=PEER4, outer_dst=NODE4, s=1, sport=50002) -> bytes:
    ip = IPv6(src=outer_src, dst=outer_dst) if ":" in outer_dst else IP(src=outer_src, dst=outer_dst)
    return bytes(Ether(src=UNDERLAY_MAC, dst=FABRIC_MAC) / ip / UDP(sport=sport, dport=6635) /
                 MPLS(label=label, s=s, ttl=64) / inner)


def dissect(frame: bytes):
    return Ether(frame)


def csum_ok(pkt, layer, nth: int = 1) -> bool:
    """Is the checksum of the nth `layer` in pkt (an Ether) what scapy computes for it?"""
    lyr = pkt.getlayer(layer, nth)
    name = "chksum" if "chksum" in lyr.fields else "cksum"   # ICMPv6 layers say cksum
    want = lyr.getfieldval(name)
    p2 = pkt.copy()
    p2.getlayer(layer, nth).setfieldval(name, None)
    return Ether(bytes(p2)).getlayer(layer, nth).getfieldval(name) == want
