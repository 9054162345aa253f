"""The canonical form of a node's tables, and their digests: what the control channel's ``digest`` op
answers and what an agent computes from its desired state, so the two can be compared without moving
the tables (the periodic audit, control/node/push.py).

Both sides build, per object kind, ``{key: canonical value}`` with ``entry(kind, obj)``, where ``obj`` is a
body as the protocol normalised it (control.protocol.validate_body: every default filled in) or, on the
vrouter, the object as its table gives it back (NhTable.vif / nh, the LPM dumps, the policies as stored).
The canonical value keeps only what both forms hold, in one spelling: ids and numbers as ints, MACs lower
case, addresses and prefixes as ``ipaddress`` prints them, lists that are sets sorted. A kind's digest is
``digest(entries)``: SHA-256 over the entries sorted by key, as compact JSON.

Kinds (KINDS): vrf, vif (with its device: ``tap``), nh, label, vni, policy (its rule list as a digest of
its own), route. Routes are digested per
table (VRF and family) from packed columns, as the LPM dump gives them (sorted by address, then length):
``route_table_digest(family, addrs, lens, nhs)``; the kind's digest is ``digest`` over the tables' digests
keyed "vrf/family". Objects the node's own configuration made (node.yaml, generation STATIC) are outside
every digest: an agent never owns them.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import json

import msgpack

KINDS = ("vrf", "vif", "nh", "label", "vni", "policy", "route")
TABLE_KINDS = KINDS[:-1]

VIF_FIELDS = ("kind", "vrf", "mac", "mtu", "vlan", "policy", "admin_down", "gw4", "gw6")
TAP_FIELDS = ("name", "netns", "pod_mac", "ip", "ip6", "default_route")
NH_FIELDS = {
    "discard": (), "receive": (),
    "interface": ("vif", "dmac", "smac"),
    "tunnel": ("vif", "dmac", "smac", "encap", "src", "dst", "vni", "label", "inner_dmac", "ttl"),
    "ecmp": ("members",), "vrf": ("vrf",),
}
RULE_FIELDS = ("id", "src", "dst", "proto", "sport", "dport", "direction", "action", "log")


@functools.lru_cache(maxsize=1 << 16)
def _net(x: str):
    return ipaddress.ip_network(x)


@functools.lru_cache(maxsize=1 << 16)
def _net_text(x: str) -> str:
    return str(_net(x))


def _prefixes(xs) -> list[str]:
    nets = [_net(x) for x in xs or ()]
    return [str(n) for n in sorted(nets, key=lambda n: (n.version, n.network_address, n.prefixlen))]


def _iface(x):
    return None if x is None else str(ipaddress.ip_interface(x))


def _addr(x):
    return None if x is None else str(ipaddress.ip_address(x))


def _mac(x):
    return None if x is None else x.lower()


def _tap(t: dict | None):
    if not t:
        return None
    return [t.get("name"), t.get("netns"), _mac(t.get("pod_mac")), _iface(t.get("ip")), _iface(t.get("ip6")),
            bool(t.get("default_route", True)), _prefixes(t.get("routes"))]


def entry(kind: str, obj: dict) -> tuple[str, list]:
    """(key, canonical value) of one object of ``kind`` (not route: see route_table_digest)."""
    if kind == "vrf":
        return str(obj["vrf"]), [int(obj["vrf"]), obj.get("name") or ""]
    if kind == "vif":
        v = [int(obj["id"]), obj["kind"], int(obj.get("vrf") or 0), _mac(obj["mac"]), int(obj.get("mtu", 1500)),
             int(obj.get("vlan") or 0), bool(obj.get("policy")), bool(obj.get("admin_down")),
             _addr(obj.get("gw4")), _addr(obj.get("gw6")), _prefixes(obj.get("prefixes")), _tap(obj.get("tap"))]
        return str(obj["id"]), v
    if kind == "nh":
        t = obj["type"]
        v = [int(obj["id"]), t]
        for k in NH_FIELDS[t]:
            x = obj.get(k)
            if k in ("dmac", "smac", "inner_dmac"):
                x = _mac(x)
            elif k in ("src", "dst"):
                x = _addr(x)
            elif k == "encap":
                x = x or "vxlan"
            elif k == "ttl":
                x = int(x or 0)
            elif k == "members":
                x = [None if m is None else int(m) for m in x]
            elif x is not None:
                x = int(x)
            v.append(x)
        return str(obj["id"]), v
    if kind == "label":
        return str(obj["label"]), [int(obj["label"]), int(obj["nh"])]
    if kind == "vni":
        return str(obj["vni"]), [int(obj["vni"]), int(obj["vrf"])]
    if kind == "policy":
        return f"{obj['kind']}/{obj['id']}", [obj["kind"], int(obj["id"]), obj.get("default") or "pass",
                                              _rules(obj["rules"])]
    raise ValueError(f"no canonical form for kind {kind!r}")


_RULES: dict[bytes, str] = {}


def _rules(rules) -> str:
    """A rule list's digest: SHA-256 of its rules in canonical form (each RULE_FIELDS, defaults filled in),
    as compact JSON. Remembered by the list's msgpack bytes, since every pod a NetworkPolicy selects has
    the same list (the cache is dropped whole when it grows past 4,096 lists)."""
    key = msgpack.packb(rules, use_bin_type=True)
    got = _RULES.get(key)
    if got is None:
        if len(_RULES) >= 4096:
            _RULES.clear()
        canon = [[_rule_field(k, r.get(k)) for k in RULE_FIELDS] for r in rules]
        got = _RULES[key] = hashlib.sha256(json.dumps(canon, separators=(",", ":")).encode()).hexdigest()[:32]
    return got


_RULE_DEFAULTS = {"src": "any", "dst": "any", "proto": "any", "sport": "any", "dport": "any",
                  "direction": "both", "log": False}


def _rule_field(k, x):
    if x is None:
        x = _RULE_DEFAULTS.get(k)
    if k in ("src", "dst") and x != "any":
        return _net_text(x)
    if k in ("sport", "dport") and isinstance(x, (list, tuple)):
        return [int(x[0]), int(x[1])]
    if k == "proto" and isinstance(x, str):
        return x.lower()
    if k == "log":
        return bool(x)
    return x


def digest(entries: dict[str, object]) -> str:
    """SHA-256 (hex, 32 characters) of ``{key: canonical value}`` sorted by key, as compact JSON."""
    h = hashlib.sha256()
    for k in sorted(entries):
        h.update(json.dumps([k, entries[k]], separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()[:32]


def route_table_digest(family: int, addrs: bytes, lens: bytes, nhs: bytes) -> str:
    """One route table's digest from its columns (the wire form of route_add: addresses in network byte
    order, 4 or 16 bytes each; lengths one byte each; next hops little-endian uint32), sorted by address,
    then length."""
    h = hashlib.sha256(b"%d:%d:" % (family, len(lens)))
    h.update(addrs)
    h.update(lens)
    h.update(nhs)
    return h.hexdigest()[:32]


def route_key(vrf: int, family: int) -> str:
    return f"{vrf}/{family}"


def routes_digest(tables: dict[str, str]) -> str:
    """The route kind's digest from every non-empty table's digest, keyed route_key(vrf, family)."""
    return digest(tables)
