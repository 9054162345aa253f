"""Checksums: IPv4 header, RFC 1624 incremental updates, pseudo-header + L4 sums, all against scapy
(which recomputes a field when it is deleted) and a plain Python RFC 1071 reference."""
import struct

from hypothesis import given, strategies as st

from pkt_frames import ICMP, IP, IPv6, TCP, UDP, ICMPv6EchoRequest, IPv6ExtHdrDestOpt, Ether, Raw, l2
from vrouter import packet

ip4_addr = st.binary(min_size=4, max_size=4).map(lambda b: ".".join(map(str, b)))
ip6_addr = st.binary(min_size=16, max_size=16).map(lambda b: str(__import__("ipaddress").IPv6Address(b)))
options = st.lists(st.sampled_from([b"\x01", b"\x07\x07\x04" + bytes(4), b"\x44\x08\x05\x00" + bytes(4)]),
                   max_size=4).map(lambda xs: b"".join(xs))


def ref_sum(data: bytes, acc: int = 0) -> int:
    """RFC 1071, word by word, end-around carry."""
    if len(data) % 2:
        data += b"\x00"
    for (w,) in struct.iter_unpack("!H", data):
        acc += w
        acc = (acc & 0xFFFF) + (acc >> 16)
    return acc


@st.composite
def ip4_headers(draw, ttl=st.integers(0, 255), proto=st.integers(0, 255)):
    """Random IPv4 headers (with options) as scapy objects carrying a correct checksum."""
    opts = draw(options)
    opts += b"\x00" * (-len(opts) % 4)
    ip = IP(tos=draw(st.integers(0, 255)), id=draw(st.integers(0, 65535)), flags=draw(st.integers(0, 7)),
            frag=draw(st.integers(0, 8191)), ttl=draw(ttl), proto=draw(proto),
            src=draw(ip4_addr), dst=draw(ip4_addr), options=opts)
    return IP(bytes(ip))


@given(st.binary(max_size=300), st.integers(0, 0x1FFFE))
def test_csum_add_equals_rfc1071_reference_for_any_length_and_start(data, acc):
    # equal as one's-complement numbers (0 and 0xFFFF are both zero)
    assert packet.csum_fold(packet.csum_add(data, acc)) % 0xFFFF == ref_sum(data, acc) % 0xFFFF


@given(ip4_headers())
def test_ip4_header_checksum_equals_scapys(ip):
    hdr = bytes(ip)[:ip.ihl * 4]
    zeroed = hdr[:10] + b"\x00\x00" + hdr[12:]
    assert packet.ip4_header_checksum(zeroed) == ip.chksum
    assert packet.ip4_header_checksum(hdr) == 0
    broken = hdr[:8] + bytes([hdr[8] ^ 0x01]) + hdr[9:]
    assert packet.ip4_header_checksum(broken) != 0


UPPER = {1: ICMP, 6: TCP, 17: UDP, 47: lambda: Raw(b"\0" * 4)}


@given(ip4_headers(proto=st.sampled_from(sorted(UPPER))), st.booleans())
def test_ttl_decrement_incremental_checksum_equals_full_recomputation(ip, vlan):
    ip.frag %= 4096                    # keep offset + length under 65535 (else: bad_fragment)
    del ip.chksum, ip.len
    frame = bytes(l2(100 if vlan else None) / ip / UPPER[ip.proto]())
    ip = Ether(frame)[IP]
    b = packet.Burst([frame])
    b.parse(verify_ip4_csum=True)
    rc = b.ttl_decrement()[0]
    out = Ether(b.frame(0))[IP]
    if ip.ttl <= 1:
        assert rc == -1 and b.frame(0) == frame
        return
    assert rc == 0 and out.ttl == ip.ttl - 1 and b.records()[0]["ttl"] == ip.ttl - 1
    full = out.copy()
    del full.chksum
    assert out.chksum == IP(bytes(full)).chksum
    assert packet.parse([b.frame(0)])[0]["drop"] == "none"     # and it verifies


@given(st.integers(0, 255))
def test_hop_limit_decrement_leaves_the_rest_of_the_ipv6_frame_alone(hlim):
    frame = bytes(l2(None) / IPv6(hlim=hlim) / UDP(sport=5, dport=6) / Raw(b"abc"))
    b = packet.Burst([frame])
    b.parse()
    rc = b.ttl_decrement()[0]
    if hlim <= 1:
        assert rc == -1 and b.frame(0) == frame
    else:
        assert rc == 0 and b.frame(0) == frame[:21] + bytes([hlim - 1]) + frame[22:]


def test_ttl_decrement_refuses_dropped_and_non_ip_frames():
    b = packet.Burst([b"\x00" * 10, bytes(Ether(type=0x88cc) / Raw(b"x" * 40))])
    b.parse()
    assert list(b.ttl_decrement()) == [-1, -1]


@given(ip4_headers(), st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4))
def test_rfc1624_address_rewrite_equals_full_recomputation(ip, new_src, new_dst):
    hdr = bytearray(bytes(ip)[:ip.ihl * 4])
    csum = ip.chksum
    csum = packet.csum_update(csum, hdr[12:16], new_src)
    csum = packet.csum_update(csum, hdr[16:20], new_dst)
    hdr[12:16], hdr[16:20] = new_src, new_dst
    hdr[10:12] = b"\x00\x00"
    assert csum == packet.ip4_header_checksum(bytes(hdr))


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(min_size=18, max_size=18))
def test_rfc1624_word_update_keeps_the_sum_verifying(old, new, other, rest):
    data = struct.pack("!H", old) + rest
    csum = packet.csum_fold(ref_sum(data)) ^ 0xFFFF
    upd = packet.csum_update16(csum, old, new)
    # the updated checksum verifies the updated data (0 and 0xFFFF are the same one's-complement zero)
    total = packet.csum_fold(ref_sum(struct.pack("!H", new) + rest + struct.pack("!H", upd)))
    assert total % 0xFFFF == 0


@st.composite
def l4_frames(draw):
    fam = draw(st.sampled_from([4, 6]))
    kind = draw(st.sampled_from(["tcp", "udp", "icmp"]))
    payload = draw(st.binary(max_size=101))
    sport, dport = draw(st.integers(0, 65535)), draw(st.integers(0, 65535))
    if kind == "tcp":
        upper = TCP(sport=sport, dport=dport, flags=draw(st.integers(0, 255)), seq=draw(st.integers(0, 2**32 - 1))) / Raw(payload)
    elif kind == "udp":
        upper = UDP(sport=sport, dport=dport) / Raw(payload)
    else:
        upper = (ICMP(id=sport) if fam == 4 else ICMPv6EchoRequest(id=sport)) / Raw(payload)
    if fam == 4:
        ip = IP(src=draw(ip4_addr), dst=draw(ip4_addr))
    else:
        ip = IPv6(src=draw(ip6_addr), dst=draw(ip6_addr))
        if draw(st.booleans()):
            ip = ip / IPv6ExtHdrDestOpt()
    return l2(draw(st.one_of(st.none(), st.just(9)))) / ip / upper


def _l4(pk):
    for cls in (TCP, UDP, ICMP, ICMPv6EchoRequest):
        if cls in pk:
            return pk[cls]


@given(l4_frames())
def test_l4_checksum_of_scapy_frames_verifies_and_fill_writes_scapys_value(pk):
    frame = bytes(pk)
    b = packet.Burst([frame])
    assert b.parse() == 1
    assert b.l4_checksums()[0] == 0                 # scapy's checksum verifies
    off = b.records()[0]["l4_off"] + (16 if TCP in pk else 6 if UDP in pk else 2)
    corrupt = frame[:off] + b"\xde\xad" + frame[off + 2:]
    b2 = packet.Burst([corrupt])
    b2.parse()
    assert b2.l4_checksums()[0] != 0
    assert b2.l4_checksum_fill()[0] == 0
    assert b2.frame(0) == frame                     # the same checksum scapy computed


def test_l4_checksum_fill_refuses_fragments_and_unknown_protocols():
    frames = [bytes(l2(None) / IP(flags="MF") / UDP() / Raw(b"x" * 16)), bytes(l2(None) / IP(proto=47) / Raw(b"g" * 8))]
    b = packet.Burst(frames)
    b.parse()
    assert list(b.l4_checksum_fill()) == [-1, -1]
    assert [b.frame(i) for i in range(2)] == frames


def test_udp_checksum_that_computes_to_zero_is_sent_as_ffff():
    # choose the payload word so that the whole sum is 0xFFFF: the computed checksum is then 0
    base = l2(None) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2, chksum=0) / Raw(b"\x00\x00")
    b = packet.Burst([bytes(base)])
    b.parse()
    need = b.l4_checksums()[0]                      # ~sum with a zero payload word and checksum field
    fixed = bytes(base)[:-2] + struct.pack("!H", need)
    b = packet.Burst([fixed])
    b.parse()
    assert b.l4_checksum_fill()[0] == 0
    assert b.frame(0)[40:42] == b"\xff\xff"
    assert b.l4_checksums()[0] == 0


@given(st.sampled_from([4, 6]), st.data(), st.integers(0, 255), st.integers(0, 2**32 - 1))
def test_pseudo_header_sum_equals_reference(fam, data, proto, length):
    n = 4 if fam == 4 else 16
    src, dst = data.draw(st.binary(min_size=n, max_size=n)), data.draw(st.binary(min_size=n, max_size=n))
    if fam == 4:
        length &= 0xFFFF
        ref = ref_sum(src + dst + struct.pack("!BBH", 0, proto, length))
    else:
        ref = ref_sum(src + dst + struct.pack("!IxxxB", length, proto))
    assert packet.csum_fold(packet.pseudo_header_sum(fam, src, dst, proto, length)) == packet.csum_fold(ref)
