"""Pure-Python reference model of vrouter.lpm, and helpers shared by the LPM tests and perf/bench_lpm.py.

The model shares no code with the C tables: a dict per VRF mapping (network int, prefix length) -> next hop,
longest-prefix match by probing the lengths present in that VRF, longest first. It mirrors the public API of
``vrouter.lpm.Lpm4`` / ``Lpm6`` (argument checks included) so one test body can run against either.
``linear_lookup`` is a second, even plainer oracle (scan every route) used to check the model itself.
"""
from __future__ import annotations

import gzip
import ipaddress
import socket
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np

NO_ROUTE = 0xFFFFFFFF
MAX_NH = 0xFFFFFFFE
MAX_VRF = 65535
SPEC_IMPLS = ("auto", "scalar", "batch")  # the lookup_batch variants the API promises
BATCH_IMPLS = SPEC_IMPLS                  # conftest.py widens this to every variant vrouter.lpm offers
VRFS = (0, 1, 2, 4095, MAX_VRF)    # the VRFs the hypothesis strategies use


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def host_mask(bits: int, plen: int) -> int:
    return (1 << (bits - plen)) - 1


def net_mask(bits: int, plen: int) -> int:
    return ((1 << bits) - 1) ^ host_mask(bits, plen)


class RefLpm:
    """Reference LPM table for one address family (subclasses fix ``bits``)."""

    bits = 0
    version = 0
    network_cls: type = ipaddress.IPv4Network
    address_cls: type = ipaddress.IPv4Address

    def __init__(self, domain=None):
        self._routes: dict[int, dict[tuple[int, int], int]] = {}
        self._lens: dict[int, Counter] = {}
        self.generation = 0

    # ---- argument clean-up: one function per kind of argument ----
    def _vrf(self, vrf) -> int:
        if not _is_int(vrf):
            raise TypeError(f"vrf must be an int, not {type(vrf).__name__}")
        if not 0 <= vrf <= MAX_VRF:
            raise ValueError(f"vrf {vrf} out of range 0..{MAX_VRF}")
        return int(vrf)

    def _nh(self, nh) -> int:
        if not _is_int(nh):
            raise TypeError(f"next hop must be an int, not {type(nh).__name__}")
        if not 0 <= nh <= MAX_NH:
            raise ValueError(f"next hop {nh} out of range 0..{MAX_NH:#x}")
        return int(nh)

    def _checked(self, addr: int, plen: int) -> tuple[int, int]:
        if not 0 <= plen <= self.bits:
            raise ValueError(f"prefix length {plen} out of range 0..{self.bits}")
        if not 0 <= addr < (1 << self.bits):
            raise ValueError(f"address {addr:#x} out of range for IPv{self.version}")
        if addr & host_mask(self.bits, plen):
            raise ValueError(f"host bits set in {addr:#x}/{plen}")
        return int(addr), int(plen)

    def _prefix(self, prefix) -> tuple[int, int]:
        if isinstance(prefix, str):
            try:
                net = ipaddress.ip_network(prefix, strict=True)
            except ValueError as e:
                raise ValueError(f"bad prefix {prefix!r}: {e}") from None
            prefix = net
        if isinstance(prefix, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            if prefix.version != self.version:
                raise ValueError(f"IPv{prefix.version} prefix given to an IPv{self.version} table")
            return int(prefix.network_address), prefix.prefixlen
        if isinstance(prefix, tuple):
            if len(prefix) != 2 or not all(_is_int(x) for x in prefix):
                raise TypeError("prefix tuple must be (int address, int prefixlen)")
            return self._checked(prefix[0], prefix[1])
        raise TypeError(f"prefix must be str, ip_network or (int, int), not {type(prefix).__name__}")

    def _addr(self, addr) -> int:
        if isinstance(addr, str):
            try:
                addr = ipaddress.ip_address(addr)
            except ValueError as e:
                raise ValueError(f"bad address {addr!r}: {e}") from None
        if isinstance(addr, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            if addr.version != self.version:
                raise ValueError(f"IPv{addr.version} address given to an IPv{self.version} table")
            return int(addr)
        if _is_int(addr):
            if not 0 <= addr < (1 << self.bits):
                raise ValueError(f"address {addr} out of range for IPv{self.version}")
            return int(addr)
        raise TypeError(f"address must be str, int or ip_address, not {type(addr).__name__}")

    def _keys(self, keys) -> list[int]:
        raise NotImplementedError

    # ---- single-route API ----
    def insert(self, vrf, prefix, nh) -> bool:
        vrf, key, nh = self._vrf(vrf), self._prefix(prefix), self._nh(nh)
        return self._insert(vrf, key, nh)

    def _insert(self, vrf: int, key: tuple[int, int], nh: int) -> bool:
        routes = self._routes.setdefault(vrf, {})
        old = routes.get(key)
        if old is None:
            self._lens.setdefault(vrf, Counter())[key[1]] += 1
            self.generation += 1
        elif old != nh:
            self.generation += 1
        routes[key] = nh
        return old is None

    def delete(self, vrf, prefix) -> bool:
        vrf, key = self._vrf(vrf), self._prefix(prefix)
        return self._delete(vrf, key)

    def _delete(self, vrf: int, key: tuple[int, int]) -> bool:
        routes = self._routes.get(vrf)
        if not routes or key not in routes:
            return False
        del routes[key]
        lens = self._lens[vrf]
        lens[key[1]] -= 1
        if not lens[key[1]]:
            del lens[key[1]]
        if not routes:
            del self._routes[vrf], self._lens[vrf]
        self.generation += 1
        return True

    def get(self, vrf, prefix):
        vrf, key = self._vrf(vrf), self._prefix(prefix)
        return self._routes.get(vrf, {}).get(key)

    def lookup(self, vrf, addr) -> int:
        return self._lookup(self._vrf(vrf), self._addr(addr))

    def _lookup(self, vrf: int, addr: int) -> int:
        routes = self._routes.get(vrf)
        if not routes:
            return NO_ROUTE
        for plen in sorted(self._lens[vrf], reverse=True):
            nh = routes.get((addr & net_mask(self.bits, plen), plen))
            if nh is not None:
                return nh
        return NO_ROUTE

    # ---- batch API ----
    def lookup_batch(self, vrf, keys, impl="auto"):
        vrf = self._vrf(vrf)
        if impl not in BATCH_IMPLS:
            raise ValueError(f"impl must be one of {BATCH_IMPLS}, not {impl!r}")
        ints = self._keys(keys)
        return np.array([self._lookup(vrf, a) for a in ints], dtype=np.uint32)

    def _entries(self, addrs, lens):
        ints = self._keys(addrs)
        if not isinstance(lens, np.ndarray) or lens.dtype != np.uint8:
            raise TypeError("lens must be a numpy uint8 array")
        if lens.ndim != 1 or len(lens) != len(ints):
            raise ValueError("lens must be 1-D and as long as addrs")
        out = []
        for i, (a, plen) in enumerate(zip(ints, lens.tolist())):
            try:
                out.append(self._checked(a, plen))
            except ValueError as e:
                raise ValueError(f"entry {i}: {e}") from None
        return out

    def insert_batch(self, vrf, addrs, lens, nhs):
        vrf = self._vrf(vrf)
        keys = self._entries(addrs, lens)
        if not isinstance(nhs, np.ndarray) or nhs.dtype != np.uint32:
            raise TypeError("nhs must be a numpy uint32 array")
        if nhs.ndim != 1 or len(nhs) != len(keys):
            raise ValueError("nhs must be 1-D and as long as addrs")
        nh_list = nhs.tolist()
        for i, nh in enumerate(nh_list):
            if nh > MAX_NH:
                raise ValueError(f"entry {i}: next hop {nh:#x} out of range")
        gen = self.generation
        added = sum(self._insert(vrf, k, nh) for k, nh in zip(keys, nh_list))
        # One batch is one change, whatever its size.
        self.generation = gen + (self.generation != gen)
        return added

    def delete_batch(self, vrf, addrs, lens) -> int:
        vrf = self._vrf(vrf)
        keys = self._entries(addrs, lens)
        gen = self.generation
        removed = sum(self._delete(vrf, k) for k in keys)
        self.generation = gen + (self.generation != gen)
        return removed

    # ---- inspection ----
    def routes(self, vrf):
        vrf = self._vrf(vrf)
        return [(self.network_cls((a, plen)), nh)
                for (a, plen), nh in sorted(self._routes.get(vrf, {}).items())]

    def route_dict(self, vrf) -> dict[tuple[int, int], int]:
        """Model-only: a copy of VRF's routes keyed by (network int, prefix length)."""
        return dict(self._routes.get(vrf, {}))

    def count(self, vrf=None) -> int:
        if vrf is None:
            return sum(len(r) for r in self._routes.values())
        return len(self._routes.get(self._vrf(vrf), {}))

    def __len__(self) -> int:
        return self.count()

    def vrfs(self) -> list[int]:
        return sorted(self._routes)

    def bytes_used(self) -> int:
        return 64 * self.count()


class RefLpm4(RefLpm):
    bits = 32
    version = 4
    network_cls = ipaddress.IPv4Network
    address_cls = ipaddress.IPv4Address

    def _keys(self, keys) -> list[int]:
        if not isinstance(keys, np.ndarray) or keys.dtype != np.uint32:
            raise TypeError("IPv4 keys must be a numpy uint32 array")
        if keys.ndim != 1:
            raise ValueError("IPv4 keys must be 1-D")
        return keys.tolist()


class RefLpm6(RefLpm):
    bits = 128
    version = 6
    network_cls = ipaddress.IPv6Network
    address_cls = ipaddress.IPv6Address

    def _keys(self, keys) -> list[int]:
        if not isinstance(keys, np.ndarray) or keys.dtype != np.uint8:
            raise TypeError("IPv6 keys must be a numpy uint8 array")
        if keys.ndim != 2 or keys.shape[1] != 16:
            raise ValueError("IPv6 keys must have shape (N, 16)")
        return v6_bytes_to_ints(keys)


REF_CLASSES = {4: RefLpm4, 6: RefLpm6}
BITS = {4: 32, 6: 128}


# ---- oracles and key helpers ----
def linear_lookup(routes: dict[tuple[int, int], int], addr: int, bits: int) -> int:
    """The plainest LPM there is: scan every route, keep the longest that covers addr."""
    best_len, best_nh = -1, NO_ROUTE
    for (net, plen), nh in routes.items():
        if plen > best_len and (addr & net_mask(bits, plen)) == net:
            best_len, best_nh = plen, nh
    return best_nh


def v6_bytes_to_ints(keys: np.ndarray) -> list[int]:
    raw = np.ascontiguousarray(keys).tobytes()
    return [int.from_bytes(raw[i:i + 16], "big") for i in range(0, len(raw), 16)]


def v6_ints_to_bytes(ints) -> np.ndarray:
    raw = b"".join(int(a).to_bytes(16, "big") for a in ints)
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, 16).copy()


def keys_array(family: int, ints) -> np.ndarray:
    """Addresses as ints -> the key array lookup_batch takes for that family."""
    if family == 4:
        return np.array(list(ints), dtype=np.uint32)
    return v6_ints_to_bytes(ints)


def addrs_array(family: int, ints) -> np.ndarray:
    return keys_array(family, ints)


def edge_keys(prefixes, bits: int) -> set[int]:
    """First and last address of each prefix, and one either side of each (wrapping)."""
    top = (1 << bits) - 1
    out = set()
    for net, plen in prefixes:
        last = net | host_mask(bits, plen)
        out.update({net, last, (net - 1) & top, (last + 1) & top})
    return out


def random_inprefix_v4(rng: np.random.Generator, addrs: np.ndarray, lens: np.ndarray, n: int) -> np.ndarray:
    """n keys, each a random address under a randomly chosen prefix of the table."""
    idx = rng.integers(0, len(addrs), n)
    hostbits = (np.uint64(1) << (32 - lens[idx].astype(np.uint64))) - np.uint64(1)
    rnd = rng.integers(0, 1 << 32, n, dtype=np.uint64)
    return (addrs[idx].astype(np.uint64) | (rnd & hostbits)).astype(np.uint32)


def random_inprefix_v6(rng: np.random.Generator, addrs: np.ndarray, lens: np.ndarray, n: int) -> np.ndarray:
    """IPv6 version of random_inprefix_v4 on (N, 16) network-order byte keys."""
    idx = rng.integers(0, len(addrs), n)
    base = addrs[idx]
    plen = lens[idx].astype(np.int64)[:, None]
    bitpos = np.arange(16, dtype=np.int64)[None, :] * 8          # first bit of each byte
    # Bits of byte b that lie beyond the prefix: keep = number of prefix bits inside that byte.
    keep = np.clip(plen - bitpos, 0, 8)
    hostmask = (np.right_shift(0xFF, keep)).astype(np.uint8)
    rnd = rng.integers(0, 256, base.shape, dtype=np.uint8)
    return base | (rnd & hostmask)


# ---- the real routing table ----
@dataclass
class FullTable:
    v4_addrs: np.ndarray   # uint32, host order
    v4_lens: np.ndarray    # uint8
    v6_addrs: np.ndarray   # (N, 16) uint8, network order
    v6_lens: np.ndarray    # uint8
    v4_text: list          # the CIDR strings, same order (for independent checkers)
    v6_text: list

    def v4_nhs(self) -> np.ndarray:
        return (np.arange(len(self.v4_addrs), dtype=np.uint32) % 65536).astype(np.uint32)

    def v6_nhs(self) -> np.ndarray:
        # Next hop = line index mod 65536, and the IPv6 lines follow the IPv4 ones in the file.
        start = len(self.v4_addrs)
        return ((np.arange(len(self.v6_addrs), dtype=np.int64) + start) % 65536).astype(np.uint32)


def load_full_table(path) -> FullTable:
    """Parse the gzip'd one-CIDR-per-line table without building ipaddress objects (~0.5 s)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    colon = data.find(b":")
    split = len(data) if colon < 0 else data.rindex(b"\n", 0, colon) + 1
    v4_raw, v6_raw = data[:split], data[split:]
    v4_text = v4_raw.decode().split()
    v6_text = v6_raw.decode().split()
    if any(":" in s for s in v4_text[-3:]) or any(":" not in s for s in v6_text):
        raise ValueError(f"{path}: IPv4 lines are expected to come before all IPv6 lines")

    # IPv4: "a.b.c.d/len" -> 5 integers per line, parsed by numpy in one call.
    flat = v4_raw.translate(bytes.maketrans(b"./", b"  "))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        nums = np.fromstring(flat, dtype=np.int64, sep=" ")  # noqa: NPY201 (text mode is fine)
    if nums.size != 5 * len(v4_text):
        raise ValueError(f"{path}: malformed IPv4 line")
    nums = nums.reshape(-1, 5)
    if nums[:, :4].max(initial=0) > 255 or nums[:, 4].max(initial=0) > 32 or nums.min(initial=0) < 0:
        raise ValueError(f"{path}: IPv4 field out of range")
    v4_addrs = ((nums[:, 0] << 24) | (nums[:, 1] << 16) | (nums[:, 2] << 8) | nums[:, 3]).astype(np.uint32)
    v4_lens = nums[:, 4].astype(np.uint8)

    # IPv6: inet_pton per line is fast enough for 160k lines.
    pton, af = socket.inet_pton, socket.AF_INET6
    parts = [s.split("/") for s in v6_text]
    v6_addrs = np.frombuffer(b"".join([pton(af, p[0]) for p in parts]), dtype=np.uint8).reshape(-1, 16).copy()
    v6_lens = np.array([int(p[1]) for p in parts], dtype=np.uint8)
    return FullTable(v4_addrs, v4_lens, v6_addrs, v6_lens, v4_text, v6_text)


# ---- hypothesis strategies (imported lazily so the benchmark does not need hypothesis) ----
def prefix_forms(family: int, key: tuple[int, int]):
    """The three spellings of one prefix the API accepts: str, ip_network, (int, len)."""
    net = (ipaddress.IPv4Network if family == 4 else ipaddress.IPv6Network)(key)
    return [str(net), net, key]


def address_forms(family: int, addr: int):
    ip = (ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address)(addr)
    return [addr, str(ip), ip]


def strategies():
    """Strategies that make prefixes cluster (nest, share parents, hit /0 and host routes)."""
    from hypothesis import strategies as st

    @st.composite
    def base_prefixes(draw, bits):
        """1-3 base prefixes; every route of one example is a small mutation of one of them."""
        typical = [0, 8, 16, 24] if bits == 32 else [0, 32, 48, 64]
        out = []
        for _ in range(draw(st.integers(1, 3))):
            blen = draw(st.one_of(st.sampled_from(typical), st.integers(0, bits)))
            addr = draw(st.integers(0, (1 << bits) - 1)) & net_mask(bits, blen)
            out.append((addr, blen))
        return out

    @st.composite
    def clustered_prefix(draw, bits, bases):
        addr, blen = draw(st.sampled_from(bases))
        kind = draw(st.integers(0, 9))
        if kind == 0:
            plen = 0                                   # default route
        elif kind == 1:
            plen = bits                                # host route
        else:
            plen = draw(st.integers(max(0, blen - 4), min(bits, blen + (10 if bits == 32 else 24))))
        if plen > blen and draw(st.integers(0, 4)) == 0:
            addr |= net_mask(bits, plen) & host_mask(bits, blen)   # the last subnet under the base
        # Few flipped bits, mostly below the base length, so that most prefixes nest in one another.
        for _ in range(draw(st.integers(0, 2))):
            lo = blen if plen > blen and draw(st.booleans()) else 0
            if plen > lo:
                addr ^= 1 << (bits - 1 - draw(st.integers(lo, plen - 1)))
        return addr & net_mask(bits, plen), plen

    next_hops = st.one_of(st.integers(0, MAX_NH), st.sampled_from([0, 1, MAX_NH]))
    vrfs = st.sampled_from(VRFS)
    return st, base_prefixes, clustered_prefix, next_hops, vrfs
