"""Parser: fields agree with scapy's dissection; every named drop reason is reached by a frame."""
import pytest
from hypothesis import given, strategies as st

from pkt_frames import (ARP, IP, IP4_OPTIONS, IP6_EXT, L4S, TCP, UDP, Dot1Q, Ether, IPv6, IPv6ExtHdrDestOpt,
                        IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, MACS, Raw, arp_frame, build, expected, l2)

from vrouter import packet  # a missing build fails the import: never a skip

ip4s = st.builds(lambda b: ".".join(map(str, b)), st.lists(st.integers(0, 255), min_size=4, max_size=4))
ip6s = st.builds(lambda b: str(__import__("ipaddress").IPv6Address(bytes(b))),
                 st.lists(st.integers(0, 255), min_size=16, max_size=16))


def check_against_scapy(frame: bytes, rec: dict):
    exp = expected(frame)
    assert rec["drop"] == "none"
    got_flags = rec["flags"] - {"ip4_csum_ok"}
    assert got_flags == exp["flags"]
    for k in ("vlan", "l3_off", "src", "dst", "ttl", "proto", "l4_off", "sport", "dport", "tcp_flags"):
        if k in exp:
            assert rec[k] == exp[k], (k, rec[k], exp[k])


@given(family=st.sampled_from([4, 6]), kind=st.sampled_from(L4S), vlan=st.one_of(st.none(), st.integers(0, 4095)),
       data=st.data(), sport=st.integers(0, 65535), dport=st.integers(0, 65535), ttl=st.integers(0, 255),
       tcp_flags=st.integers(0, 255), ident=st.integers(0, 65535), payload=st.binary(max_size=64))
def test_parsed_fields_equal_scapys_for_ip_tcp_udp_icmp_with_options_and_ext_headers(
        family, kind, vlan, data, sport, dport, ttl, tcp_flags, ident, payload):
    opts = data.draw(st.sampled_from(sorted(IP4_OPTIONS if family == 4 else IP6_EXT)), label="opts")
    addr = ip4s if family == 4 else ip6s
    frame = build(family, kind, vlan, opts, data.draw(addr, "src"), data.draw(addr, "dst"), sport, dport,
                  ttl, tcp_flags, ident, payload)
    rec = packet.parse([frame])[0]
    check_against_scapy(frame, rec)
    assert ("ip4_csum_ok" in rec["flags"]) == (family == 4)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("kind", L4S)
@pytest.mark.parametrize("vlan", [None, 100])
def test_every_l3_l4_vlan_combination_parses_like_scapy(family, kind, vlan):
    opts_all = IP4_OPTIONS if family == 4 else IP6_EXT
    frames = [build(family, kind, vlan, o) for o in opts_all]
    for frame, rec in zip(frames, packet.parse(frames)):
        check_against_scapy(frame, rec)


def test_ipv4_addresses_are_stored_ipv4_mapped_like_flow_keys():
    rec = packet.parse([build(4, "udp", src="10.1.2.3", dst="192.0.2.9")])[0]
    assert rec["src_raw"] == bytes(10) + b"\xff\xff" + bytes([10, 1, 2, 3])
    assert rec["dst_raw"] == bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 9])


def test_ipv4_first_fragment_has_ports_and_later_fragment_has_none():
    first = build(4, "udp", frag_first=True)
    later = bytes(l2(None) / IP(src="10.0.0.1", dst="10.0.0.2", proto=17, frag=100) / Raw(b"x" * 40))
    r1, r2 = packet.parse([first, later])
    assert r1["flags"] >= {"fragment", "l4"} and r1["sport"] == 1234
    assert "fragment" in r2["flags"] and "l4" not in r2["flags"]
    assert (r2["drop"], r2["proto"], r2["sport"], r2["dport"], r2["l4_off"]) == ("none", 17, 0, 0, 34)


def test_ipv6_later_fragment_reports_next_header_and_no_ports():
    f = bytes(l2(None) / IPv6() / IPv6ExtHdrFragment(nh=6, offset=10, m=1) / Raw(b"y" * 24))
    r = packet.parse([f])[0]
    assert r["drop"] == "none" and r["flags"] == {"ip6", "fragment"}
    assert (r["proto"], r["l4_off"], r["sport"]) == (6, 14 + 40 + 8, 0)


def test_ipv6_atomic_fragment_is_not_flagged_as_fragment():
    r = packet.parse([build(6, "tcp", opts="atomic_frag")])[0]
    assert r["drop"] == "none" and "fragment" not in r["flags"] and "l4" in r["flags"]


def test_arp_is_recognised_with_sender_target_and_opcode():
    r = packet.parse([arp_frame(op=2, psrc="10.9.8.7", pdst="10.0.0.254", vlan=7)])[0]
    assert r["drop"] == "none" and r["flags"] == {"arp", "vlan"} and r["vlan"] == 7
    assert (r["src"], r["dst"], r["dport"], r["l3_off"], r["ethertype"]) == ("10.9.8.7", "10.0.0.254", 2, 18, 0x0806)


@pytest.mark.parametrize("frame", [
    bytes(Ether(type=0x88cc, **MACS) / Raw(b"\x02\x07lldp-ish-payload")),
    bytes(Ether(type=0x0026, **MACS) / Raw(b"\x42\x42\x03" + b"\x00" * 35)),  # 802.3 length + LLC (STP)
    bytes(l2(5) / Raw(b"\x88\xe5" + b"\x00" * 30))[:12] + b"\x81\x00\x00\x05\x88\xe5" + b"\x00" * 30,
], ids=["lldp", "llc", "vlan_macsec"])
def test_non_ip_non_arp_ethertype_is_other_not_a_drop(frame):
    r = packet.parse([frame])[0]
    assert r["drop"] == "none" and "other" in r["flags"]
    assert not r["flags"] & {"ip4", "ip6", "arp", "l4"}


def test_ip_protocol_without_known_l4_parses_without_ports():
    frames = [bytes(l2(None) / IP(proto=47) / Raw(b"\x00" * 4)),                # GRE
              bytes(l2(None) / IPv6(nh=59)),                                     # no next header
              bytes(l2(None) / IPv6() / IPv6ExtHdrDestOpt(nh=50) / Raw(b"e" * 16))]  # ESP after dest opts
    for r, proto, l4_off in zip(packet.parse(frames), (47, 59, 50), (34, 54, 14 + 48)):
        assert r["drop"] == "none" and "l4" not in r["flags"]
        assert (r["proto"], r["l4_off"], r["sport"], r["dport"]) == (proto, l4_off, 0, 0)


def test_ethernet_padding_after_a_short_ip_packet_is_ignored():
    f = build(4, "udp", payload=b"")                 # 42 bytes: padded to the 60-byte minimum
    r = packet.parse([f + b"\x00" * 18])[0]
    assert r["drop"] == "none" and r["sport"] == 1234


def test_ip4_checksum_is_only_read_when_asked():
    bad = bytes(l2(None) / IP(chksum=0x1234) / UDP())
    assert packet.parse([bad], verify_ip4_csum=True)[0]["drop"] == "bad_ip_checksum"
    r = packet.parse([bad], verify_ip4_csum=False)[0]
    assert r["drop"] == "none" and "ip4_csum_ok" not in r["flags"] and "l4" in r["flags"]


def test_parse_keeps_the_backends_fields_and_reports_vif():
    b = packet.Burst([build(4, "udp")], vif=42)
    before = b.descs[["buf", "buf_size", "data_off", "data_len"]].copy()
    assert b.parse() == 1
    assert b.records()[0]["vif"] == 42
    assert (b.descs[["buf", "buf_size", "data_off", "data_len"]] == before).all()
    assert b.descs["data_off"][0] == packet.HEADROOM >= 128


def test_burst_return_counts_parsed_frames_across_burst_boundaries():
    good, bad = build(4, "tcp"), b"\x01" * 10
    frames = [good if i % 3 else bad for i in range(200)]
    b = packet.Burst(frames)
    assert b.parse(burst=64) == sum(1 for f in frames if f is good)
    assert b.parse(burst=7) == sum(1 for f in frames if f is good)


# ---- every drop reason, reached by named frames

def _eth(t):
    return Ether(type=t, **MACS)


def _ip6_chain(n, cls=IPv6ExtHdrDestOpt):
    p = IPv6()
    for _ in range(n):
        p = p / cls()
    return bytes(l2(None) / p / UDP())


DROP_FRAMES = {
    "truncated": [b"", b"\x02" * 13, bytes(l2(3) / IP())[:17], bytes(l2(None) / IP())[:33],
                  bytes(l2(None) / IPv6())[:53], arp_frame()[:41]],
    "vlan_stacked": [bytes(l2(1) / Dot1Q(vlan=2) / IP()), bytes(l2(1))[:12] + b"\x81\x00\x00\x01\x88\xa8" + bytes(30)],
    "bad_arp": [bytes(l2(None) / ARP(ptype=0x86dd)), bytes(l2(None) / ARP(hwlen=8))],
    "bad_ip_version": [bytes(_eth(0x0800) / IPv6()), bytes(_eth(0x86dd) / IP() / Raw(b"z" * 40))],
    "bad_ihl": [bytes(l2(None) / IP(ihl=4) / UDP()), bytes(l2(None) / IP(ihl=15) / Raw(b"q" * 10))],
    "bad_ip_length": [bytes(l2(None) / IP(len=19) / UDP()), bytes(l2(None) / IP(len=1000) / UDP()),
                      bytes(l2(None) / IPv6(plen=1000) / UDP())],
    "bad_ip_checksum": [bytes(l2(None) / IP(chksum=0xbeef) / TCP())],
    "bad_fragment": [bytes(l2(None) / IP(frag=8189, proto=17) / Raw(b"f" * 100)),
                     bytes(l2(None) / IPv6() / IPv6ExtHdrFragment(offset=8189) / Raw(b"f" * 100))],
    "ipv6_ext_chain": [_ip6_chain(packet.IP6_MAX_EXT + 1),
                       bytes(l2(None) / IPv6() / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / UDP()),
                       bytes(l2(None) / IPv6() / IPv6ExtHdrDestOpt(len=10) / UDP()),
                       bytes(l2(None) / IPv6(nh=43) / Raw(b"\x3b\x00\x00\x00"))],
    "l4_truncated": [bytes(l2(None) / IP(proto=6) / Raw(b"t" * 19)), bytes(l2(None) / IP(proto=17) / Raw(b"u" * 7)),
                     bytes(l2(None) / IP(proto=1) / Raw(b"i" * 7)), bytes(l2(None) / IPv6(nh=58) / Raw(b"i" * 4)),
                     bytes(l2(None) / IP() / TCP(dataofs=15)),
                     bytes(l2(None) / IP(flags="MF", proto=6) / Raw(b"t" * 8))],
    "bad_tcp_offset": [bytes(l2(None) / IP() / TCP(dataofs=4)), bytes(l2(None) / IPv6() / TCP(dataofs=0))],
    "bad_udp_length": [bytes(l2(None) / IP() / UDP(len=7)), bytes(l2(None) / IPv6() / UDP(len=100) / Raw(b"x"))],
}


@pytest.mark.parametrize("reason", sorted(DROP_FRAMES))
def test_each_malformed_frame_gets_its_named_drop_reason(reason):
    for i, r in enumerate(packet.parse(DROP_FRAMES[reason])):
        assert r["drop"] == reason, (i, r["drop"])


def test_every_declared_drop_reason_is_reached_by_a_test_frame():
    frames = [f for fs in DROP_FRAMES.values() for f in fs]
    reached = {r["drop"] for r in packet.parse(frames)}
    assert reached == set(packet.DROP_REASONS) - {"none"}


def test_drop_names_are_unique_and_out_of_range_is_unknown():
    assert packet.DROP_REASONS[0] == "none" and len(set(packet.DROP_REASONS)) == len(packet.DROP_REASONS)
    assert packet.drop_name(len(packet.DROP_REASONS)) == "unknown"
    assert packet.drop_name(-1) == "unknown"
