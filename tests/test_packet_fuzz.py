"""Fuzz: random bytes, truncations at every length, mutated headers and long IPv6 extension chains.

Every frame is parsed from its own buffer of exactly its length (packet.parse_exact, the frame at
the end of a malloc'd block, no headroom): under the sanitizer build (VROUTER_SANITIZE=1, libasan
preloaded) any read before or past a frame is an ASan error, so these tests prove the bounds there.
Everywhere they prove: no crash, one outcome per frame (parsed, or exactly one declared reason),
metadata consistent with the frame, and the result independent of where the frame sits in memory.
"""
import struct

import numpy as np
from hypothesis import given, settings, strategies as st

from pkt_frames import IP4_OPTIONS, IP6_EXT, L4S, IPv6, IPv6ExtHdrDestOpt, Raw, UDP, build, l2
from vrouter import packet

# Fuzz gets 20x the active profile's example count (the profile still scales it: sanitize, thorough).
FUZZ = settings(max_examples=settings().max_examples * 20)
F = packet.FLAGS
NREASONS = len(packet.DROP_REASONS)
L4_MIN = {6: 20, 17: 8, 1: 8, 58: 8}

VALID = [build(fam, kind, vlan, opts)
         for fam in (4, 6) for kind in L4S for vlan in (None, 7)
         for opts in (IP4_OPTIONS if fam == 4 else IP6_EXT)]


def check_outcomes(frames, descs):
    """One outcome per frame and metadata that stays inside the frame."""
    for f, d in zip(frames, descs):
        drop, flags = int(d["drop"]), int(d["flags"])
        assert 0 <= drop < NREASONS
        assert d["data_len"] == len(f)
        if drop:
            continue
        kinds = [flags & F[k] != 0 for k in ("ip4", "ip6", "arp", "other")]
        assert sum(kinds) == 1, (f.hex(), flags)
        assert d["l3_off"] == (18 if flags & F["vlan"] else 14)
        if flags & (F["ip4"] | F["ip6"]):
            assert d["l3_off"] < d["l4_off"] <= len(f)
        if flags & F["l4"]:
            assert d["proto"] in L4_MIN and d["l4_off"] + L4_MIN[d["proto"]] <= len(f)
        else:
            assert d["sport"] == 0 and d["tcp_flags"] == 0


_META = [n for n in packet.PKT_DTYPE.names if n not in ("buf", "buf_size", "data_off")]


def parse_both(frames):
    """parse_exact (tight buffers) and a Burst (shared store, headroom) must agree field by field."""
    exact = packet.parse_exact(frames)
    check_outcomes(frames, exact)
    b = packet.Burst(frames)
    b.parse()
    for name in _META:
        assert np.array_equal(exact[name], b.descs[name]), name
    return exact


ethertypes = st.sampled_from([0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8, 0x88CC, 0x0026])


@FUZZ
@given(st.lists(st.binary(max_size=160), min_size=1, max_size=32))
def test_random_bytes_never_crash_and_end_parsed_or_with_one_reason(frames):
    parse_both(frames)


@FUZZ
@given(st.lists(st.tuples(ethertypes, st.binary(max_size=120)), min_size=1, max_size=32))
def test_random_payloads_behind_real_ethertypes_end_parsed_or_with_one_reason(items):
    frames = [bytes(12) + struct.pack("!H", et) + body for et, body in items]
    parse_both(frames)


def test_every_truncation_of_every_valid_frame_is_dropped_within_bounds():
    for f in VALID:
        cuts = [f[:n] for n in range(len(f))]
        descs = parse_both(cuts)
        # the IP length fields claim the whole frame: no strict prefix may parse
        assert (descs["drop"] != 0).all(), f.hex()


def cut_consistently(frame: bytes, n: int) -> bytes:
    """frame[:n] with the IP length field (and IPv4 checksum) rewritten to match: the cut then
    falls past the L3 length checks, inside an extension header, an L4 header or the payload."""
    f = bytearray(frame[:n])
    l3 = 18 if frame[12:14] == b"\x81\x00" else 14
    if frame[l3 - 2:l3] == b"\x08\x00" and n >= l3 + 20:
        f[l3 + 2:l3 + 4] = struct.pack("!H", n - l3)
        f[l3 + 10:l3 + 12] = b"\0\0"
        ihl = (f[l3] & 15) * 4
        if n >= l3 + ihl:
            f[l3 + 10:l3 + 12] = struct.pack("!H", packet.ip4_header_checksum(bytes(f[l3:l3 + ihl])))
    elif frame[l3 - 2:l3] == b"\x86\xdd" and n >= l3 + 40:
        f[l3 + 4:l3 + 6] = struct.pack("!H", n - l3 - 40)
    return bytes(f)


def test_every_length_consistent_truncation_is_parsed_or_dropped_within_bounds():
    """The cut that the IP length agrees with: only the L4/extension-header checks stand between
    the parser and the end of the buffer (under ASan, an over-read here is caught)."""
    reached = set()
    for f in VALID:
        cuts = [cut_consistently(f, n) for n in range(len(f))]
        descs = parse_both(cuts)
        reached |= {packet.DROP_REASONS[r] for r in descs["drop"]}
    assert {"l4_truncated", "ipv6_ext_chain", "truncated", "bad_ihl", "none"} <= reached, reached


def test_valid_frames_parse_in_tight_buffers():
    descs = parse_both(VALID)
    assert (descs["drop"] == 0).all()


@FUZZ
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_valid_frames_end_parsed_or_with_one_reason(frame, edits):
    f = bytearray(frame)
    for pos, val in edits:
        f[pos % len(f)] = val
    parse_both([bytes(f)])


@FUZZ
@given(st.sampled_from([f for f in VALID if f[12:14] == b"\x08\x00"]), st.integers(0, 15), st.integers(0, 65535))
def test_ipv4_any_ihl_and_total_length(frame, ihl, total):
    f = bytearray(frame)
    f[14] = 0x40 | ihl
    f[16:18] = struct.pack("!H", total)
    d = parse_both([bytes(f)])[0]
    if ihl < 5:
        assert packet.DROP_REASONS[d["drop"]] == "bad_ihl"
    elif ihl * 4 <= len(f) - 14 and not ihl * 4 <= total <= len(f) - 14:
        assert packet.DROP_REASONS[d["drop"]] == "bad_ip_length"


@FUZZ
@given(st.sampled_from([f for f in VALID if f[12:14] == b"\x86\xdd"]), st.integers(0, 65535))
def test_ipv6_any_payload_length(frame, plen):
    f = bytearray(frame)
    f[18:20] = struct.pack("!H", plen)
    d = parse_both([bytes(f)])[0]
    if 40 + plen > len(f) - 14:
        assert packet.DROP_REASONS[d["drop"]] == "bad_ip_length"


ext_header = st.tuples(st.sampled_from([0, 43, 60, 44, 6, 17, 58, 59, 50, 0xFF]), st.integers(0, 255),
                       st.binary(min_size=6, max_size=6))


def ref_ext_walk(nh, body):
    """Python model of RFC 8200's chain walk with our bounds: (reason or None, next header, offset)."""
    off = 0
    for i in range(packet.IP6_MAX_EXT + 1):
        if nh not in (0, 43, 60, 44):
            return None, nh, off
        if i == packet.IP6_MAX_EXT or len(body) - off < 8 or (nh == 0 and i):
            return "ipv6_ext_chain", None, None
        if nh == 44:
            foff, more = struct.unpack_from("!H", body, off + 2)[0] & 0xFFF8, body[off + 3] & 1
            nh, off = body[off], off + 8
            if (foff or more) and foff + len(body) - off > 65535:
                return "bad_fragment", None, None
            if foff:
                return "none", nh, off
        else:
            hlen = (body[off + 1] + 1) * 8
            if hlen > len(body) - off:
                return "ipv6_ext_chain", None, None
            nh, off = body[off], off + hlen
    raise AssertionError("unreachable")


@FUZZ
@given(st.sampled_from([0, 43, 60, 44]), st.lists(ext_header, min_size=1, max_size=12), st.binary(max_size=64),
       st.booleans())
def test_long_and_hostile_ipv6_extension_chains_match_the_model(first, headers, tail, honest_lengths):
    """Chains of up to 12 headers whose next-header fields point anywhere (back to hop-by-hop, to
    fragments, to themselves) and whose lengths may run past the payload."""
    body = b""
    for nh, hlen, rest in headers:
        if honest_lengths:
            hlen = min(hlen, 3)
            rest = rest + bytes(hlen * 8)
        body += bytes([nh, hlen]) + rest
    body += tail
    frame = bytes(l2(None) / IPv6(nh=first, plen=len(body)) / Raw(body))
    d = parse_both([frame])[0]
    reason = packet.DROP_REASONS[d["drop"]]
    want, nh, off = ref_ext_walk(first, body)
    if want is not None and want != "none":
        assert reason == want
        return
    assert (d["proto"], d["l4_off"]) == (nh, 14 + 40 + off)
    if want == "none":                                  # a later fragment: no L4
        assert reason == "none" and not d["flags"] & F["l4"]
    else:
        assert reason in ("none", "l4_truncated", "bad_tcp_offset", "bad_udp_length")


def test_extension_chain_at_the_limit_parses_and_one_more_is_refused():
    def chain(n):
        p = IPv6()
        for _ in range(n):
            p = p / IPv6ExtHdrDestOpt()
        return bytes(l2(None) / p / UDP(sport=9, dport=10))
    ok, too_long = packet.records(packet.parse_exact([chain(packet.IP6_MAX_EXT), chain(packet.IP6_MAX_EXT + 1)]))
    assert ok["drop"] == "none" and ok["sport"] == 9 and ok["l4_off"] == 14 + 40 + 8 * packet.IP6_MAX_EXT
    assert too_long["drop"] == "ipv6_ext_chain"
