"""Policy facade: rule lists from Python dicts/tuples, validated field by
field, compiled in C (ext/policy.{h,c}) and attached to a VRF (network
policy) or a vif (security group).

A rule (dict keys; a tuple gives them in this order):
    id         int 0..2**32-3                         required
    src, dst   "any" | "10.0.0.0/8" | "2001:db8::/32" default "any"
    proto      "any" | "tcp" | "udp" | "icmp" | "icmp6" | 0..255   default "any"
    sport, dport  "any" | port | (lo, hi) inclusive   default "any"
    direction  "ingress" | "egress" | "both"          default "both"
    action     "pass" | "deny"                        required
    log        bool                                   default False

Direction is relative to the vrouter: a packet arriving from a vif is
ingress. Flow installs and the sweep's re-validation evaluate as ingress.
A change bumps ``generation``; flows decided under an older generation are
re-validated by FlowTable.sweep(policy=...), so a new deny reaches existing
connections within one full sweep pass: capacity/2 / budget sweep calls
(the "sweep interval" setting = that many times the sweep call period).
"""
from __future__ import annotations

import numpy as np

from control import fields as F
from vrouter import _ext
from vrouter.flow import V4_MAPPED, check_keys, make_key

RULE_DTYPE = np.dtype([("src", "u1", 16), ("dst", "u1", 16), ("src_len", "u1"), ("dst_len", "u1"),
                       ("family", "u1"), ("dir", "u1"), ("proto", "<u2"), ("sport_lo", "<u2"),
                       ("sport_hi", "<u2"), ("dport_lo", "<u2"), ("dport_hi", "<u2"),
                       ("action", "u1"), ("log", "u1"), ("id", "<u4")])
RESULT_DTYPE = np.dtype([("rule_id", "<u4"), ("action", "u1"), ("log", "u1"), ("pad", "<u2")])
assert _ext.pol_struct_sizes() == {"rule": RULE_DTYPE.itemsize, "result": RESULT_DTYPE.itemsize}

PROTO_ANY = 0xFFFF
RULE_NONE = 0xFFFFFFFF        # no list attached
RULE_DEFAULT = 0xFFFFFFFE     # the list's default action decided
ACTIONS = {"pass": 0, "deny": 1}
ACTION_NAMES = {0: "pass", 1: "deny"}
DIRECTIONS = {"ingress": 1, "egress": 2, "both": 3}
FIELDS = ("id", "src", "dst", "proto", "sport", "dport", "direction", "action", "log")
MAX_RULES = 65536


def _prefix(where, value):
    """Returns (net or None for any)."""
    if value is None or value == "any":
        return None
    return F.network(where, value)


def _ports(where, value):
    return F.ports(where, value)


def _proto(where, value):
    p = F.proto(where, value if value is not None else "any", any_ok=True)
    return PROTO_ANY if p is None else p


def _choice(where, value, table):
    if value not in table:
        raise ValueError(f"{where}: unknown value {value!r} (one of {', '.join(table)})")
    return table[value]


def normalise_rule(rule, i=0) -> dict:
    """Rule dict/tuple -> a dict with every field present and checked."""
    if isinstance(rule, (tuple, list)):
        if len(rule) > len(FIELDS):
            raise ValueError(f"rule {i}: too many fields ({len(rule)})")
        rule = dict(zip(FIELDS, rule))
    if not isinstance(rule, dict):
        raise TypeError(f"rule {i}: must be a dict or tuple, got {type(rule).__name__}")
    unknown = set(rule) - set(FIELDS)
    if unknown:
        raise ValueError(f"rule {i}: unknown field(s) {sorted(unknown)}")
    for req in ("id", "action"):
        if req not in rule:
            raise ValueError(f"rule {i}.{req}: missing")
    rid = rule["id"]
    if isinstance(rid, bool) or not isinstance(rid, (int, np.integer)) or not 0 <= rid < RULE_DEFAULT:
        raise ValueError(f"rule {i}.id: must be an integer 0..{RULE_DEFAULT - 1}, got {rid!r}")
    log = rule.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"rule {i}.log: must be a bool, got {log!r}")
    src = _prefix(f"rule {i}.src", rule.get("src", "any"))
    dst = _prefix(f"rule {i}.dst", rule.get("dst", "any"))
    if src is not None and dst is not None and src.version != dst.version:
        raise ValueError(f"rule {i}.dst: address family differs from src")
    return {"id": int(rid), "src": src, "dst": dst,
            "proto": _proto(f"rule {i}.proto", rule.get("proto", "any")),
            "sport": _ports(f"rule {i}.sport", rule.get("sport", "any")),
            "dport": _ports(f"rule {i}.dport", rule.get("dport", "any")),
            "dir": _choice(f"rule {i}.direction", rule.get("direction", "both"), DIRECTIONS),
            "action": _choice(f"rule {i}.action", rule["action"], ACTIONS),
            "log": log}


def _stored(net, family):
    """(16 bytes, prefix length in 128-bit space) for a prefix or 'any'."""
    if net is None:
        if family == 4:
            return V4_MAPPED + bytes(4), 96
        return bytes(16), 0
    if net.version == 4:
        return V4_MAPPED + net.network_address.packed, 96 + net.prefixlen
    return net.network_address.packed, net.prefixlen


def compile_rules(rules) -> np.ndarray:
    """Validate rules and pack them into RULE_DTYPE records (order kept)."""
    rules = list(rules)
    if len(rules) > MAX_RULES:
        raise ValueError(f"rules: at most {MAX_RULES} rules per list, got {len(rules)}")
    out = np.zeros(len(rules), RULE_DTYPE)
    for i, r in enumerate(rules):
        n = normalise_rule(r, i)
        fams = {x.version for x in (n["src"], n["dst"]) if x is not None}
        family = fams.pop() if fams else 0
        for part in ("src", "dst"):
            b, ln = _stored(n[part], family)
            out[i][part] = np.frombuffer(b, np.uint8)
            out[i][part + "_len"] = ln
        out[i]["family"] = family
        out[i]["dir"] = n["dir"]
        out[i]["proto"] = n["proto"]
        out[i]["sport_lo"], out[i]["sport_hi"] = n["sport"]
        out[i]["dport_lo"], out[i]["dport_hi"] = n["dport"]
        out[i]["action"] = n["action"]
        out[i]["log"] = n["log"]
        out[i]["id"] = n["id"]
    return out


class PolicyTable:
    """Rule lists per VRF and per vif, published RCU-style (see ext/policy.h)."""

    def __init__(self, domain=None):
        self._t = _ext.PolicyTable(domain)

    def _attach(self, kind, ident, rules, default):
        if isinstance(ident, bool) or not isinstance(ident, (int, np.integer)) or not 0 <= ident <= 65535:
            raise ValueError(f"{'vrf' if kind == 0 else 'vif'}: must be 0..65535, got {ident!r}")
        d = _choice("default", default, ACTIONS)
        recs = None if rules is None else compile_rules(rules)
        return self._t.attach(kind, int(ident), recs, d)

    def set_vrf_policy(self, vrf: int, rules, default: str = "pass") -> int:
        """Attach a network policy to a VRF; returns the new generation."""
        return self._attach(0, vrf, rules, default)

    def set_vif_policy(self, vif: int, rules, default: str = "pass") -> int:
        """Attach a security group to a vif; returns the new generation."""
        return self._attach(1, vif, rules, default)

    def clear_vrf_policy(self, vrf: int) -> int:
        return self._attach(0, vrf, None, "pass")

    def clear_vif_policy(self, vif: int) -> int:
        return self._attach(1, vif, None, "pass")

    @property
    def generation(self) -> int:
        return self._t.generation

    def evaluate_batch(self, keys: np.ndarray, vifs=None, direction: str = "ingress",
                       linear: bool = False):
        """(actions u1 array: 0 pass / 1 deny, rule ids u4 array). ``linear``
        selects the plain first-match scan the compiled path is tested against."""
        keys = check_keys(keys)
        d = _choice("direction", direction, {"ingress": 1, "egress": 2})
        v = None
        if vifs is not None:
            v = np.asarray(vifs)
            if v.dtype.kind not in "iu" or v.shape != (len(keys),) or (v.size and (v.min() < 0 or v.max() > 65535)):
                raise ValueError(f"vifs: need {len(keys)} integers in 0..65535")
            v = np.ascontiguousarray(v, dtype=np.uint16)
        res = np.empty(len(keys), RESULT_DTYPE)
        self._t.eval_bulk(keys, v, d, res, linear)
        return res["action"].copy(), res["rule_id"].copy()

    def evaluate_raw(self, keys, results, direction: int = 1, linear: bool = False):
        """Benchmark path: no validation beyond sizes."""
        self._t.eval_bulk(keys, None, direction, results, linear)

    def evaluate(self, key, vif=None, direction: str = "ingress"):
        """One key (array or (vrf, proto, src, dst, sport, dport)) -> (action name, rule id)."""
        if not isinstance(key, np.ndarray):
            key = make_key(*key)
        a, r = self.evaluate_batch(key, None if vif is None else [vif], direction)
        return ACTION_NAMES[int(a[0])], int(r[0])
