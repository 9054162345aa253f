"""Frames for the packet tests, built with scapy, and what scapy says about them.

``build(spec)`` turns a small description (family, L4, VLAN, IPv4 options / IPv6
extension headers, addresses, ports, TTL) into frame bytes; ``expected(frame)``
re-dissects the bytes with scapy and returns the fields the C parser must report,
taken from scapy's layers (offsets from layer lengths, not from our own arithmetic).
"""
from __future__ import annotations

import logging

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR, IPOption_Timestamp  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    ICMPv6EchoReply, ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting)
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
IP4_OPTIONS = {
    "none": [],
    "nop": [IPOption_NOP()] * 4,
    "rr": [IPOption_RR(routers=["10.0.0.1", "10.0.0.2"])],
    "ts": [IPOption_Timestamp(flg=0, timestamp=[1, 2, 3])],
}
# IPv6 extension chains (each a list of header factories placed before L4)
IP6_EXT = {
    "none": [],
    "hbh": [lambda: IPv6ExtHdrHopByHop()],
    "dest": [lambda: IPv6ExtHdrDestOpt()],
    "routing": [lambda: IPv6ExtHdrRouting(addresses=["2001:db8::99"])],
    "frag_first": [lambda: IPv6ExtHdrFragment(offset=0, m=1, id=7)],
    "atomic_frag": [lambda: IPv6ExtHdrFragment(offset=0, m=0, id=8)],
    "hbh_routing_dest_frag": [lambda: IPv6ExtHdrHopByHop(), lambda: IPv6ExtHdrRouting(),
                              lambda: IPv6ExtHdrDestOpt(), lambda: IPv6ExtHdrFragment(m=1)],
}
L4S = ("tcp", "udp", "icmp_echo", "icmp_reply")


def l2(vlan: int | None, tci_pcp: int = 0):
    e = Ether(**MACS)
    return e / Dot1Q(vlan=vlan, prio=tci_pcp) if vlan is not None else e


def l4(kind: str, family: int, sport: int, dport: int, tcp_flags: int, ident: int, payload: bytes):
    if kind == "tcp":
        return TCP(sport=sport, dport=dport, flags=tcp_flags) / Raw(payload)
    if kind == "udp":
        return UDP(sport=sport, dport=dport) / Raw(payload)
    if family == 4:
        return ICMP(type=8 if kind == "icmp_echo" else 0, id=ident, seq=3) / Raw(payload)
    cls = ICMPv6EchoRequest if kind == "icmp_echo" else ICMPv6EchoReply
    return cls(id=ident, seq=3, data=payload)


def build(family=4, kind="udp", vlan=None, opts="none", src=None, dst=None, sport=1234, dport=80,
          ttl=64, tcp_flags=0x12, ident=0x4242, payload=b"hello", frag_first=False) -> bytes:
    """One frame; IPv4 opts = a key of IP4_OPTIONS, IPv6 opts = a key of IP6_EXT."""
    upper = l4(kind, family, sport, dport, tcp_flags, ident, payload)
    if family == 4:
        ip = IP(src=src or "10.1.2.3", dst=dst or "192.0.2.9", ttl=ttl, options=IP4_OPTIONS[opts],
                flags="MF" if frag_first else 0)
        return bytes(l2(vlan) / ip / upper)
    chain = IPv6(src=src or "2001:db8::1", dst=dst or "2001:db8:ffff::2", hlim=ttl)
    for make in IP6_EXT[opts]:
        chain = chain / make()
    return bytes(l2(vlan) / chain / upper)


def _off(frame: bytes, layer) -> int:
    return len(frame) - len(bytes(layer))


def expected(frame: bytes) -> dict:
    """The parser's fields as scapy reads the frame (only what scapy knows)."""
    pk = Ether(frame)
    out = {"flags": set(), "vlan": None}
    if Dot1Q in pk:
        out["flags"].add("vlan")
        out["vlan"] = pk[Dot1Q].vlan
    ip = pk[IP] if IP in pk else pk[IPv6]
    out["l3_off"] = _off(frame, ip)
    if IP in pk:
        out["flags"].add("ip4")
        out.update(src=ip.src, dst=ip.dst, ttl=ip.ttl, proto=ip.proto)
        if ip.flags.MF or ip.frag:
            out["flags"].add("fragment")
    else:
        out["flags"].add("ip6")
        out.update(src=ip.src, dst=ip.dst, ttl=ip.hlim)
        if IPv6ExtHdrFragment in pk and (pk[IPv6ExtHdrFragment].m or pk[IPv6ExtHdrFragment].offset):
            out["flags"].add("fragment")
    for cls, proto in ((TCP, 6), (UDP, 17), (ICMP, 1), (ICMPv6EchoRequest, 58), (ICMPv6EchoReply, 58)):
        if cls in pk:
            layer = pk[cls]
            out["flags"].add("l4")
            out["l4_off"] = _off(frame, layer)
            out["proto"] = proto
            if cls in (TCP, UDP):
                out["sport"], out["dport"] = layer.sport, layer.dport
            else:
                out["sport"], out["dport"] = layer.id, layer.type
            out["tcp_flags"] = int(layer.flags) if cls is TCP else 0
            break
    return out


def arp_frame(op=1, psrc="10.0.0.1", pdst="10.0.0.254", vlan=None) -> bytes:
    return bytes(l2(vlan) / ARP(op=op, hwsrc=MACS["src"], psrc=psrc, pdst=pdst))


__all__ = ["ARP", "Dot1Q", "Ether", "ICMP", "IP", "IPv6", "IPv6ExtHdrDestOpt", "IPv6ExtHdrFragment",
           "IPv6ExtHdrHopByHop", "IPv6ExtHdrRouting", "ICMPv6EchoRequest", "Raw", "TCP", "UDP", "MACS",
           "IP4_OPTIONS", "IP6_EXT", "L4S", "build", "expected", "arp_frame", "l2"]
