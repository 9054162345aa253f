"""Flow table facade: numpy arrays in, numpy arrays out, one C call per batch.

The C table (ext/flow.{h,c}) is shared by worker threads; this facade is the
control/test side. Every input is checked here (one function per field) so
that the C layer only ever sees well-formed records.

Time: the table never reads a clock. Every call that needs one takes ``now``
in nanoseconds (the datapath passes its clock; tests pass a fake one);
timeouts are given in seconds and stored in nanoseconds.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, astuple
from typing import NamedTuple

import numpy as np

from control import fields as F
from vrouter import _ext

NS = 1_000_000_000

KEY_DTYPE = np.dtype([("src", "u1", 16), ("dst", "u1", 16), ("sport", "<u2"), ("dport", "<u2"),
                      ("vrf", "<u2"), ("proto", "u1"), ("family", "u1")])
RESULT_DTYPE = np.dtype([("index", "<u4"), ("nh", "<u4"), ("rule_id", "<u4"), ("found", "u1"),
                         ("action", "u1"), ("drop_reason", "u1"), ("tcp", "u1"), ("ecmp", "u1"),
                         ("pad", "u1", 3), ("hash", "<u4")])
INSTALL_DTYPE = np.dtype([("nh", "<u4"), ("rev_nh", "<u4"), ("rule_id", "<u4"),
                          ("policy_gen", "<u4"), ("vif", "<u2"), ("action", "u1"),
                          ("drop_reason", "u1"), ("ecmp", "u1"), ("rev_ecmp", "u1"), ("pad", "u1", 2)])
ENTRY_DTYPE = np.dtype({"names": ["key", "nh", "rule_id", "policy_gen", "bucket", "vif", "action",
                                  "drop_reason", "state", "tcp", "ecmp"],
                        "formats": [KEY_DTYPE, "<u4", "<u4", "<u4", "<u4", "<u2", "u1", "u1", "u1", "u1",
                                    "u1"],
                        "offsets": [0, 40, 44, 48, 52, 56, 58, 59, 60, 61, 62], "itemsize": 64})
TIMES_DTYPE = np.dtype([("packets", "<u8"), ("bytes", "<u8"), ("first_seen", "<u8"),
                        ("last_seen", "<u8")])

_SIZES = _ext.flow_struct_sizes()
assert _SIZES == {"key": KEY_DTYPE.itemsize, "entry": ENTRY_DTYPE.itemsize,
                  "times": TIMES_DTYPE.itemsize, "result": RESULT_DTYPE.itemsize,
                  "install": INSTALL_DTYPE.itemsize}, _SIZES

NONE = 0xFFFFFFFF
ACTIONS = {"forward": 0, "drop": 1}
ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
DROP_REASONS = _ext.flow_drop_names()          # index = C enum value
TCP_SYN, TCP_EST, TCP_FIN, TCP_RST = 1, 2, 4, 8
PROTOCOLS = F.PROTOCOLS
V4_MAPPED = bytes(10) + b"\xff\xff"


@dataclass(frozen=True)
class Timeouts:
    """Idle timeouts in seconds (TCP after FIN/RST uses ``tcp_close``)."""
    tcp: float = 180.0
    tcp_close: float = 10.0
    udp: float = 60.0
    icmp: float = 30.0
    other: float = 60.0
    drop: float = 5.0

    def as_ns(self) -> tuple:
        out = []
        for name, v in zip(("tcp", "tcp_close", "udp", "icmp", "other", "drop"), astuple(self)):
            if not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"timeouts.{name}: must be a number >= 0, got {v!r}")
            out.append(int(round(v * NS)))
        return tuple(out)


class LookupResult(NamedTuple):
    found: np.ndarray       # bool
    index: np.ndarray       # u4, NONE when not found
    action: np.ndarray      # u1 (0 forward, 1 drop)
    nh: np.ndarray          # u4
    rule_id: np.ndarray
    drop_reason: np.ndarray
    tcp: np.ndarray


class InsertResult(NamedTuple):
    index: int | None       # forward entry index (reverse = index ^ 1)
    reason: str             # "none" when inserted, else the named outcome


# ------------------------------------------------------------- input checks

def _proto(value) -> int:
    return F.proto("proto", value)


def _u16(field: str, value) -> int:
    return F.integer(field, value, 0, 65535)


def _u32(field: str, value) -> int:
    return F.integer(field, value, 0, 0xFFFFFFFF)


def _addr(field: str, value):
    return F.address(field, value)


def addr_bytes(a) -> bytes:
    """16-byte stored form: IPv4 mapped (::ffff:a.b.c.d), IPv6 as is."""
    return V4_MAPPED + a.packed if a.version == 4 else a.packed


def make_key(vrf, proto, src, dst, sport=0, dport=0) -> np.ndarray:
    """One key (a 1-record array). ICMP: sport = identifier, dport = type."""
    k = np.zeros(1, KEY_DTYPE)
    s, d = _addr("src", src), _addr("dst", dst)
    if s.version != d.version:
        raise ValueError("dst: address family differs from src")
    k["vrf"] = _u16("vrf", vrf)
    k["proto"] = _proto(proto)
    k["src"][0] = np.frombuffer(addr_bytes(s), np.uint8)
    k["dst"][0] = np.frombuffer(addr_bytes(d), np.uint8)
    k["sport"] = _u16("sport", sport)
    k["dport"] = _u16("dport", dport)
    k["family"] = s.version
    return k


def make_keys(rows) -> np.ndarray:
    """Keys from (vrf, proto, src, dst, sport, dport) tuples."""
    rows = list(rows)
    return np.concatenate([make_key(*r) for r in rows]) if rows else np.zeros(0, KEY_DTYPE)


_MAPPED = np.frombuffer(V4_MAPPED, np.uint8)


def check_keys(keys, field: str = "keys") -> np.ndarray:
    """Validate a key array (dtype, shape, family, address form)."""
    if not isinstance(keys, np.ndarray):
        raise TypeError(f"{field}: expected a numpy array of KEY_DTYPE, got {type(keys).__name__}")
    if keys.dtype != KEY_DTYPE:
        raise TypeError(f"{field}: dtype must be vrouter.flow.KEY_DTYPE, got {keys.dtype}")
    if keys.ndim != 1:
        raise ValueError(f"{field}: must be one-dimensional, got shape {keys.shape}")
    keys = np.ascontiguousarray(keys)
    fam = keys["family"]
    if not np.isin(fam, (4, 6)).all():
        bad = int(np.flatnonzero(~np.isin(fam, (4, 6)))[0])
        raise ValueError(f"{field}[{bad}].family: must be 4 or 6, got {int(fam[bad])}")
    for part in ("src", "dst"):
        mapped = (keys[part][:, :12] == _MAPPED).all(axis=1)
        wrong = (fam == 4) != mapped
        if wrong.any():
            bad = int(np.flatnonzero(wrong)[0])
            what = "IPv4 key needs an IPv4-mapped address" if fam[bad] == 4 else \
                "IPv6 key holds an IPv4-mapped address"
            raise ValueError(f"{field}[{bad}].{part}: {what} (wrong family)")
    return keys


def _column(field, value, n, dtype, lo, hi):
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"{field}: must be integers, got dtype {arr.dtype}")
    if arr.ndim > 1 or (arr.ndim == 1 and len(arr) != n):
        raise ValueError(f"{field}: must be a scalar or {n} values")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{field}: values must be in {lo}..{hi}")
    return np.broadcast_to(arr.astype(dtype), (n,))


def _action(value) -> int:
    if isinstance(value, str):
        if value not in ACTIONS:
            raise ValueError(f"action: unknown action {value!r} (forward, drop)")
        return ACTIONS[value]
    if value not in (0, 1):
        raise ValueError(f"action: must be 'forward' or 'drop', got {value!r}")
    return int(value)


# ------------------------------------------------------------------ table

class FlowTable:
    """Fixed-capacity flow table of forward/reverse pairs (see ext/flow.h)."""

    def __init__(self, capacity: int = 512 * 1024, timeouts: Timeouts | None = None,
                 quota_per_vif: int = 0, quota_per_vrf: int = 0):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or \
                not 16 <= capacity <= (1 << 28):
            raise ValueError(f"capacity: must be an integer 16..2**28 entries, got {capacity!r}")
        self.timeouts = timeouts or Timeouts()
        self._t = _ext.FlowTable(int(capacity), self.timeouts.as_ns())
        self._t.set_default_quota(_u32("quota_per_vif", quota_per_vif),
                                  _u32("quota_per_vrf", quota_per_vrf))
        self.capacity = self._t.capacity

    # configuration -------------------------------------------------------
    def set_timeouts(self, timeouts: Timeouts) -> None:
        self._t.set_timeouts(timeouts.as_ns())
        self.timeouts = timeouts

    def key_copies(self, key: np.ndarray) -> int:
        """Test hook: entries holding this key (a 1-record KEY_DTYPE array); never more than 1."""
        return self._t.key_copies(check_keys(key, "key"))

    def set_quota(self, *, vif: int | None = None, vrf: int | None = None, limit: int | None = 0) -> None:
        """Max pairs for one vif or VRF (0 = unlimited, None = the default)."""
        lim = NONE if limit is None else _u32("limit", limit)
        if (vif is None) == (vrf is None):
            raise ValueError("set_quota: give exactly one of vif= or vrf=")
        if vif is not None:
            self._t.set_vif_quota(_u16("vif", vif), lim)
        else:
            self._t.set_vrf_quota(_u16("vrf", vrf), lim)

    def set_default_quota(self, per_vif: int = 0, per_vrf: int = 0) -> None:
        self._t.set_default_quota(_u32("per_vif", per_vif), _u32("per_vrf", per_vrf))

    def count(self, *, vif: int | None = None, vrf: int | None = None) -> int:
        """Pairs currently charged to a vif or VRF."""
        return self._t.vif_count(_u16("vif", vif)) if vif is not None else self._t.vrf_count(_u16("vrf", vrf))

    # lookups ----------------------------------------------------------------
    def lookup(self, keys: np.ndarray, worker: int = 0) -> LookupResult:
        keys = check_keys(keys)
        res = np.empty(len(keys), RESULT_DTYPE)
        self._t.lookup_bulk(keys, res, worker)
        return LookupResult(res["found"].astype(bool), res["index"], res["action"], res["nh"],
                            res["rule_id"], res["drop_reason"], res["tcp"])

    def lookup_raw(self, keys: np.ndarray, results: np.ndarray, worker: int = 0) -> None:
        """Hot path for benchmarks/pipeline glue: no validation beyond sizes."""
        self._t.lookup_bulk(keys, results, worker)

    def lookup_scalar(self, keys: np.ndarray) -> np.ndarray:
        """The plain one-key-at-a-time path (reference for lookup())."""
        keys = check_keys(keys)
        out = np.empty(len(keys), np.uint32)
        self._t.lookup_scalar(keys, out)
        return out

    def reverse_keys(self, keys: np.ndarray) -> np.ndarray:
        keys = check_keys(keys)
        out = np.empty(len(keys), KEY_DTYPE)
        self._t.reverse_keys(keys, out)
        return out

    # writers ----------------------------------------------------------------
    def insert_pair(self, key: np.ndarray, nh: int, rev_nh: int | None = None, *, action="forward",
                    vif: int = 0, rule_id: int = 0, policy_gen: int = 0, now: int = 0,
                    reverse: np.ndarray | None = None, worker: int = 0) -> InsertResult:
        key = check_keys(key, "key")
        if len(key) != 1:
            raise ValueError(f"key: expected one key, got {len(key)}")
        rev = self.reverse_keys(key) if reverse is None else check_keys(reverse, "reverse")
        if len(rev) != 1:
            raise ValueError("reverse: expected one key")
        act = _action(action)
        inst = np.zeros(1, INSTALL_DTYPE)
        inst["nh"] = _u32("nh", nh)
        inst["rev_nh"] = _u32("rev_nh", nh if rev_nh is None else rev_nh)
        inst["rule_id"] = _u32("rule_id", rule_id)
        inst["policy_gen"] = _u32("policy_gen", policy_gen)
        inst["vif"] = _u16("vif", vif)
        inst["action"] = act
        inst["drop_reason"] = DROP_REASONS.index("policy_deny") if act else 0
        rc, reason = self._t.insert_pair(np.concatenate([key, rev]), inst, _u64("now", now), worker)
        return InsertResult(rc if rc >= 0 else None, DROP_REASONS[reason])

    def insert_pairs(self, keys: np.ndarray, nh, rev_nh=None, *, action=0, vif=0, rule_id=0,
                     policy_gen=0, now: int = 0, worker: int = 0):
        """Batch insert (reverse keys computed). Returns (index array with -1
        where refused, reason codes array; DROP_REASONS names them)."""
        keys = check_keys(keys)
        n = len(keys)
        inst = np.zeros(n, INSTALL_DTYPE)
        inst["nh"] = _column("nh", nh, n, np.uint32, 0, 0xFFFFFFFF)
        inst["rev_nh"] = inst["nh"] if rev_nh is None else _column("rev_nh", rev_nh, n, np.uint32, 0, 0xFFFFFFFF)
        inst["action"] = _column("action", action, n, np.uint8, 0, 1)
        inst["drop_reason"] = np.where(inst["action"] == 1, DROP_REASONS.index("policy_deny"), 0)
        inst["vif"] = _column("vif", vif, n, np.uint16, 0, 65535)
        inst["rule_id"] = _column("rule_id", rule_id, n, np.uint32, 0, 0xFFFFFFFF)
        inst["policy_gen"] = _column("policy_gen", policy_gen, n, np.uint32, 0, 0xFFFFFFFF)
        out = np.empty(n, np.int32)
        reason = np.empty(n, np.uint8)
        self._t.insert_pairs(keys, inst, _u64("now", now), out, reason, worker)
        return out, reason

    def delete(self, key: np.ndarray, worker: int = 0) -> bool:
        """Delete the pair holding ``key`` (forward or reverse)."""
        key = check_keys(key, "key")
        if len(key) != 1:
            raise ValueError(f"key: expected one key, got {len(key)}")
        return self._t.delete(key, worker) == 0

    def touch(self, index, nbytes, tcp_flags=0, now: int = 0) -> None:
        """Account packets on hit entries (updates last seen, counters, TCP state)."""
        idx = np.ascontiguousarray(index, dtype=np.uint32)
        n = len(idx)
        nb = np.ascontiguousarray(_column("nbytes", nbytes, n, np.uint32, 0, 0xFFFFFFFF))
        fl = np.ascontiguousarray(_column("tcp_flags", tcp_flags, n, np.uint8, 0, 255))
        self._t.touch(idx, nb, fl, _u64("now", now))

    def sweep_interval(self, budget: int, period_s: float) -> float:
        """Seconds for the sweep cursor to cover the table when sweep(budget)
        runs every ``period_s``: the bound on how late a flow is aged and on
        how long a new policy deny takes to reach existing connections."""
        budget = min(_u32("budget", budget) or 1, self.capacity // 2)
        return -(-(self.capacity // 2) // budget) * period_s

    def sweep(self, now: int, budget: int = 4096, policy=None, worker: int = 0):
        """Examine at most ``budget`` pair slots; returns (removed, examined).
        With ``policy``, pairs decided under an older policy generation are
        re-evaluated (action, rule id, drop reason updated on both entries)."""
        p = None if policy is None else policy._t
        return self._t.sweep(_u64("now", now), _u32("budget", budget), p, worker)

    # inspection -------------------------------------------------------------
    def get(self, index: int):
        e = np.zeros(1, ENTRY_DTYPE)
        tm = np.zeros(1, TIMES_DTYPE)
        if self._t.get(_u32("index", index), e, tm) != 0:
            raise KeyError(f"no active flow at index {index}")
        return e[0], tm[0]

    def dump(self):
        """All active entries: (indices, entries, times) arrays."""
        chunk = 4096
        out_i, out_e, out_t = [], [], []
        cursor = 0
        while cursor < self.capacity // 2:
            e = np.zeros(chunk, ENTRY_DTYPE)
            tm = np.zeros(chunk, TIMES_DTYPE)
            ix = np.zeros(chunk, np.uint32)
            n, cursor = self._t.dump(cursor, e, tm, ix)
            out_i.append(ix[:n]); out_e.append(e[:n]); out_t.append(tm[:n])
        return np.concatenate(out_i), np.concatenate(out_e), np.concatenate(out_t)

    def dump_page(self, cursor: int = 0, limit: int = 1000):
        """One page of active flows for paged dumps: (records, next cursor or None). A record is a
        dict per entry (both ends of each pair): index, key fields, nh, action, rule, vif, counters."""
        limit = max(2, min(int(limit), 100_000)) & ~1
        e = np.zeros(limit, ENTRY_DTYPE)
        tm = np.zeros(limit, TIMES_DTYPE)
        ix = np.zeros(limit, np.uint32)
        n, nxt = self._t.dump(_u32("cursor", cursor), e, tm, ix)
        rows = []
        for i in range(n):
            k = e[i]["key"]
            v4 = int(k["family"]) == 4
            addr = (lambda raw: str(ipaddress.ip_address(bytes(raw[12:]) if v4 else bytes(raw))))
            rows.append({"index": int(ix[i]), "vrf": int(k["vrf"]), "proto": int(k["proto"]),
                         "src": addr(k["src"]), "dst": addr(k["dst"]), "sport": int(k["sport"]),
                         "dport": int(k["dport"]), "nh": int(e[i]["nh"]), "vif": int(e[i]["vif"]),
                         "action": "forward" if int(e[i]["action"]) == 0 else "drop",
                         "rule": int(e[i]["rule_id"]), "packets": int(tm[i]["packets"]),
                         "bytes": int(tm[i]["bytes"])})
        return rows, (None if nxt >= self.capacity // 2 or n == 0 else int(nxt))

    def flush(self, worker: int = 0) -> int:
        """Delete every flow pair; returns how many pairs went."""
        idx, _, _ = self.dump()
        gone = 0
        for i in idx[idx % 2 == 0]:
            gone += self._t.delete_index(int(i), worker) == 0
        return gone

    def flows(self, *, vrf=None, vif=None, proto=None, addr=None):
        """Active entries filtered by VRF, ingress vif, protocol and/or an
        address that is the source or destination. Returns (indices, entries, times)."""
        idx, ent, tm = self.dump()
        m = np.ones(len(idx), bool)
        if vrf is not None:
            m &= ent["key"]["vrf"] == _u16("vrf", vrf)
        if vif is not None:
            m &= ent["vif"] == _u16("vif", vif)
        if proto is not None:
            m &= ent["key"]["proto"] == _proto(proto)
        if addr is not None:
            a = np.frombuffer(addr_bytes(_addr("addr", addr)), np.uint8)
            m &= (ent["key"]["src"] == a).all(axis=1) | (ent["key"]["dst"] == a).all(axis=1)
        return idx[m], ent[m], tm[m]

    def pair_expired(self, pair: int, now: int) -> bool:
        return self._t.pair_expired(_u32("pair", pair), _u64("now", now))

    def stats(self) -> dict:
        s = dict(self._t.stats())
        lookups = s["hits"] + s["misses"]
        s["hit_rate"] = s["hits"] / lookups if lookups else 0.0
        s["capacity"] = self.capacity
        s["memory_bytes"] = self._t.memory
        return s


def _u64(field: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= value < 1 << 64:
        raise ValueError(f"{field}: must be an integer 0..2**64-1, got {value!r}")
    return int(value)
