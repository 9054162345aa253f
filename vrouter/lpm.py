"""Per-VRF IPv4 and IPv6 longest-prefix-match tables (facade over ext/lpm4, ext/lpm6).

Each VRF (0..65535) has its own routes; a route maps a prefix to a 32-bit
next-hop id (0..0xFFFFFFFE). ``NO_ROUTE`` (0xFFFFFFFF) is what a lookup
returns when no route covers the address. Deleting a route makes the covering
less-specific route take over by itself (the table keeps its own RIB).

Input rules, identical for every call:
  - prefixes: ``"10.0.0.0/8"``, an ``ipaddress`` network, or ``(int, len)``;
    host bits set are **rejected** (ValueError), never silently normalised;
  - IPv4 batch keys: 1-D ``numpy.uint32`` host-order integers;
    IPv6 batch keys: ``(N, 16) numpy.uint8`` network-order bytes;
  - anything else raises ValueError/TypeError naming the field, and the
    table is left unchanged; running out of memory raises MemoryError and
    also leaves the table unchanged.

Writers are serialised by the GIL (every writer call holds it); batch lookups
release the GIL and run as RCU readers, so they may run concurrently with a
writer in another thread.
"""
from __future__ import annotations

import ipaddress

import numpy as np

from control import fields as F
from vrouter import _ext

NO_ROUTE = _ext.LPM_NO_ROUTE_VALUE
MAX_NH = _ext.LPM_MAX_NH_VALUE
MAX_VRF = _ext.LPM_MAX_VRF_VALUE
IMPLS = tuple(_ext.LPM_IMPLS)

__all__ = ["Lpm4", "Lpm6", "NO_ROUTE", "MAX_NH", "MAX_VRF", "IMPLS"]


def _int_arg(value, name: str, lo: int, hi: int) -> int:
    return F.integer(name, value, lo, hi)


def _vrf(vrf) -> int:
    return _int_arg(vrf, "vrf", 0, MAX_VRF)


def _nh(nh) -> int:
    return _int_arg(nh, "next hop", 0, MAX_NH)


def _int_array(values, name: str, lo: int, hi: int, dtype) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise TypeError(f"{name} must be a 1-D integer array")
    if arr.size:
        bad = np.nonzero((arr < lo) | (arr > hi))[0]
        if bad.size:
            raise ValueError(f"{name}[{bad[0]}] = {arr[bad[0]]} out of range {lo}..{hi}")
    return np.ascontiguousarray(arr, dtype=dtype)


class _Lpm:
    _bits: int
    _version: int
    _cls: type

    def __init__(self, domain=None):
        self._t = self._cls(domain if domain is not None else _ext.default_domain())

    # -- parsing -----------------------------------------------------------
    def _prefix(self, prefix) -> tuple[int, int]:
        if isinstance(prefix, tuple):
            if len(prefix) != 2:
                raise ValueError(f"prefix tuple must be (address, length), got {prefix!r}")
            addr = _int_arg(prefix[0], "prefix address", 0, (1 << self._bits) - 1)
            length = _int_arg(prefix[1], "prefix length", 0, self._bits)
            if addr & ((1 << (self._bits - length)) - 1):
                raise ValueError(f"host bits set in prefix {prefix!r} (rejected, not normalised)")
            return addr, length
        if not isinstance(prefix, (str, ipaddress.IPv4Network, ipaddress.IPv6Network)):
            raise F.FieldTypeError("prefix", f"must be a string, ip_network or (int, len), not "
                                             f"{type(prefix).__name__}")
        net = F.network("prefix", prefix, self._version)
        return int(net.network_address), net.prefixlen

    def _address(self, addr) -> int:
        if isinstance(addr, (int, np.integer)) and not isinstance(addr, bool):
            return _int_arg(addr, "address", 0, (1 << self._bits) - 1)
        if isinstance(addr, str):
            try:
                addr = ipaddress.ip_address(addr)
            except ValueError as e:
                raise ValueError(f"bad address: {e}") from None
        if isinstance(addr, (bytes, bytearray)) and len(addr) == self._bits // 8:
            return int.from_bytes(addr, "big")
        if isinstance(addr, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            if addr.version != self._version:
                raise ValueError(f"address {addr} is not IPv{self._version}")
            return int(addr)
        raise TypeError(f"address must be a string, int or ip_address, not {type(addr).__name__}")

    def _network(self, key: int, length: int):
        raise NotImplementedError

    # -- writer ------------------------------------------------------------
    def insert(self, vrf, prefix, nh) -> bool:
        """Add or replace a route; True if it was new."""
        # Fast path for an already-typed call with an (int, int) prefix: the C
        # table validates everything itself; on any refusal the slow path
        # below re-validates in Python to name the bad field.
        if type(prefix) is tuple and type(vrf) is int and type(nh) is int and len(prefix) == 2 \
                and type(prefix[0]) is int and type(prefix[1]) is int and 0 <= prefix[0] >> self._bits == 0:
            try:
                return bool(self._t.insert(vrf, self._key(prefix[0]), prefix[1], nh))
            except (ValueError, OverflowError):
                pass
        vrf, nh = _vrf(vrf), _nh(nh)
        key, length = self._prefix(prefix)
        return bool(self._t.insert(vrf, self._key(key), length, nh))

    def delete(self, vrf, prefix) -> bool:
        """Remove a route; False if it was absent."""
        vrf = _vrf(vrf)
        key, length = self._prefix(prefix)
        return self._t.delete(vrf, self._key(key), length)

    def get(self, vrf, prefix):
        """Next hop of exactly this prefix, or None."""
        vrf = _vrf(vrf)
        key, length = self._prefix(prefix)
        return self._t.get(vrf, self._key(key), length)

    def insert_batch(self, vrf, addrs, lens, nhs) -> int:
        """Insert many routes, all or nothing; later duplicates win. Returns
        how many routes changed."""
        vrf = _vrf(vrf)
        keys = self._batch_keys(addrs, "addrs")
        lens = _int_array(lens, "lens", 0, self._bits, np.uint8)
        nhs = _int_array(nhs, "nhs", 0, MAX_NH, np.uint32)
        if not len(keys) == len(lens) == len(nhs):
            raise ValueError(f"addrs, lens and nhs differ in length ({len(keys)}, {len(lens)}, {len(nhs)})")
        self._check_host_bits(keys, lens)
        return self._t.apply(vrf, keys, lens, nhs, None)

    def delete_batch(self, vrf, addrs, lens) -> int:
        """Delete many routes, all or nothing; returns how many existed."""
        vrf = _vrf(vrf)
        keys = self._batch_keys(addrs, "addrs")
        lens = _int_array(lens, "lens", 0, self._bits, np.uint8)
        if len(keys) != len(lens):
            raise ValueError(f"addrs and lens differ in length ({len(keys)}, {len(lens)})")
        self._check_host_bits(keys, lens)
        return self._t.apply(vrf, keys, lens, None, np.ones(len(lens), dtype=np.uint8))

    # -- readers -----------------------------------------------------------
    def lookup(self, vrf, addr) -> int:
        """Next hop of the longest prefix covering addr, or NO_ROUTE."""
        return self._t.lookup(_vrf(vrf), self._key(self._address(addr)))

    def lookup_batch(self, vrf, keys, impl: str = "auto") -> np.ndarray:
        """Next hops (uint32, NO_ROUTE where none) for a batch of addresses;
        the GIL is released. ``impl`` picks the C variant (all agree)."""
        if impl not in _ext.LPM_IMPLS:
            raise ValueError(f"impl must be one of {', '.join(IMPLS)}")
        return self._t.lookup_batch(_vrf(vrf), self._batch_keys(keys, "keys"), _ext.LPM_IMPLS[impl])

    # -- inspection --------------------------------------------------------
    def dump(self, vrf) -> tuple:
        """The VRF's routes as numpy columns (addrs, lens, nhs), sorted by address, then prefix length:
        addrs uint32 host order (IPv4) or (n, 16) uint8 (IPv6), lens uint8, nhs uint32."""
        return self._t.dump(_vrf(vrf))

    def routes(self, vrf) -> list:
        """[(network, nh)] sorted by address, then prefix length."""
        keys, lens, nhs = self.dump(vrf)
        return [(self._network(k, int(l)), int(h)) for k, l, h in zip(self._dump_keys(keys), lens, nhs)]

    def count(self, vrf=None) -> int:
        return self._t.total() if vrf is None else self._t.count(_vrf(vrf))

    def __len__(self) -> int:
        return self._t.total()

    def vrfs(self) -> list[int]:
        return [int(v) for v in self._t.vrfs()]

    def bytes_used(self) -> int:
        """Bytes held by the table: FIB, RIB and writer scratch."""
        return self._t.bytes_used()

    @property
    def generation(self) -> int:
        """Increases on every change that alters the table."""
        return self._t.generation


class Lpm4(_Lpm):
    """Per-VRF IPv4 LPM table."""

    _bits, _version, _cls = 32, 4, _ext.Lpm4Table

    @staticmethod
    def _key(key: int):
        return key

    def _batch_keys(self, keys, name):
        if not isinstance(keys, np.ndarray) or keys.dtype != np.uint32 or keys.ndim != 1:
            raise TypeError(f"{name} must be a 1-D numpy uint32 array of IPv4 addresses")
        return np.ascontiguousarray(keys)

    @staticmethod
    def _check_host_bits(keys, lens):
        mask = np.where(lens == 0, np.uint64(0xFFFFFFFF),
                        (np.uint64(1) << (np.uint64(32) - lens.astype(np.uint64))) - np.uint64(1))
        bad = np.nonzero(keys.astype(np.uint64) & mask)[0]
        if bad.size:
            i = bad[0]
            raise ValueError(f"addrs[{i}]: host bits set in {ipaddress.IPv4Address(int(keys[i]))}/{lens[i]}")

    @staticmethod
    def _dump_keys(keys):
        return (int(k) for k in keys)

    @staticmethod
    def _network(key, length):
        return ipaddress.IPv4Network((key, length))


class Lpm6(_Lpm):
    """Per-VRF IPv6 LPM table."""

    _bits, _version, _cls = 128, 6, _ext.Lpm6Table

    @staticmethod
    def _key(key: int):
        return key.to_bytes(16, "big")

    def _batch_keys(self, keys, name):
        if not isinstance(keys, np.ndarray) or keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != 16:
            raise TypeError(f"{name} must be an (N, 16) numpy uint8 array of IPv6 addresses")
        return np.ascontiguousarray(keys)

    @staticmethod
    def _check_host_bits(keys, lens):
        # Byte i keeps min(8, max(0, len - 8 i)) leading bits.
        keep = np.clip(lens.astype(np.int16)[:, None] - np.arange(0, 128, 8, dtype=np.int16)[None, :], 0, 8)
        mask = (0xFF >> keep).astype(np.uint8)
        bad = np.nonzero((keys & mask).any(axis=1))[0]
        if bad.size:
            i = bad[0]
            raise ValueError(f"addrs[{i}]: host bits set in {ipaddress.IPv6Address(bytes(keys[i]))}/{lens[i]}")

    @staticmethod
    def _dump_keys(keys):
        return (int.from_bytes(bytes(k), "big") for k in keys)

    @staticmethod
    def _network(key, length):
        return ipaddress.IPv6Network((key, length))
