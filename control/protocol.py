"""Wire protocol of the vRouter control channel, version 1. This docstring is the specification.

Transport
    ZeroMQ, one frame per message: clients/agents use DEALER sockets, the vrouter a ROUTER socket. The
    ROUTER's identity frame belongs to the transport, not to this module: every payload below is the one
    message frame. Replies may come out of order; ``q`` pairs a reply with its request.

Encoding
    MessagePack (``use_bin_type=True``; decoded with ``raw=False, strict_map_key=True``): compact and fast
    (a C implementation in both directions), with a real bytes type (``bin``) for packed addresses, frames
    and the columnar route arrays, and no schema compiler or code generation step (any language with a
    msgpack library can speak it). Map keys are strings; ``ext`` types (timestamps included) are refused.

Limits
    ``MAX_MESSAGE`` = 64 MiB: a larger payload is refused as ``too_large`` before anything is unpacked,
    and never encoded. The unpacker's ``max_str_len`` (1 MiB), ``max_array_len`` (131,072) and
    ``max_map_len`` (65,536) are further capped by the payload's own size (an array of n items needs at
    least n bytes, a map 2n), so a few malicious bytes claiming a 2**32-element array are refused at once
    instead of allocating it. Nesting is bounded by the C unpacker's stack (1,024 levels).

Request (a map; all keys required, no others)
    {"v": 1, "s": session, "g": generation, "q": sequence, "op": name, "b": body}
    s   str, 1..64 characters: the agent's session (chosen by the agent, sent again in "hello")
    g   int 0..2**63-1: the snapshot generation the agent works under; the server answers "stale" to a
        request whose generation is older than its session's
    q   int 0..2**63-1: chosen by the client, echoed in the reply
    op  one of OPS (below); b: a map, that op's body

Reply (a map)
    {"v": 1, "q": q, "ok": true,  "b": body}                                   success (body a map)
    {"v": 1, "q": q, "ok": false, "err": {"code": str, "field": str|null, "msg": str}}
    In an error reply q is null when the request's own q could not be read (``bad_message``).

Error codes
    bad_message          not msgpack, not an envelope, or an envelope field wrong ("field" names it)
    unsupported_version  "v" is not 1
    unknown_op           "op" is not one of OPS ("field" = "op")
    invalid              the body breaks its op's schema; "field" is its path: "b.vrf", "b.prefixes[2]",
                         "b.rules[2].dport", "b.tap.pod_mac", "b.addrs[17]" (the first bad route); or a
                         value the node cannot take, such as a next-hop id beyond its table (References)
    not_found            the object is absent, or one the request refers to is (References): "field"
                         names the reference ("b.vif", "b.members[1]", "b.nhs[3]")
    in_use, exists       the object is still referenced / already there
    busy                 the server's queue is full: retry later
    too_large            the payload (or the reply) exceeds MAX_MESSAGE
    stale                the request's generation is older than its session's
    internal             a bug in the server (the node logs it with its traceback)
    ``ProtocolError(code, field, msg)`` carries one (``str()`` = "code: field: msg").

Ops and bodies ("?" optional: absent or null = the default shown, else null)
    hello           agent str 1..64, session str 1..64, generation int 0..2**63-1
                    reply: {"instance": str (uuid of this vrouter process), "version": 1,
                            "generation": last completed snapshot generation or 0, "node": str,
                            "limits": {"nexthops": int}} (next-hop ids this node holds: 0..nexthops-1,
                            node.yaml's node.nexthops, default 65,536, at most 2**24)
    ping, stats, drop_stats                   {}
    snapshot_begin, snapshot_end              generation int 1..2**63-1
    vrf_add         vrf 0..65535, name? str 1..64            vrf_del: vrf
    vif_add, vif_update
                    id 0..4095, kind "virtual"|"fabric"|"host", vrf? 0..65535 =0,
                    mac (the vrouter's MAC on the port, "xx:xx:xx:xx:xx:xx", unicast), mtu? 68..65535 =1500,
                    vlan? 0..4094 =0, policy? bool =false, admin_down? bool =false, gw4? IPv4, gw6? IPv6
                    (unicast), prefixes? list (<= 8) of strict CIDR strings =[] (fabric: /32 or /128 only),
                    tap? (virtual vifs only) {name: ifname 1..15 [A-Za-z0-9_.-], netns? str,
                    pod_mac: unicast MAC, ip? "a.b.c.d/len", ip6? "x::y/len", default_route? bool =true
                    (default routes via gw4/gw6 in the pod), routes? list (<= 256) of CIDRs =[] (routes via
                    the gateway of their family)}; naming the vif's present device (same name, netns,
                    pod_mac, ip, ip6) it only sets the device's routes, naming another one replaces it
                    normalised: every key present; all but "tap" are NhTable.set_vif's keywords
    vif_del         id
    nh_add, nh_update
                    id 0..2**24-1 (a node holds 0..limits.nexthops-1), type, and the NhTable.set_nh
                    keywords of that type only (others refused:
                    "b.vni: not used by type interface"):
                      discard, receive: -
                      interface: vif 0..4095, dmac (any non-zero MAC), smac? (unicast)
                      tunnel: vif, dmac, smac?, encap? "vxlan"|"mplsoudp" ="vxlan", src, dst (unicast,
                        same family), vxlan: vni 0..2**24-1, inner_dmac?; mplsoudp: label 16..2**20-1;
                        ttl? 0..255 =0 (0 = 64)
                      ecmp: members, 1..64 of next-hop id or null (an empty slot)
                      vrf: vrf
    nh_del          id
    route_add       vrf, family 4|6, and three columns (n routes, 1 <= n <= 1,000,000 per message):
                      addrs bytes, 4 or 16 per route (network byte order), host bits zero
                      lens  bytes, 1 per route, <= 32 / 128
                      nhs   bytes, 4 per route (little-endian uint32, 0..0xfffffffe)
                    normalised to numpy: addrs uint32 host order (IPv4, as Lpm4.insert_batch takes) or
                    (n, 16) uint8 (IPv6), lens uint8, nhs uint32. pack_routes/unpack_routes convert.
    route_del       the same without nhs
    label_add       label 16..2**20-1, nh 0..2**24-1          label_del: label
    vni_add         vni 0..2**24-1, vrf                       vni_del: vni
    policy_set      kind "vrf"|"vif", id (vrf 0..65535, vif 0..4095), rules (list <= 65,536 of
                    vrouter.policy rules: id 0..2**32-3, src?/dst? "any"|CIDR ="any" (same family),
                    proto? "any"|"tcp"|"udp"|"icmp"|"icmp6"|0..255 ="any", sport?/dport? "any"|port|[lo, hi]
                    ="any", direction? "ingress"|"egress"|"both" ="both", action "pass"|"deny", log? =false),
                    default? "pass"|"deny" ="pass"
    policy_del      kind, id
    get             table "vif"|"nh"|"label"|"vni"|"vrf"|"policy", id (that table's range); kind
                    "vrf"|"vif" for table policy only
    dump            table "vif"|"nh"|"label"|"vni"|"vrf"|"route"|"flow"|"policy", cursor? int|bytes|null
                    =null (the start), limit? 1..10000 =1000; table route only: vrf (required), family? =4
                    (others normalise both to null); static? bool =true (false: leave out what the node's
                    own configuration made, generation STATIC). Convention for the reply: {"items": [...],
                    "cursor": where to go on, null at the end}; a route page uses the columns of route_add
                    instead of items. A label item is {label, nh}, a VNI item {vni, vrf}.
    flow_delete     {"all": true}, or one flow's key: vrf, proto ("tcp"|"udp"|"icmp"|"icmp6"|0..255),
                    src, dst (same family), sport? =0, dport? =0 (ICMP: identifier, type)
    trace           vif 0..4095, frame bytes 14..9000
    route_lookup    vrf, address (IPv4 or IPv6): the route that matches and its next hop
    capture_start   vif, snaplen? =65535: copy frames received on / sent to the vif (one vif at a time)
    capture_read    {}: the frames captured since the last read; capture_stop {}
    digest          kinds? list of "vrf"|"vif"|"nh"|"label"|"vni"|"policy"|"route" =null (all): the tables'
                    digests in control/digest.py's canonical form, computed from the tables themselves
                    (routes from the LPM dumps), leaving out what the node's configuration made; reply:
                    {"digests": {kind: hex}, "counts": {kind: objects}, "routes": {"vrf/family": hex}}
                    ("routes": every non-empty route table, when route is asked for)
    Reply bodies other than hello's are the server's business; this module does not check them.

References (checked by the node before it changes anything: a request is applied whole or not at all)
    Every id a body names must exist, else ``not_found`` naming that field:
      vif_add, vif_update     vrf ("b.vrf"; a fabric vif's vrf is not checked)
      nh_add, nh_update       interface, tunnel: vif ("b.vif"); ecmp: each member ("b.members[i]");
                              vrf: vrf ("b.vrf"); nh_update, nh_del: the next hop itself ("b.id")
      route_add               vrf ("b.vrf"), each next hop ("b.nhs[i]", the first absent one)
      label_add               nh ("b.nh");   vni_add: vrf ("b.vrf")
      policy_set              id: the vrf or vif of its kind ("b.id")
      capture_start           vif ("b.vif")
    A next-hop id beyond the node's table (>= hello's limits.nexthops, though within the protocol's
    2**24) is ``invalid`` naming its field, in every op that takes one: nh_add/nh_update/nh_del's id,
    ecmp members, route_add's nhs, label_add's nh, get's id (table nh). A reference that exists but
    cannot serve is ``invalid`` too: an ECMP member that is ECMP or the group itself, a tunnel's vif that
    is not a fabric vif. Deleting what is still referenced is ``in_use`` naming the id: a next hop used
    by routes, labels or ECMP groups, a vif by next hops, a VRF by vifs, vrf next hops, VNIs or routes.

Python API
    encode_request(op, body, *, session, generation, sequence) -> bytes      (validates; ProtocolError)
    decode_request(payload) -> Request(version, session, generation, sequence, op, body)
        raises ProtocolError and nothing else, whatever the bytes; its .seq is the request's q once read
    encode_reply(seq, body=None) -> bytes; encode_error(seq, code, field, msg) -> bytes
    decode_reply(payload) -> Reply(seq, ok, body, error); Reply.result() = body or raise error
    validate_body(op, body) -> normalised body; OPS = {op: validator(body, path="b")}
    Another channel on the same envelope (control/node/channel.py) passes its own op table as ``ops=`` to
    encode_request, decode_request and validate_body.
    pack_routes(family, prefixes, nhs=None, *, vrf=None) -> wire body; unpack_routes(body) -> [(prefix, nh)]
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable

import msgpack
import numpy as np

from control import fields as F
from control.digest import KINDS as DIGEST_KINDS

__all__ = ["VERSION", "MAX_MESSAGE", "MAX_ROUTES", "ERROR_CODES", "OPS", "ProtocolError", "Request", "Reply",
           "encode_request", "decode_request", "encode_reply", "encode_error", "decode_reply", "validate_body",
           "pack_routes", "unpack_routes"]

VERSION = 1
MAX_MESSAGE = 64 << 20
MAX_STR = 1 << 20
MAX_ARRAY = 1 << 17
MAX_MAP = 1 << 16
MAX_ROUTES = 1_000_000
MAX_RULES = 65536
U63 = (1 << 63) - 1
VIF_MAX, NH_MAX, VNI_MAX = F.VIF_MAX, F.NH_MAX, F.VNI_MAX
LABEL_MIN, LABEL_MAX = F.LABEL_MIN, F.LABEL_MAX
RULE_ID_MAX = (1 << 32) - 3
NO_ROUTE = 0xFFFFFFFF

BAD_MESSAGE, UNSUPPORTED_VERSION, UNKNOWN_OP, INVALID = "bad_message", "unsupported_version", "unknown_op", "invalid"
NOT_FOUND, IN_USE, EXISTS, BUSY = "not_found", "in_use", "exists", "busy"
TOO_LARGE, STALE, INTERNAL = "too_large", "stale", "internal"
ERROR_CODES = frozenset({BAD_MESSAGE, UNSUPPORTED_VERSION, UNKNOWN_OP, INVALID, NOT_FOUND, IN_USE, EXISTS, BUSY,
                         TOO_LARGE, STALE, INTERNAL})


class ProtocolError(Exception):
    """code (one of ERROR_CODES), field (the path, e.g. "b.rules[2].dport", or None), msg. ``seq`` is the
    request's q when decode_request got that far (for the error reply), else None."""

    def __init__(self, code: str, field: str | None = None, msg: str = "", *, seq: int | None = None):
        super().__init__(code, field, msg)
        self.code, self.field, self.msg, self.seq = code, field, msg, seq

    def __str__(self):
        return ": ".join(x for x in (self.code, self.field, self.msg) if x)


@dataclass(frozen=True)
class Request:
    version: int
    session: str
    generation: int
    sequence: int
    op: str
    body: dict


@dataclass(frozen=True)
class Reply:
    seq: int | None
    ok: bool
    body: dict | None
    error: ProtocolError | None

    def result(self) -> dict:
        """The body, or raise the error."""
        if not self.ok:
            raise self.error
        return self.body


# ------------------------------------------------------------------ field checks
# A check is check(path, value) -> normalised value; it raises ProtocolError("invalid", path, why). The
# checks themselves are control.fields' (shared with node.yaml, the intent and the table facades).

REQ = object()          # schema default meaning "required"
_ABSENT = object()
_show, _is_int = F.show, F.is_int


def _bad(path, msg):
    raise ProtocolError(INVALID, path, msg)


def _f(fn, *args, **kw):
    """A protocol check from a control.fields checker: FieldError becomes ProtocolError("invalid")."""
    def check(p, v):
        try:
            return fn(p, v, *args, **kw)
        except F.FieldError as e:
            raise ProtocolError(INVALID, e.path, e.msg) from None
    return check


def _int(lo, hi):
    return _f(F.integer, lo, hi)


_bool = _f(F.boolean)


def _str(lo, hi, pattern=None, what="a string"):
    return _f(F.string, lo, hi, pattern, what)


def _enum(*choices):
    return _f(F.choice, choices)


def _mac(unicast=True):
    return _f(F.mac, unicast=unicast)


def _addr(version=None, unicast=True):
    check = _f(F.address, version, unicast=unicast)
    return lambda p, v: str(check(p, v))


def _net(p, v, version=None):
    """A strict CIDR string (host bits zero) or ip_network -> ip_network."""
    return _f(F.network, version)(p, v)


def _prefix(version=None):
    return lambda p, v: str(_net(p, v, version))


def _any_or(check):
    return lambda p, v: v if isinstance(v, str) and v == "any" else check(p, v)


def _iface(version):
    check = _f(F.interface, version)
    return lambda p, v: str(check(p, v))


def _bytes(lo, hi):
    def check(p, v):
        if not isinstance(v, (bytes, bytearray, memoryview)):
            _bad(p, f"must be bytes, got {_show(v)}")
        v = bytes(v)
        if not lo <= len(v) <= hi:
            _bad(p, f"must be {lo}..{hi} bytes, got {len(v)}")
        return v
    return check


def _list(item, lo, hi):
    def check(p, v):
        if not isinstance(v, (list, tuple)):
            _bad(p, f"must be a list, got {_show(v)}")
        if not lo <= len(v) <= hi:
            _bad(p, f"must have {lo}..{hi} items, got {len(v)}")
        return [item(f"{p}[{i}]", x) for i, x in enumerate(v)]
    return check


def _nullable(check):
    return lambda p, v: None if v is None else check(p, v)


def _fields(p, v, schema, known=(), why="unknown field"):
    """Check a map against {name: (check, default)}: unknown keys refused (``why`` for those in ``known``,
    the fields of another variant), REQ fields required, absent ones (or null where the default is
    null) get the default. Returns a new dict in schema order."""
    if not isinstance(v, dict):
        _bad(p, f"must be a map, got {_show(v)}")
    for k in v:
        if k not in schema:
            if not isinstance(k, str):
                _bad(p, f"map keys are strings, got {_show(k)}")
            _bad(f"{p}.{k}", why if k in known else "unknown field")
    out = {}
    for name, (check, default) in schema.items():
        x = v.get(name, _ABSENT)
        if x is _ABSENT or (x is None and default is None):
            if default is REQ:
                _bad(f"{p}.{name}", "required")
            out[name] = list(default) if isinstance(default, list) else default
        else:
            out[name] = check(f"{p}.{name}", x)
    return out


def _submap(schema, post=None):
    def check(p, v):
        out = _fields(p, v, schema)
        if post:
            post(p, out)
        return out
    return check


def _op(schema, post=None):
    check = _submap(schema, post)
    return lambda body, path="b": check(path, body)


def _select(p, v, name, check, default=REQ):
    """One field that picks the schema of the others, checked first."""
    if not isinstance(v, dict):
        _bad(p, f"must be a map, got {_show(v)}")
    if v.get(name) is None:
        if default is REQ:
            _bad(f"{p}.{name}", "required")
        return default
    return check(f"{p}.{name}", v[name])


VRF, VIF_ID, NH_ID = _int(0, F.VRF_MAX), _int(0, VIF_MAX), _int(0, NH_MAX)
LABEL, VNI, PORT = _int(LABEL_MIN, LABEL_MAX), _int(0, VNI_MAX), _int(0, 65535)
GENERATION = _int(0, U63)
ID_RANGES = {"vrf": (0, F.VRF_MAX), "vif": (0, VIF_MAX), "nh": (0, NH_MAX), "label": (LABEL_MIN, LABEL_MAX),
             "vni": (0, VNI_MAX)}


def _proto(any_ok):
    """A protocol name of control.fields.PROTOCOLS (kept as the name: the tables take names) or 0..255."""
    check = _f(F.proto, any_ok=any_ok)

    def proto(p, v):
        check(p, v)
        return v.lower() if isinstance(v, str) else int(v)
    return proto


def _ports(p, v):
    """A rule's sport/dport: "any", a port, or [lo, hi] inclusive (kept in the form given)."""
    lo, hi = _f(F.ports)(p, v)
    if isinstance(v, str) or _is_int(v):
        return v if isinstance(v, str) else int(v)
    return [lo, hi]


def _same_family(p, out, a="src", b="dst"):
    x, y = out[a], out[b]
    if x not in (None, "any") and y not in (None, "any") and \
            ipaddress.ip_network(x).version != ipaddress.ip_network(y).version:
        _bad(f"{p}.{b}", f"address family differs from {a} ({x})")


def _id_range(p, ident, kind):
    lo, hi = ID_RANGES[kind]
    if not lo <= ident <= hi:
        _bad(f"{p}.id", f"a {kind} id is {lo}..{hi}, got {ident}")


# ------------------------------------------------------------------ vifs

_TAP = {"name": (_f(F.ifname), REQ), "netns": (_f(F.netns_name), None),
        "pod_mac": (_mac(), REQ), "ip": (_iface(4), None), "ip6": (_iface(6), None),
        "default_route": (_bool, True), "routes": (_list(_prefix(), 0, 256), [])}
_VIF = {"id": (VIF_ID, REQ), "kind": (_enum("virtual", "fabric", "host"), REQ), "vrf": (VRF, 0),
        "mac": (_mac(), REQ), "mtu": (_int(68, 65535), 1500), "vlan": (_int(0, 4094), 0),
        "policy": (_bool, False), "admin_down": (_bool, False), "gw4": (_addr(4), None), "gw6": (_addr(6), None),
        "prefixes": (_list(_prefix(), 0, 8), []), "tap": (_submap(_TAP), None)}


def _vif_post(p, b):
    if b["tap"] is not None and b["kind"] != "virtual":
        _bad(f"{p}.tap", f"only a virtual vif has a device, this one is {b['kind']}")
    if b["kind"] == "fabric":
        for i, x in enumerate(b["prefixes"]):
            net = ipaddress.ip_network(x)
            if net.prefixlen != net.max_prefixlen:
                _bad(f"{p}.prefixes[{i}]", f"a fabric vif lists the node's own addresses (/32 or /128), got {x}")


# ------------------------------------------------------------------ next hops

_TUNNEL = {"vif": (VIF_ID, REQ), "dmac": (_mac(), REQ), "smac": (_mac(), None),
           "encap": (_enum("vxlan", "mplsoudp"), "vxlan"), "src": (_addr(), REQ), "dst": (_addr(), REQ)}
_NH_HEAD = {"id": (NH_ID, REQ), "type": (_enum("discard", "receive", "interface", "tunnel", "ecmp", "vrf"), REQ)}
_NH_SCHEMAS = {k: {**_NH_HEAD, **s} for k, s in {
    "discard": {}, "receive": {},
    "interface": {"vif": (VIF_ID, REQ), "dmac": (_mac(unicast=False), REQ), "smac": (_mac(), None)},
    ("tunnel", "vxlan"): {**_TUNNEL, "vni": (VNI, REQ), "inner_dmac": (_mac(), None), "ttl": (_int(0, 255), 0)},
    ("tunnel", "mplsoudp"): {**_TUNNEL, "label": (LABEL, REQ), "ttl": (_int(0, 255), 0)},
    "ecmp": {"members": (_list(_nullable(NH_ID), 1, 64), REQ)},
    "vrf": {"vrf": (VRF, REQ)},
}.items()}
_NH_KNOWN = frozenset().union(*_NH_SCHEMAS.values())


def _nh(body, path="b"):
    t = _select(path, body, "type", _NH_HEAD["type"][0])
    if t != "tunnel":
        out = _fields(path, body, _NH_SCHEMAS[t], _NH_KNOWN, f"not used by type {t}")
    else:
        encap = _select(path, body, "encap", _TUNNEL["encap"][0], "vxlan")
        out = _fields(path, body, _NH_SCHEMAS[t, encap], _NH_KNOWN, f"not used by encap {encap}")
        if ipaddress.ip_address(out["src"]).version != ipaddress.ip_address(out["dst"]).version:
            _bad(f"{path}.dst", f"address family differs from src ({out['src']})")
    return out


# ------------------------------------------------------------------ routes (columnar)

_ALL32, _ALL64 = np.uint32(0xFFFFFFFF), np.uint64(0xFFFFFFFFFFFFFFFF)


def _columns(p, family, addrs, lens, nhs=None):
    """Check the route columns (bytes) and return (addrs, lens, nhs) as numpy arrays; vectorised."""
    n, width, bits = len(lens), (4 if family == 4 else 16), (32 if family == 4 else 128)
    if not 1 <= n <= MAX_ROUTES:
        _bad(f"{p}.lens", f"1..{MAX_ROUTES} routes per message, got {n}")
    if len(addrs) != n * width:
        _bad(f"{p}.addrs", f"{n} routes need {n * width} bytes ({width} per route), got {len(addrs)}")
    if nhs is not None and len(nhs) != 4 * n:
        _bad(f"{p}.nhs", f"{n} routes need {4 * n} bytes (4 per route), got {len(nhs)}")
    ln = np.frombuffer(lens, np.uint8)
    bad = np.flatnonzero(ln > bits)
    if bad.size:
        _bad(f"{p}.lens[{bad[0]}]", f"/{ln[bad[0]]} is longer than {bits} bits")
    if family == 4:
        a = np.frombuffer(addrs, ">u4").astype(np.uint32)
        host = np.where(ln >= 32, np.uint32(0), _ALL32 >> np.minimum(ln, 31).astype(np.uint32))
        bad = np.flatnonzero(a & host)
    else:
        a = np.frombuffer(addrs, np.uint8).reshape(n, 16)
        hl = np.frombuffer(addrs, ">u8").reshape(n, 2).astype(np.uint64)
        l64 = ln.astype(np.uint64)
        hi = np.where(l64 >= 64, np.uint64(0), _ALL64 >> np.minimum(l64, np.uint64(63)))
        lo = np.where(l64 >= 128, np.uint64(0), _ALL64 >> (np.clip(l64, 64, 127) - np.uint64(64)))
        bad = np.flatnonzero((hl[:, 0] & hi) | (hl[:, 1] & lo))
    if bad.size:
        i = int(bad[0])
        addr = ipaddress.ip_address(bytes(addrs[i * width:(i + 1) * width]))
        _bad(f"{p}.addrs[{i}]", f"host bits set for /{ln[i]} ({addr}/{ln[i]})")
    if nhs is None:
        return a, ln, None
    nh = np.frombuffer(nhs, "<u4").astype(np.uint32, copy=False)
    bad = np.flatnonzero(nh == NO_ROUTE)
    if bad.size:
        _bad(f"{p}.nhs[{bad[0]}]", "0xffffffff is NO_ROUTE; next hops are 0..0xfffffffe")
    return a, ln, nh


def _routes(with_nhs):
    cols = ("addrs", "lens", "nhs") if with_nhs else ("addrs", "lens")
    schema = {"vrf": (VRF, REQ), "family": (_enum(4, 6), REQ),
              **{c: (_bytes(0, MAX_MESSAGE), REQ) for c in cols}}

    def check(body, path="b"):
        out = _fields(path, body, schema)
        a, ln, nh = _columns(path, out["family"], out["addrs"], out["lens"], out.get("nhs"))
        out.update(addrs=a, lens=ln)
        if with_nhs:
            out["nhs"] = nh
        return out
    return check


def pack_routes(family: int, prefixes, nhs=None, *, vrf: int | None = None) -> dict:
    """Columnar route_add (nhs given) or route_del body from CIDR strings / ip_network objects and next-hop
    ids; "vrf" is included when given. Raises ProtocolError("invalid", "prefixes[i]" / "nhs", ...)."""
    _enum(4, 6)("family", family)
    nets = [_net(f"prefixes[{i}]", x, family) for i, x in enumerate(prefixes)]
    body = {} if vrf is None else {"vrf": vrf}
    body.update(family=family, addrs=b"".join(n.network_address.packed for n in nets),
                lens=bytes(n.prefixlen for n in nets))
    if nhs is not None:
        arr = np.asarray(nhs)
        if arr.shape != (len(nets),) or (arr.size and arr.dtype.kind not in "iu"):
            _bad("nhs", f"need {len(nets)} next-hop ids, got {_show(nhs)}")
        if arr.size and (arr.min() < 0 or arr.max() > NO_ROUTE - 1):
            _bad("nhs", "next hops are 0..0xfffffffe")
        body["nhs"] = arr.astype("<u4").tobytes()
    return body


def unpack_routes(body: dict) -> list[tuple[str, int | None]]:
    """[(prefix, nh or None)] from a route body, on the wire (bytes) or normalised (numpy)."""
    family, addrs, lens, nhs = body["family"], body["addrs"], body["lens"], body.get("nhs")
    if isinstance(lens, (bytes, bytearray, memoryview)):
        addrs, lens, nhs = _columns("b", family, bytes(addrs), bytes(lens), None if nhs is None else bytes(nhs))
    net = ipaddress.IPv4Network if family == 4 else ipaddress.IPv6Network
    keys = (int(a) for a in addrs) if family == 4 else (bytes(a) for a in addrs)
    nhl = [None] * len(lens) if nhs is None else [int(x) for x in nhs]
    return [(str(net((k, int(ln)))), h) for k, ln, h in zip(keys, lens, nhl)]


# ------------------------------------------------------------------ policy, get, dump, flows

_RULE = {"id": (_int(0, RULE_ID_MAX), REQ), "src": (_any_or(_prefix()), "any"), "dst": (_any_or(_prefix()), "any"),
         "proto": (_proto(True), "any"), "sport": (_ports, "any"), "dport": (_ports, "any"),
         "direction": (_enum("ingress", "egress", "both"), "both"), "action": (_enum("pass", "deny"), REQ),
         "log": (_bool, False)}
_KIND = _enum("vrf", "vif")


def _policy_post(p, b):
    _id_range(p, b["id"], b["kind"])


def _get_post(p, b):
    if b["table"] == "policy":
        if b["kind"] is None:
            _bad(f"{p}.kind", "required for table policy (vrf or vif)")
        _id_range(p, b["id"], b["kind"])
    elif b["kind"] is not None:
        _bad(f"{p}.kind", "only for table policy")
    else:
        _id_range(p, b["id"], b["table"])


def _dump_post(p, b):
    if b["table"] == "route":
        if b["vrf"] is None:
            _bad(f"{p}.vrf", "required for table route")
        b["family"] = b["family"] or 4
    else:
        for k in ("vrf", "family"):
            if b[k] is not None:
                _bad(f"{p}.{k}", "only for table route")


_FLOW_KEY = ("vrf", "proto", "src", "dst")


def _flow_post(p, b):
    given = [k for k in _FLOW_KEY + ("sport", "dport") if b[k] is not None]
    if b["all"] is not None:
        if given:
            _bad(f"{p}.{given[0]}", "give either all or a flow key, not both")
        if not b["all"]:
            _bad(f"{p}.all", "must be true (to delete one flow, give its key)")
        b.clear()
        b["all"] = True
        return
    for k in _FLOW_KEY:
        if b[k] is None:
            _bad(f"{p}.{k}", "required (or give all: true)")
    _same_family(p, b)
    del b["all"]
    b["sport"], b["dport"] = b["sport"] or 0, b["dport"] or 0


def _cursor(p, v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _bytes(0, 256)(p, v)
    if _is_int(v) and 0 <= v < 1 << 64:
        return int(v)
    _bad(p, f"must be null, an integer 0..2**64-1 or bytes, got {_show(v)}")


OPS: dict[str, Callable[..., dict]] = {
    "hello": _op({"agent": (_str(1, 64), REQ), "session": (_str(1, 64), REQ), "generation": (GENERATION, REQ)}),
    "ping": _op({}), "stats": _op({}), "drop_stats": _op({}),
    "snapshot_begin": _op({"generation": (_int(1, U63), REQ)}),
    "snapshot_end": _op({"generation": (_int(1, U63), REQ)}),
    "vrf_add": _op({"vrf": (VRF, REQ), "name": (_str(1, 64), None)}),
    "vrf_del": _op({"vrf": (VRF, REQ)}),
    "vif_add": _op(_VIF, _vif_post), "vif_update": _op(_VIF, _vif_post), "vif_del": _op({"id": (VIF_ID, REQ)}),
    "nh_add": _nh, "nh_update": _nh, "nh_del": _op({"id": (NH_ID, REQ)}),
    "route_add": _routes(True), "route_del": _routes(False),
    "label_add": _op({"label": (LABEL, REQ), "nh": (NH_ID, REQ)}), "label_del": _op({"label": (LABEL, REQ)}),
    "vni_add": _op({"vni": (VNI, REQ), "vrf": (VRF, REQ)}), "vni_del": _op({"vni": (VNI, REQ)}),
    "policy_set": _op({"kind": (_KIND, REQ), "id": (VRF, REQ),
                       "rules": (_list(_submap(_RULE, _same_family), 0, MAX_RULES), REQ),
                       "default": (_enum("pass", "deny"), "pass")}, _policy_post),
    "policy_del": _op({"kind": (_KIND, REQ), "id": (VRF, REQ)}, _policy_post),
    "get": _op({"table": (_enum("vif", "nh", "label", "vni", "vrf", "policy"), REQ), "id": (_int(0, NH_MAX), REQ),
                "kind": (_KIND, None)}, _get_post),
    "dump": _op({"table": (_enum("vif", "nh", "label", "vni", "vrf", "route", "flow", "policy"), REQ),
                 "cursor": (_cursor, None), "limit": (_int(1, 10000), 1000), "vrf": (VRF, None),
                 "family": (_enum(4, 6), None), "static": (_bool, True)}, _dump_post),
    "flow_delete": _op({"all": (_bool, None), "vrf": (VRF, None), "proto": (_proto(False), None),
                        "src": (_addr(unicast=False), None), "dst": (_addr(unicast=False), None),
                        "sport": (PORT, None), "dport": (PORT, None)}, _flow_post),
    "trace": _op({"vif": (VIF_ID, REQ), "frame": (_bytes(14, 9000), REQ)}),
    "route_lookup": _op({"vrf": (VRF, REQ), "address": (_addr(None, unicast=False), REQ)}),
    "capture_start": _op({"vif": (VIF_ID, REQ), "snaplen": (_int(1, 65535), 65535)}),
    "capture_read": _op({}), "capture_stop": _op({}),
    "digest": _op({"kinds": (_list(_enum(*DIGEST_KINDS), 1, len(DIGEST_KINDS)), None)}),
}


def validate_body(op: str, body, ops: dict | None = None) -> dict:
    """The op's body checked and normalised (defaults filled; routes as numpy); ProtocolError("invalid",
    "b.<path>", why) or ("unknown_op", "op", ...). ``ops``: another channel's op table (default OPS)."""
    check = (OPS if ops is None else ops).get(op) if isinstance(op, str) else None
    if check is None:
        raise ProtocolError(UNKNOWN_OP, "op", f"unknown op {_show(op)}")
    return check(body)


# ------------------------------------------------------------------ envelopes

def _no_ext(code, data):
    raise ValueError(f"msgpack ext type {code} not allowed")


def _unpack(payload):
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ProtocolError(BAD_MESSAGE, None, f"a payload is bytes, got {_show(payload)}")
    n = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    if n > MAX_MESSAGE:
        raise ProtocolError(TOO_LARGE, None, f"{n} bytes, more than {MAX_MESSAGE}")
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=True, max_bin_len=n,
                               max_str_len=min(n, MAX_STR), max_array_len=min(n, MAX_ARRAY),
                               max_map_len=min(n // 2, MAX_MAP), max_ext_len=0, ext_hook=_no_ext)
    except Exception as e:  # noqa: BLE001 - whatever the unpacker says, it is not a message
        raise ProtocolError(BAD_MESSAGE, None, f"not a msgpack message ({type(e).__name__}: {str(e)[:120]})") \
            from None


def _pack(obj, field):
    try:
        data = msgpack.packb(obj, use_bin_type=True)
    except Exception as e:  # noqa: BLE001 - an unencodable value
        raise ProtocolError(INVALID, field, f"cannot encode ({type(e).__name__}: {str(e)[:120]})") from None
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(TOO_LARGE, None, f"{len(data)} bytes, more than {MAX_MESSAGE}")
    return data


def _version(m):
    v = m.get("v")
    if not _is_int(v):
        raise ProtocolError(BAD_MESSAGE, "v", f"the version must be an integer, got {_show(v)}")
    if v != VERSION:
        raise ProtocolError(UNSUPPORTED_VERSION, "v", f"version {v} is not supported (this end speaks {VERSION})")


def _seq(m, key="q"):
    q = m.get(key)
    return int(q) if _is_int(q) and 0 <= q <= U63 else None


_ENVELOPE = {"s": _str(1, 64), "g": GENERATION, "q": GENERATION}
_REQUEST_KEYS = ("v", "s", "g", "q", "op", "b")


def _check_envelope(m):
    for k in m:
        if k not in _REQUEST_KEYS:
            raise ProtocolError(BAD_MESSAGE, k if isinstance(k, str) else None, f"unknown envelope key {_show(k)}")
    for k in _REQUEST_KEYS:
        if k not in m:
            raise ProtocolError(BAD_MESSAGE, k, "missing from the envelope")
    try:
        for k, check in _ENVELOPE.items():
            check(k, m[k])
    except ProtocolError as e:
        raise ProtocolError(BAD_MESSAGE, e.field, e.msg) from None
    if not isinstance(m["op"], str):
        raise ProtocolError(BAD_MESSAGE, "op", f"must be a string, got {_show(m['op'])}")


def encode_request(op: str, body: dict, *, session: str, generation: int, sequence: int,
                   ops: dict | None = None) -> bytes:
    """A request payload; the body is validated first (ProtocolError as decode_request would raise)."""
    m = {"v": VERSION, "s": session, "g": generation, "q": sequence, "op": op, "b": body}
    _check_envelope(m)
    validate_body(op, body, ops)
    return _pack(m, "b")


def decode_request(payload, ops: dict | None = None) -> Request:
    """A request from its payload, body normalised; raises ProtocolError and nothing else, with .seq set
    once the request's q could be read. ``ops``: another channel's op table (default OPS)."""
    m = _unpack(payload)
    if not isinstance(m, dict):
        raise ProtocolError(BAD_MESSAGE, None, f"an envelope is a map, got {_show(m)}")
    seq = _seq(m)
    try:
        _version(m)
        _check_envelope(m)
        body = validate_body(m["op"], m["b"], ops)
        return Request(VERSION, m["s"], m["g"], m["q"], m["op"], body)
    except ProtocolError as e:
        e.seq = seq
        raise
    except Exception as e:  # noqa: BLE001 - a validator bug must not escape as anything else
        raise ProtocolError(INTERNAL, None, f"{type(e).__name__}: {str(e)[:120]}", seq=seq) from e


def encode_reply(seq: int, body: dict | None = None) -> bytes:
    """A success reply; body a map with string keys (None = {})."""
    body = {} if body is None else body
    GENERATION("q", seq)
    if not isinstance(body, dict):
        _bad("b", f"a reply body is a map, got {_show(body)}")
    return _pack({"v": VERSION, "q": seq, "ok": True, "b": body}, "b")


def encode_error(seq: int | None, code: str, field: str | None, msg: str) -> bytes:
    """An error reply; seq None when the request's q is unknown."""
    if seq is not None:
        GENERATION("q", seq)
    if code not in ERROR_CODES:
        _bad("err.code", f"must be one of {', '.join(sorted(ERROR_CODES))}, got {_show(code)}")
    if field is not None and not isinstance(field, str):
        _bad("err.field", f"must be a string or null, got {_show(field)}")
    if not isinstance(msg, str):
        _bad("err.msg", f"must be a string, got {_show(msg)}")
    return _pack({"v": VERSION, "q": seq, "ok": False, "err": {"code": code, "field": field, "msg": msg}}, "err")


def decode_reply(payload) -> Reply:
    """A reply from its payload; ProtocolError("bad_message" / "unsupported_version" / "too_large") for
    anything else. Unknown error codes are kept (a newer server may add some)."""
    m = _unpack(payload)
    if not isinstance(m, dict):
        raise ProtocolError(BAD_MESSAGE, None, f"a reply is a map, got {_show(m)}")
    _version(m)
    ok = m.get("ok")
    if not isinstance(ok, bool):
        raise ProtocolError(BAD_MESSAGE, "ok", f"must be true or false, got {_show(ok)}")
    keys = ("v", "q", "ok", "b" if ok else "err")
    if len(m) != len(keys) or any(k not in m for k in keys):
        raise ProtocolError(BAD_MESSAGE, None, f"a{' success' if ok else 'n error'} reply has keys {', '.join(keys)}")
    seq = _seq(m)
    if seq is None and (m["q"] is not None or ok):
        raise ProtocolError(BAD_MESSAGE, "q", f"must be an integer 0..{U63}, got {_show(m['q'])}")
    if ok:
        if not isinstance(m["b"], dict):
            raise ProtocolError(BAD_MESSAGE, "b", f"must be a map, got {_show(m['b'])}")
        return Reply(seq, True, m["b"], None)
    err = m["err"]
    if not isinstance(err, dict) or len(err) != 3 or not isinstance(err.get("code"), str) or \
            not isinstance(err.get("msg"), str) or not isinstance(err.get("field", 0), (str, type(None))) or \
            not 1 <= len(err["code"]) <= 64:
        raise ProtocolError(BAD_MESSAGE, "err", "must be {code: str, field: str|null, msg: str}")
    return Reply(seq, False, None, ProtocolError(err["code"], err["field"], err["msg"], seq=seq))

