"""Packet descriptors, parser and checksums (ext/packet.{h,c}) for tests and tools.

The datapath hands descriptors from its I/O back-ends to ``pkt_parse_burst``
in C; this facade builds the same descriptors over ``bytes`` frames (each
copied into a backing store with headroom), parses them with one C call per
burst (GIL released) and turns the metadata into a numpy structured array or
dicts. Checksum helpers wrap the C ones so that tests compare them with scapy.
"""
from __future__ import annotations

import ipaddress

import numpy as np

from vrouter import _ext

PKT_DTYPE = np.dtype([
    ("buf", "<u8"), ("buf_size", "<u2"), ("data_off", "<u2"), ("data_len", "<u2"), ("vif", "<u2"),
    ("src", "u1", 16), ("dst", "u1", 16), ("sport", "<u2"), ("dport", "<u2"),
    ("ethertype", "<u2"), ("vlan_tci", "<u2"), ("l4_off", "<u2"), ("l3_off", "u1"),
    ("flags", "u1"), ("proto", "u1"), ("ttl", "u1"), ("tcp_flags", "u1"), ("drop", "u1")])
assert PKT_DTYPE.itemsize == _ext.pkt_struct_size(), (PKT_DTYPE.itemsize, _ext.pkt_struct_size())

_C = _ext.pkt_constants()
HEADROOM: int = _C["headroom"]
BURST_MAX: int = _C["burst_max"]
IP6_MAX_EXT: int = _C["ip6_max_ext"]
FLAGS: dict[str, int] = _C["flags"]
DROP_REASONS: list[str] = _ext.pkt_drop_names()      # the parser's, from ext/drop.def; index = C enum
_VERIFY = _C["verify_ip4_csum"]
MAX_BUFFER = 65535


def _aligned_descs(n: int) -> np.ndarray:
    """n zeroed descriptors on a 64-byte boundary (the C struct is cache-line aligned)."""
    raw = np.zeros(n * PKT_DTYPE.itemsize + 64, np.uint8)
    off = (-raw.ctypes.data) % 64
    return raw[off:off + n * PKT_DTYPE.itemsize].view(PKT_DTYPE)


def _addr(raw: np.ndarray, v4: bool) -> str:
    b = bytes(raw)
    return str(ipaddress.IPv4Address(b[12:])) if v4 else str(ipaddress.IPv6Address(b))


def _record(d: np.void) -> dict:
    flags = int(d["flags"])
    names = {name for name, bit in FLAGS.items() if flags & bit}
    v4 = bool(flags & (FLAGS["ip4"] | FLAGS["arp"]))
    has_addr = v4 or bool(flags & FLAGS["ip6"])
    return {
        "drop": DROP_REASONS[int(d["drop"])], "flags": names,
        "ethertype": int(d["ethertype"]), "vlan": int(d["vlan_tci"]) & 0xFFF if "vlan" in names else None,
        "vlan_tci": int(d["vlan_tci"]), "l3_off": int(d["l3_off"]), "l4_off": int(d["l4_off"]),
        "src": _addr(d["src"], v4) if has_addr else None, "dst": _addr(d["dst"], v4) if has_addr else None,
        "src_raw": bytes(d["src"]), "dst_raw": bytes(d["dst"]),
        "proto": int(d["proto"]), "ttl": int(d["ttl"]), "sport": int(d["sport"]),
        "dport": int(d["dport"]), "tcp_flags": int(d["tcp_flags"]), "vif": int(d["vif"]),
    }


class Burst:
    """Frames copied into one backing store (headroom before each) with their descriptors."""

    def __init__(self, frames: list[bytes], headroom: int = HEADROOM, vif=0, tailroom: int = 0):
        """vif: one id for every frame, or a sequence of one per frame. tailroom: bytes free after
        the longest frame (the pipeline's answers may grow a frame)."""
        n = len(frames)
        longest = max((len(f) for f in frames), default=0)
        self.stride = -(-(headroom + longest + tailroom) // 64) * 64 or 64
        if self.stride > MAX_BUFFER:
            raise ValueError(f"frame of {longest} bytes + headroom {headroom}: longer than a descriptor holds")
        self.headroom = headroom
        self.store = np.zeros(n * self.stride, np.uint8)
        self.descs = _aligned_descs(n)
        base = self.store.ctypes.data
        for i, f in enumerate(frames):
            at = i * self.stride + headroom
            self.store[at:at + len(f)] = np.frombuffer(bytes(f), np.uint8)
        self.descs["buf"] = base + np.arange(n, dtype=np.uint64) * self.stride
        self.descs["buf_size"] = self.stride
        self.descs["data_off"] = headroom
        self.descs["data_len"] = [len(f) for f in frames]
        self.descs["vif"] = vif

    def __len__(self) -> int:
        return len(self.descs)

    def parse(self, verify_ip4_csum: bool = True, burst: int = 64, repeat: int = 1) -> int:
        """Parse every frame in place, ``burst`` descriptors per C call (one Python call, GIL
        released); returns how many parsed without a drop reason. ``repeat``: benchmarks only."""
        return _ext.pkt_parse(self.descs, _VERIFY if verify_ip4_csum else 0, burst, repeat)

    def frame(self, i: int) -> bytes:
        d = self.descs[i]
        at = i * self.stride + int(d["data_off"])
        return self.store[at:at + int(d["data_len"])].tobytes()

    def records(self) -> list[dict]:
        return [_record(d) for d in self.descs]

    def l4_checksums(self) -> np.ndarray:
        """L4 checksum of each parsed, unfragmented packet with an L4 header (0 = correct);
        entries of the other packets stay 0xFFFF (not computed)."""
        out = np.full(len(self), 0xFFFF, np.uint16)
        _ext.pkt_l4_csum(self.descs, out)
        return out

    def l4_checksum_fill(self) -> np.ndarray:
        rc = np.zeros(len(self), np.int32)
        _ext.pkt_l4_csum_fill(self.descs, rc)
        return rc

    def ttl_decrement(self) -> np.ndarray:
        """TTL/hop limit - 1 on every parsed IP packet (IPv4 checksum updated incrementally);
        rc[i] = 0, or -1 where the frame was left alone (TTL <= 1, not IP, dropped)."""
        rc = np.zeros(len(self), np.int32)
        _ext.pkt_ttl_decrement(self.descs, rc)
        return rc


def parse(frames: list[bytes], verify_ip4_csum: bool = True, headroom: int = HEADROOM) -> list[dict]:
    """Parse frames; one dict of metadata per frame (``drop`` == "none" when it parsed)."""
    b = Burst(frames, headroom)
    b.parse(verify_ip4_csum)
    return b.records()


def parse_exact(frames: list[bytes], verify_ip4_csum: bool = True, headroom: int = 0) -> np.ndarray:
    """Parse each frame from its own buffer of exactly headroom + len bytes, the frame at its end:
    under AddressSanitizer any read outside a frame lands in a redzone. Returns the descriptors
    (buffer pointers cleared: the buffers are gone)."""
    descs = _aligned_descs(len(frames))
    _ext.pkt_parse_exact([bytes(f) for f in frames], descs, headroom, _VERIFY if verify_ip4_csum else 0)
    return descs


def records(descs: np.ndarray) -> list[dict]:
    return [_record(d) for d in descs]


# ---- checksums

def csum_add(data: bytes, acc: int = 0) -> int:
    """One's-complement sum of the big-endian 16-bit words of data, added to acc (unfolded)."""
    return _ext.pkt_csum_add(bytes(data), acc)


def csum_fold(acc: int) -> int:
    return _ext.pkt_csum_fold(acc)


def ip4_header_checksum(hdr: bytes) -> int:
    """Over the header as given: 0 if its checksum is right; the value to store if the field is 0."""
    return _ext.pkt_ip4_csum(bytes(hdr))


def csum_update16(csum: int, old: int, new: int) -> int:
    """RFC 1624 incremental update for one 16-bit word old -> new."""
    return _ext.pkt_csum_update16(csum, old, new)


def csum_update(csum: int, old: bytes, new: bytes) -> int:
    """RFC 1624 incremental update for a rewritten field (an address, ports)."""
    return _ext.pkt_csum_update(csum, bytes(old), bytes(new))


def pseudo_header_sum(family: int, src: bytes, dst: bytes, proto: int, l4_len: int) -> int:
    return _ext.pkt_pseudo_sum(family, bytes(src), bytes(dst), proto, l4_len)


def drop_name(reason: int) -> str:
    return DROP_REASONS[reason] if 0 <= reason < len(DROP_REASONS) else "unknown"
