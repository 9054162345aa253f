"""The control channel's wire protocol (control/protocol.py): every op's bodies round trip through
encode_request/decode_request (hypothesis), bad bodies are refused naming the exact field, the columnar
routes (pack/unpack, host bits, limits, a 1,000,000-route message), replies, and fuzzing: whatever the
bytes, decoding raises ProtocolError or returns a valid message, never anything else."""
import ipaddress
import random
import subprocess
import sys
import time
import tracemalloc

import msgpack
import numpy as np
import pytest
from hypothesis import given, strategies as st

from control import protocol as P
from control.protocol import (ERROR_CODES, MAX_MESSAGE, MAX_ROUTES, OPS, VERSION, ProtocolError, decode_reply,
                              decode_request, encode_error, encode_reply, encode_request, pack_routes, unpack_routes,
                              validate_body)

ENV = dict(session="agent-1", generation=7, sequence=42)
ROUTE_OPS = ("route_add", "route_del")
U63 = 2 ** 63 - 1

# ------------------------------------------------------------------ strategies: valid bodies


def mac_str(b):
    return ":".join(f"{x:02x}" for x in b)


any_macs = st.binary(min_size=6, max_size=6).filter(any).map(mac_str)
macs = st.binary(min_size=6, max_size=6).map(lambda b: bytes([b[0] & 0xFE]) + b[1:]).filter(any).map(mac_str) \
    .flatmap(lambda m: st.sampled_from([m, m.upper()]))
ip4 = st.one_of(*[st.ip_addresses(network=n) for n in ("10.0.0.0/8", "192.0.2.0/24", "100.64.0.0/10")]).map(str)
ip6 = st.one_of(*[st.ip_addresses(network=n) for n in ("2001:db8::/32", "fd00::/8", "fe80::/10")]).map(str)
vrfs, vif_ids, nh_ids = st.integers(0, 65535), st.integers(0, 4095), st.integers(0, 2 ** 24 - 1)
labels, vnis, u63 = st.integers(16, 2 ** 20 - 1), st.integers(0, 2 ** 24 - 1), st.integers(0, U63)
names = st.text(min_size=1, max_size=64)
ifnames = st.from_regex(r"[A-Za-z0-9_.\-]{1,15}", fullmatch=True).filter(lambda s: s not in (".", ".."))
netns = st.text(st.characters(exclude_characters="/\x00"), min_size=1, max_size=40) \
    .filter(lambda s: s not in (".", ".."))


def networks(version, lens=None):
    bits, net = (32, ipaddress.IPv4Network) if version == 4 else (128, ipaddress.IPv6Network)
    return st.builds(lambda a, n: net((int(a), n), strict=False), st.ip_addresses(v=version),
                     st.integers(0, bits) if lens is None else lens).filter(
        lambda n: n.version == 4 or n.network_address.ipv4_mapped is None)


def prefixes(version, host=False):
    return networks(version, st.just(32 if version == 4 else 128) if host else None).map(str)


def optional(mapping):
    """Optional fields that may also be given as null (= absent)."""
    return {k: st.none() | v for k, v in mapping.items()}


taps = st.fixed_dictionaries({"name": ifnames, "pod_mac": macs},
                             optional=optional({"netns": netns, "ip": ip4.map(lambda a: a + "/24"),
                                                "ip6": ip6.map(lambda a: a + "/64")}))


@st.composite
def vif_bodies(draw):
    kind = draw(st.sampled_from(["virtual", "fabric", "host"]))
    pfx = st.one_of(prefixes(4, kind == "fabric"), prefixes(6, kind == "fabric"))
    opt = {"vrf": vrfs, "mtu": st.integers(68, 65535), "vlan": st.integers(0, 4094), "policy": st.booleans(),
           "admin_down": st.booleans(), "prefixes": st.lists(pfx, max_size=8)}
    nullable = {"gw4": ip4, "gw6": ip6, **({"tap": taps} if kind == "virtual" else {})}
    return draw(st.fixed_dictionaries({"id": vif_ids, "kind": st.just(kind), "mac": macs},
                                      optional={**opt, **optional(nullable)}))


@st.composite
def nh_bodies(draw):
    t = draw(st.sampled_from(["discard", "receive", "interface", "tunnel", "ecmp", "vrf"]))
    req, opt = {"id": nh_ids, "type": st.just(t)}, {}
    if t == "interface":
        req.update(vif=vif_ids, dmac=any_macs)
        opt = optional({"smac": macs})
    elif t == "tunnel":
        src, dst = draw(st.sampled_from([(ip4, ip4), (ip6, ip6)]))
        encap = draw(st.sampled_from(["vxlan", "mplsoudp"]))
        req.update(vif=vif_ids, dmac=macs, src=src, dst=dst)
        opt = {"ttl": st.integers(0, 255), **optional({"smac": macs})}
        if encap == "vxlan":
            req["vni"] = vnis
            opt.update(optional({"inner_dmac": macs}))
            opt["encap"] = st.just("vxlan")
        else:
            req.update(encap=st.just("mplsoudp"), label=labels)
    elif t == "ecmp":
        req["members"] = st.lists(st.none() | nh_ids, min_size=1, max_size=64)
    elif t == "vrf":
        req["vrf"] = vrfs
    return draw(st.fixed_dictionaries(req, optional=opt))


@st.composite
def route_bodies(draw, with_nhs):
    fam = draw(st.sampled_from([4, 6]))
    nets = draw(st.lists(networks(fam), min_size=1, max_size=40))
    nhs = draw(st.lists(st.integers(0, 0xFFFFFFFE), min_size=len(nets), max_size=len(nets))) if with_nhs else None
    return pack_routes(fam, [str(n) for n in nets], nhs, vrf=draw(vrfs))


ports = st.one_of(st.just("any"), st.integers(0, 65535),
                  st.lists(st.integers(0, 65535), min_size=2, max_size=2).map(sorted))


@st.composite
def rules(draw):
    fam = draw(st.sampled_from([4, 6]))
    side = st.just("any") | prefixes(fam)
    return draw(st.fixed_dictionaries(
        {"id": st.integers(0, 2 ** 32 - 3), "action": st.sampled_from(["pass", "deny"])},
        optional={"src": side, "dst": side, "proto": st.sampled_from(["any", "tcp", "udp", "icmp", "icmp6"]) |
                  st.integers(0, 255), "sport": ports, "dport": ports,
                  "direction": st.sampled_from(["ingress", "egress", "both"]), "log": st.booleans()}))


@st.composite
def policy_bodies(draw, with_rules):
    kind = draw(st.sampled_from(["vrf", "vif"]))
    body = {"kind": kind, "id": draw(vrfs if kind == "vrf" else vif_ids)}
    if with_rules:
        body["rules"] = draw(st.lists(rules(), max_size=8))
        if draw(st.booleans()):
            body["default"] = draw(st.sampled_from(["pass", "deny"]))
    return body


ID_STRATEGIES = {"vif": vif_ids, "nh": nh_ids, "label": labels, "vni": vnis, "vrf": vrfs}


@st.composite
def get_bodies(draw):
    table = draw(st.sampled_from(["vif", "nh", "label", "vni", "vrf", "policy"]))
    if table == "policy":
        kind = draw(st.sampled_from(["vrf", "vif"]))
        return {"table": table, "kind": kind, "id": draw(ID_STRATEGIES[kind])}
    return {"table": table, "id": draw(ID_STRATEGIES[table])}


@st.composite
def dump_bodies(draw):
    table = draw(st.sampled_from(["vif", "nh", "label", "vni", "vrf", "route", "flow", "policy"]))
    opt = {"cursor": st.none() | st.integers(0, 2 ** 64 - 1) | st.binary(max_size=256),
           "limit": st.integers(1, 10000), "static": st.booleans()}
    req = {"table": st.just(table)}
    if table == "route":
        req["vrf"] = vrfs
        opt["family"] = st.none() | st.sampled_from([4, 6])
    return draw(st.fixed_dictionaries(req, optional=opt))


@st.composite
def flow_delete_bodies(draw):
    if draw(st.booleans()):
        return {"all": True}
    src, dst = draw(st.sampled_from([(ip4, ip4), (ip6, ip6)]))
    return draw(st.fixed_dictionaries(
        {"vrf": vrfs, "proto": st.sampled_from(["tcp", "udp", "icmp", "icmp6"]) | st.integers(0, 255),
         "src": src, "dst": dst}, optional=optional({"sport": st.integers(0, 65535), "dport": st.integers(0, 65535)})))


def fd(**kw):
    return st.fixed_dictionaries(kw)


BODIES = {
    "hello": fd(agent=names, session=names, generation=u63),
    "ping": st.just({}), "stats": st.just({}), "drop_stats": st.just({}),
    "snapshot_begin": fd(generation=st.integers(1, U63)), "snapshot_end": fd(generation=st.integers(1, U63)),
    "vrf_add": st.fixed_dictionaries({"vrf": vrfs}, optional=optional({"name": names})), "vrf_del": fd(vrf=vrfs),
    "vif_add": vif_bodies(), "vif_update": vif_bodies(), "vif_del": fd(id=vif_ids),
    "nh_add": nh_bodies(), "nh_update": nh_bodies(), "nh_del": fd(id=nh_ids),
    "route_add": route_bodies(True), "route_del": route_bodies(False),
    "label_add": fd(label=labels, nh=nh_ids), "label_del": fd(label=labels),
    "vni_add": fd(vni=vnis, vrf=vrfs), "vni_del": fd(vni=vnis),
    "policy_set": policy_bodies(True), "policy_del": policy_bodies(False),
    "get": get_bodies(), "dump": dump_bodies(), "flow_delete": flow_delete_bodies(),
    "trace": fd(vif=vif_ids, frame=st.binary(min_size=14, max_size=9000)),
    "capture_start": fd(vif=vif_ids, snaplen=st.integers(1, 65535)), "capture_read": fd(),
    "capture_stop": fd(),
    "digest": st.fixed_dictionaries({}, optional={"kinds": st.lists(st.sampled_from(
        ["vrf", "vif", "nh", "label", "vni", "policy", "route"]), min_size=1, max_size=7)}),
    "route_lookup": fd(vrf=vrfs, address=st.ip_addresses().map(str)
                       .filter(lambda a: ipaddress.ip_address(a).version == 4 or
                               ipaddress.ip_address(a).ipv4_mapped is None)),
}
envelopes = st.fixed_dictionaries({"session": names, "generation": u63, "sequence": u63})


def same_body(a, b):
    """Equality that understands the numpy columns of normalised route bodies."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and \
            a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_body(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# ------------------------------------------------------------------ round trips

def test_every_op_has_a_strategy():
    assert set(BODIES) == set(OPS)


@pytest.mark.parametrize("op", sorted(OPS))
@given(data=st.data())
def test_request_round_trip(op, data):
    body, env = data.draw(BODIES[op]), data.draw(envelopes)
    expected = validate_body(op, body)
    req = decode_request(encode_request(op, body, **env))
    assert (req.version, req.session, req.generation, req.sequence, req.op) == \
        (VERSION, env["session"], env["generation"], env["sequence"], op)
    assert same_body(req.body, expected)
    if op in ROUTE_OPS:
        assert unpack_routes(req.body) == unpack_routes(body)
    else:   # the normalised body is a valid body with the same normalisation
        assert validate_body(op, expected) == expected
        assert decode_request(encode_request(op, expected, **env)) == req


@given(seq=u63, body=st.dictionaries(st.text(max_size=8), st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 64 - 1) | st.floats(allow_nan=False) | st.text() |
    st.binary(), lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20)))
def test_reply_round_trip(seq, body):
    r = decode_reply(encode_reply(seq, body))
    assert (r.seq, r.ok, r.body, r.error) == (seq, True, body, None)
    assert r.result() == body


@given(seq=st.none() | u63, code=st.sampled_from(sorted(ERROR_CODES)), field=st.none() | st.text(),
       msg=st.text())
def test_error_round_trip(seq, code, field, msg):
    r = decode_reply(encode_error(seq, code, field, msg))
    assert (r.seq, r.ok, r.body) == (seq, False, None)
    assert (r.error.code, r.error.field, r.error.msg, r.error.seq) == (code, field, msg, seq)
    with pytest.raises(ProtocolError) as e:
        r.result()
    assert e.value is r.error


def test_empty_reply_body():
    assert decode_reply(encode_reply(3)).body == {}


def test_error_str():
    assert str(ProtocolError("invalid", "b.rules[2].dport", "inverted port range 443..80")) == \
        "invalid: b.rules[2].dport: inverted port range 443..80"
    assert str(ProtocolError("busy", None, "queue full")) == "busy: queue full"


# ------------------------------------------------------------------ normalisation

def test_vif_defaults():
    b = validate_body("vif_add", {"id": 2, "kind": "virtual", "mac": "02:AA:00:00:00:01",
                                  "tap": {"name": "tap-pod1", "pod_mac": "52:54:00:00:00:02", "ip": "10.1.0.2/24"}})
    assert b == {"id": 2, "kind": "virtual", "vrf": 0, "mac": "02:aa:00:00:00:01", "mtu": 1500, "vlan": 0,
                 "policy": False, "admin_down": False, "gw4": None, "gw6": None, "prefixes": [],
                 "tap": {"name": "tap-pod1", "netns": None, "pod_mac": "52:54:00:00:00:02", "ip": "10.1.0.2/24",
                         "ip6": None, "default_route": True, "routes": []}}
    with pytest.raises(ProtocolError) as e:
        validate_body("vif_add", {"id": 2, "kind": "virtual", "mac": "02:aa:00:00:00:01",
                                  "tap": {"name": "t", "pod_mac": "52:54:00:00:00:02", "routes": ["10.9.0.1/16"]}})
    assert e.value.field == "b.tap.routes[0]"


def test_nh_defaults_per_type():
    tun = {"id": 11, "type": "tunnel", "vif": 1, "dmac": "02:00:00:00:00:fe", "src": "192.0.2.1",
           "dst": "192.0.2.7", "vni": 5005}
    assert validate_body("nh_add", tun) == {**tun, "smac": None, "encap": "vxlan", "inner_dmac": None, "ttl": 0}
    assert list(validate_body("nh_add", tun)) == ["id", "type", "vif", "dmac", "smac", "encap", "src", "dst",
                                                  "vni", "inner_dmac", "ttl"]
    mpls = {**tun, "encap": "mplsoudp", "label": 100, "src": "2001:db8::1", "dst": "2001:DB8::7"}
    del mpls["vni"]
    assert validate_body("nh_add", mpls) == {**mpls, "dst": "2001:db8::7", "smac": None, "ttl": 0}
    assert validate_body("nh_add", {"id": 1, "type": "discard"}) == {"id": 1, "type": "discard"}
    assert validate_body("nh_add", {"id": 3, "type": "interface", "vif": 2, "dmac": "FF:FF:FF:FF:FF:FF"}) == \
        {"id": 3, "type": "interface", "vif": 2, "dmac": "ff:ff:ff:ff:ff:ff", "smac": None}
    assert validate_body("nh_add", {"id": 4, "type": "ecmp", "members": (1, None, 2)})["members"] == [1, None, 2]


def test_other_defaults():
    assert validate_body("dump", {"table": "route", "vrf": 3}) == \
        {"table": "route", "cursor": None, "limit": 1000, "vrf": 3, "family": 4, "static": True}
    assert validate_body("dump", {"table": "flow", "cursor": 7}) == \
        {"table": "flow", "cursor": 7, "limit": 1000, "vrf": None, "family": None, "static": True}
    assert validate_body("digest", {}) == {"kinds": None}
    assert validate_body("flow_delete", {"vrf": 1, "proto": "icmp", "src": "10.0.0.1", "dst": "10.0.0.2"}) == \
        {"vrf": 1, "proto": "icmp", "src": "10.0.0.1", "dst": "10.0.0.2", "sport": 0, "dport": 0}
    assert validate_body("flow_delete", {"all": True}) == {"all": True}
    assert validate_body("policy_set", {"kind": "vif", "id": 3, "rules": [{"id": 1, "action": "deny",
                                                                           "dport": (80, 443)}]}) == \
        {"kind": "vif", "id": 3, "default": "pass", "rules": [
            {"id": 1, "src": "any", "dst": "any", "proto": "any", "sport": "any", "dport": [80, 443],
             "direction": "both", "action": "deny", "log": False}]}
    assert validate_body("get", {"table": "vif", "id": 4}) == {"table": "vif", "id": 4, "kind": None}
    assert validate_body("vrf_add", {"vrf": 1}) == {"vrf": 1, "name": None}


# ------------------------------------------------------------------ validation: bad bodies name the field

DEL = object()
TAP = {"name": "tap0", "pod_mac": "52:54:00:00:00:02"}
GOOD = {
    "hello": {"agent": "cni", "session": "s1", "generation": 0},
    "ping": {}, "stats": {}, "drop_stats": {},
    "snapshot_begin": {"generation": 1}, "snapshot_end": {"generation": 1},
    "vrf_add": {"vrf": 1, "name": "red"}, "vrf_del": {"vrf": 1},
    "vif_add": {"id": 2, "kind": "virtual", "mac": "02:00:00:00:01:00", "prefixes": ["10.1.0.2/32"], "tap": TAP},
    "vif_update": {"id": 2, "kind": "virtual", "mac": "02:00:00:00:01:00"},
    "vif_del": {"id": 2},
    "nh_add": {"id": 10, "type": "interface", "vif": 2, "dmac": "52:54:00:00:00:02"},
    "nh_update": {"id": 10, "type": "interface", "vif": 2, "dmac": "52:54:00:00:00:02"},
    "nh_del": {"id": 10},
    "route_add": pack_routes(4, ["10.0.0.0/8", "10.1.0.0/16", "0.0.0.0/0"], [1, 2, 3], vrf=1),
    "route_del": pack_routes(6, ["2001:db8::/32", "::/0"], vrf=1),
    "label_add": {"label": 100, "nh": 10}, "label_del": {"label": 100},
    "vni_add": {"vni": 5005, "vrf": 1}, "vni_del": {"vni": 5005},
    "policy_set": {"kind": "vrf", "id": 1, "rules": [{"id": 1, "action": "pass"}, {"id": 2, "action": "pass"},
                                                     {"id": 3, "action": "deny"}]},
    "policy_del": {"kind": "vif", "id": 1},
    "get": {"table": "nh", "id": 10}, "dump": {"table": "vif"},
    "flow_delete": {"vrf": 1, "proto": "tcp", "src": "10.0.0.1", "dst": "10.0.0.2", "sport": 1, "dport": 80},
    "trace": {"vif": 2, "frame": bytes(64)},
    "route_lookup": {"vrf": 1, "address": "10.2.0.5"},
    "capture_start": {"vif": 1}, "capture_read": {}, "capture_stop": {},
    "digest": {"kinds": ["route", "vif"]},
}
TUNNEL = {"id": 11, "type": "tunnel", "vif": 1, "dmac": "02:00:00:00:00:fe", "src": "192.0.2.1",
          "dst": "192.0.2.7", "vni": 5005}
MPLS = {**{k: v for k, v in TUNNEL.items() if k != "vni"}, "encap": "mplsoudp", "label": 100}


def bad(op, field, base=None, **changes):
    body = GOOD[op] if base is None else base
    body = dict(body) if isinstance(body, dict) else body
    for k, v in changes.items():
        if v is DEL:
            del body[k]
        else:
            body[k] = v
    return pytest.param(op, body, field, id=f"{op}-{field}")


def rule(i, **kw):
    r = [dict(x) for x in GOOD["policy_set"]["rules"]]
    r[i] = {k: v for k, v in {**r[i], **kw}.items() if v is not DEL}
    return r


def tap(**kw):
    return {k: v for k, v in {**TAP, **kw}.items() if v is not DEL}


def routes(fam, **kw):
    return {**GOOD["route_add" if fam == 4 else "route_del"], **kw}


BAD = [
    bad("hello", "b.agent", agent=""), bad("hello", "b.agent", agent="x" * 65), bad("hello", "b.session", session=DEL),
    bad("hello", "b.generation", generation=-1), bad("hello", "b.generation", generation=True),
    bad("hello", "b.x", x=1),
    bad("ping", "b.x", x=1), bad("ping", "b", base=[]), bad("stats", "b.all", all=True),
    bad("drop_stats", "b", base="x"),
    bad("snapshot_begin", "b.generation", generation=0), bad("snapshot_begin", "b.generation", generation="1"),
    bad("snapshot_end", "b.generation", generation=DEL), bad("snapshot_end", "b.generation", generation=2 ** 63),
    bad("vrf_add", "b.vrf", vrf=65536), bad("vrf_add", "b.name", name=""), bad("vrf_add", "b.name", name="n" * 65),
    bad("vrf_add", "b.name", name=5), bad("vrf_del", "b.vrf", vrf=-1), bad("vrf_del", "b.vrf", vrf=1.0),
    bad("vif_add", "b.id", id=4096), bad("vif_add", "b.kind", kind="tap"), bad("vif_add", "b.kind", kind=DEL),
    bad("vif_add", "b.mac", mac=DEL), bad("vif_add", "b.mac", mac="ff:ff:ff:ff:ff:ff"),
    bad("vif_add", "b.mac", mac="00:00:00:00:00:00"), bad("vif_add", "b.mac", mac="02:00:00:00:00"),
    bad("vif_add", "b.mac", mac="02-00-00-00-00-01"), bad("vif_add", "b.mac", mac=b"\x02\0\0\0\0\x01"),
    bad("vif_add", "b.mtu", mtu=67), bad("vif_add", "b.mtu", mtu=None), bad("vif_add", "b.vlan", vlan=4095),
    bad("vif_add", "b.vrf", vrf=-1), bad("vif_add", "b.policy", policy=1),
    bad("vif_add", "b.admin_down", admin_down="no"),
    bad("vif_add", "b.gw4", gw4="2001:db8::1"), bad("vif_add", "b.gw4", gw4="224.0.0.1"),
    bad("vif_add", "b.gw4", gw4="10.0.0.1/32"), bad("vif_add", "b.gw6", gw6="10.0.0.1"),
    bad("vif_add", "b.gw6", gw6="::1"),
    bad("vif_add", "b.gw6", gw6="fe80::1%eth0"), bad("vif_add", "b.prefixes", prefixes=["10.0.0.0/8"] * 9),
    bad("vif_add", "b.prefixes[0]", prefixes=["10.0.0.1/24"]),
    bad("vif_add", "b.prefixes[1]", prefixes=["10.0.0.0/8", "x"]),
    bad("vif_add", "b.prefixes[0]", prefixes=["::ffff:10.0.0.0/104"]),
    bad("vif_add", "b.prefixes[0]", prefixes=["10.0.0.1"]), bad("vif_add", "b.prefixes", prefixes="10.0.0.0/8"),
    bad("vif_add", "b.prefixes[0]", kind="fabric", tap=DEL, prefixes=["192.0.2.0/24"]),
    bad("vif_add", "b.tap", kind="host"), bad("vif_add", "b.tap", tap="tap0"),
    bad("vif_add", "b.tap.name", tap=tap(name="bad name")), bad("vif_add", "b.tap.name", tap=tap(name="t" * 16)),
    bad("vif_add", "b.tap.name", tap=tap(name="..")), bad("vif_add", "b.tap.name", tap=tap(name=DEL)),
    bad("vif_add", "b.tap.pod_mac", tap=tap(pod_mac=DEL)),
    bad("vif_add", "b.tap.pod_mac", tap=tap(pod_mac="01:00:5e:00:00:01")),
    bad("vif_add", "b.tap.ip", tap=tap(ip="10.1.0.2")), bad("vif_add", "b.tap.ip", tap=tap(ip="10.1.0.2/33")),
    bad("vif_add", "b.tap.ip", tap=tap(ip="127.0.0.1/8")),
    bad("vif_add", "b.tap.ip6", tap=tap(ip6="10.1.0.2/24")), bad("vif_add", "b.tap.netns", tap=tap(netns="a/b")),
    bad("vif_add", "b.tap.netns", tap=tap(netns="")), bad("vif_add", "b.tap.x", tap=tap(x=1)),
    bad("vif_add", "b.nh", nh=1), bad("vif_update", "b.id", id="2"), bad("vif_del", "b.id", id=DEL),
    bad("nh_add", "b.id", id=2 ** 24), bad("nh_add", "b.type", type="bogus"), bad("nh_add", "b.type", type=DEL),
    bad("nh_add", "b.dmac", dmac=DEL), bad("nh_add", "b.vif", vif=4096), bad("nh_add", "b.vni", vni=3),
    bad("nh_add", "b.smac", smac="ff:ff:ff:ff:ff:ff"), bad("nh_add", "b.members", members=[1]),
    bad("nh_add", "b.foo", foo=1),
    bad("nh_add", "b.src", base=TUNNEL, src=DEL), bad("nh_add", "b.dst", base=TUNNEL, dst="2001:db8::7"),
    bad("nh_add", "b.src", base=TUNNEL, src="127.0.0.1"), bad("nh_add", "b.dst", base=TUNNEL, dst="ff02::1"),
    bad("nh_add", "b.vni", base=TUNNEL, vni=DEL), bad("nh_add", "b.vni", base=TUNNEL, vni=2 ** 24),
    bad("nh_add", "b.label", base=TUNNEL, label=100), bad("nh_add", "b.dmac", base=TUNNEL, dmac="01:00:5e:00:00:01"),
    bad("nh_add", "b.ttl", base=TUNNEL, ttl=256), bad("nh_add", "b.encap", base=TUNNEL, encap="gre"),
    bad("nh_add", "b.inner_dmac", base=TUNNEL, inner_dmac="x"),
    bad("nh_add", "b.vni", base=MPLS, vni=1), bad("nh_add", "b.label", base=MPLS, label=15),
    bad("nh_add", "b.label", base=MPLS, label=DEL),
    bad("nh_add", "b.inner_dmac", base=MPLS, inner_dmac="02:00:00:00:00:01"),
    bad("nh_add", "b.members", base={"id": 1, "type": "ecmp"}, members=[]),
    bad("nh_add", "b.members", base={"id": 1, "type": "ecmp"}, members=[1] * 65),
    bad("nh_add", "b.members[1]", base={"id": 1, "type": "ecmp"}, members=[1, "x"]),
    bad("nh_add", "b.members[2]", base={"id": 1, "type": "ecmp"}, members=[1, None, 2 ** 24]),
    bad("nh_add", "b.members", base={"id": 1, "type": "ecmp"}),
    bad("nh_add", "b.vrf", base={"id": 1, "type": "vrf"}),
    bad("nh_add", "b.vif", base={"id": 1, "type": "discard"}, vif=1),
    bad("nh_add", "b.ttl", base={"id": 1, "type": "receive"}, ttl=0),
    bad("nh_update", "b.dmac", dmac="02:00:00:00:00"), bad("nh_del", "b.id", id=-1),
    bad("route_add", "b.family", family=5), bad("route_add", "b.family", family=True),
    bad("route_add", "b.vrf", vrf=DEL),
    bad("route_add", "b.addrs", addrs="10.0.0.0"), bad("route_add", "b.nhs", nhs=DEL),
    bad("route_add", "b.lens", **routes(4, addrs=b"", lens=b"", nhs=b"")),
    bad("route_add", "b.addrs", **routes(4, addrs=bytes(11))), bad("route_add", "b.nhs", **routes(4, nhs=bytes(13))),
    bad("route_add", "b.addrs", family=6), bad("route_add", "b.lens[1]", lens=b"\x08\x21\x00"),
    bad("route_add", "b.addrs[1]", lens=b"\x08\x08\x00"),
    bad("route_add", "b.nhs[2]", nhs=bytes(8) + b"\xff\xff\xff\xff"),
    bad("route_del", "b.nhs", nhs=bytes(8)), bad("route_del", "b.lens[0]", lens=b"\x81\x00"),
    bad("route_del", "b.addrs[1]", base=pack_routes(6, ["::/0", "2001:db8::/32"], vrf=1), lens=b"\x00\x10"),
    bad("route_del", "b.addrs", family=4),
    bad("label_add", "b.label", label=15), bad("label_add", "b.label", label=2 ** 20), bad("label_add", "b.nh", nh=DEL),
    bad("label_del", "b.label", label="100"),
    bad("vni_add", "b.vni", vni=2 ** 24), bad("vni_add", "b.vrf", vrf=DEL), bad("vni_del", "b.vrf", vrf=1),
    bad("policy_set", "b.kind", kind="vm"), bad("policy_set", "b.id", kind="vif", id=4096),
    bad("policy_set", "b.id", id=65536), bad("policy_set", "b.rules", rules=DEL),
    bad("policy_set", "b.rules", rules={}),
    bad("policy_set", "b.rules[0]", rules=[["1", "any"]]),
    bad("policy_set", "b.rules[0].action", rules=rule(0, action=DEL)),
    bad("policy_set", "b.rules[1].bogus", rules=rule(1, bogus=1)),
    bad("policy_set", "b.rules[0].id", rules=rule(0, id=-1)),
    bad("policy_set", "b.rules[0].id", rules=rule(0, id=2 ** 32 - 2)),
    bad("policy_set", "b.rules[2].dport", rules=rule(2, dport=[443, 80])),
    bad("policy_set", "b.rules[2].sport", rules=rule(2, sport=70000)),
    bad("policy_set", "b.rules[2].sport", rules=rule(2, sport=[1, 2, 3])),
    bad("policy_set", "b.rules[1].proto", rules=rule(1, proto="gre")),
    bad("policy_set", "b.rules[1].proto", rules=rule(1, proto=256)),
    bad("policy_set", "b.rules[1].direction", rules=rule(1, direction="in")),
    bad("policy_set", "b.rules[1].action", rules=rule(1, action="allow")),
    bad("policy_set", "b.rules[1].log", rules=rule(1, log=1)),
    bad("policy_set", "b.rules[0].src", rules=rule(0, src="10.0.0.1/8")),
    bad("policy_set", "b.rules[0].dst", rules=rule(0, src="10.0.0.0/8", dst="2001:db8::/32")),
    bad("policy_set", "b.default", default="allow"),
    bad("policy_del", "b.kind", kind=DEL), bad("policy_del", "b.id", id=5000), bad("policy_del", "b.rules", rules=[]),
    bad("get", "b.table", table="route"), bad("get", "b.id", table="vif", id=4096),
    bad("get", "b.kind", table="policy"),
    bad("get", "b.kind", kind="vif"), bad("get", "b.id", table="label", id=5), bad("get", "b.id", id=DEL),
    bad("get", "b.id", table="policy", kind="vif", id=4096),
    bad("dump", "b.table", table="x"), bad("dump", "b.vrf", table="route"), bad("dump", "b.vrf", vrf=1),
    bad("dump", "b.family", table="nh", family=4), bad("dump", "b.family", table="route", vrf=1, family=5),
    bad("dump", "b.limit", limit=0), bad("dump", "b.limit", limit=10001), bad("dump", "b.cursor", cursor="abc"),
    bad("dump", "b.cursor", cursor=-1), bad("dump", "b.cursor", cursor=bytes(257)),
    bad("flow_delete", "b.vrf", base={}), bad("flow_delete", "b.all", base={"all": False}),
    bad("flow_delete", "b.vrf", base={"all": True, "vrf": 1}), bad("flow_delete", "b.all", base={"all": "yes"}),
    bad("flow_delete", "b.dst", dst=DEL), bad("flow_delete", "b.dst", dst="2001:db8::1"),
    bad("flow_delete", "b.proto", proto="gre"), bad("flow_delete", "b.proto", proto="any"),
    bad("flow_delete", "b.sport", sport=65536), bad("flow_delete", "b.src", src="10.0.0.256"),
    bad("flow_delete", "b.src", src="::ffff:10.0.0.1"),
    bad("trace", "b.frame", frame=bytes(13)), bad("trace", "b.frame", frame=bytes(9001)),
    bad("trace", "b.frame", frame="x" * 64), bad("trace", "b.vif", vif=4096),
    bad("route_lookup", "b.address", address="10.2.0.0/16"), bad("route_lookup", "b.vrf", vrf=70000),
    bad("route_lookup", "b.address", address=None),
    bad("capture_start", "b.vif", vif=5000), bad("capture_start", "b.snaplen", snaplen=0),
    bad("capture_read", "b.x", x=1), bad("capture_stop", "b.x", x=1),
    bad("dump", "b.static", static="no"), bad("digest", "b.kinds[1]", kinds=["route", "flow"]),
    bad("digest", "b.kinds", kinds=[]), bad("digest", "b.kinds", kinds="route"),
]


def raw_request(op, body, q=5, **kw):
    """A request payload built by hand (encode_request refuses bad bodies)."""
    return msgpack.packb({"v": 1, "s": "s", "g": 0, "q": q, "op": op, "b": body, **kw}, use_bin_type=True)


def test_every_op_has_bad_cases():
    assert {p.values[0] for p in BAD} == set(OPS)
    for op, body in GOOD.items():
        validate_body(op, body)


@pytest.mark.parametrize("op,body,field", BAD)
def test_bad_body(op, body, field):
    with pytest.raises(ProtocolError) as e:
        validate_body(op, body)
    assert (e.value.code, e.value.field) == ("invalid", field), str(e.value)
    assert e.value.msg and str(e.value).startswith(f"invalid: {field}: ")
    with pytest.raises(ProtocolError) as e2:
        encode_request(op, body, **ENV)
    assert (e2.value.code, e2.value.field, e2.value.msg) == (e.value.code, field, e.value.msg)
    with pytest.raises(ProtocolError) as e3:
        decode_request(raw_request(op, body, q=77))
    assert (e3.value.code, e3.value.field, e3.value.msg, e3.value.seq) == ("invalid", field, e.value.msg, 77)


def test_messages_read_well():
    def msg(op, body):
        with pytest.raises(ProtocolError) as e:
            validate_body(op, body)
        return str(e.value)
    assert msg("nh_add", {**GOOD["nh_add"], "vni": 3}) == "invalid: b.vni: not used by type interface"
    assert msg("nh_add", {**MPLS, "vni": 3}) == "invalid: b.vni: not used by encap mplsoudp"
    assert msg("policy_set", {**GOOD["policy_set"], "rules": rule(2, dport=[443, 80])}) == \
        "invalid: b.rules[2].dport: inverted port range 443..80"
    assert msg("route_add", {**GOOD["route_add"], "lens": b"\x08\x08\x00"}) == \
        "invalid: b.addrs[1]: host bits set for /8 (10.1.0.0/8)"
    assert msg("vif_add", {**GOOD["vif_add"], "mtu": 20}) == "invalid: b.mtu: must be 68..65535, got 20"
    assert msg("trace", {**GOOD["trace"], "frame": bytes(10 ** 6)}).endswith("got 1000000")


@pytest.mark.parametrize("payload,code,field,seq", [
    (raw_request("ping", {}, v=2), "unsupported_version", "v", 5),
    (raw_request("ping", {}, v="1"), "bad_message", "v", 5),
    (raw_request("nope", {}), "unknown_op", "op", 5),
    (raw_request(7, {}), "bad_message", "op", 5),
    (raw_request("ping", {}, x=1), "bad_message", "x", 5),
    (raw_request("ping", {}, s=""), "bad_message", "s", 5),
    (raw_request("ping", {}, s="s" * 65), "bad_message", "s", 5),
    (raw_request("ping", {}, s=b"s"), "bad_message", "s", 5),
    (raw_request("ping", {}, g=-1), "bad_message", "g", 5),
    (raw_request("ping", {}, q=2 ** 63), "bad_message", "q", None),
    (raw_request("ping", {}, q=None), "bad_message", "q", None),
    (raw_request("ping", []), "invalid", "b", 5),
    (raw_request("ping", {"x": 1}), "invalid", "b.x", 5),
    (msgpack.packb({"v": 1, "s": "s", "g": 0, "q": 1, "op": "ping"}), "bad_message", "b", 1),
    (msgpack.packb({"v": 1, "s": "s", "g": 0, "q": 1, "op": "ping", "b": {}, b"x": 1}), "bad_message", None, 1),
    (msgpack.packb([1, "s", 0, 1, "ping", {}]), "bad_message", None, None),
    (msgpack.packb({"v": 1, "s": "s", "g": 0, "q": 1, "op": "ping", "b": {}}) + b"\x00", "bad_message", None, None),
    (msgpack.packb({1: 1}), "bad_message", None, None),                        # strict_map_key
    (b"\x81\xa1v\xd6\xff\x00\x00\x00\x01", "bad_message", None, None),          # ext (a timestamp)
    (b"\xa2\xff\xfe", "bad_message", None, None),                               # invalid UTF-8
    (b"", "bad_message", None, None),
])
def test_bad_envelope(payload, code, field, seq):
    with pytest.raises(ProtocolError) as e:
        decode_request(payload)
    assert (e.value.code, e.value.field, e.value.seq) == (code, field, seq), str(e.value)


def test_encode_request_refuses():
    for kw, field in ((dict(session=""), "s"), (dict(generation=-1), "g"), (dict(sequence=2 ** 63), "q"),
                      (dict(sequence="1"), "q")):
        with pytest.raises(ProtocolError) as e:
            encode_request("ping", {}, **{**ENV, **kw})
        assert (e.value.code, e.value.field) == ("bad_message", field)
    with pytest.raises(ProtocolError) as e:
        encode_request("nope", {}, **ENV)
    assert (e.value.code, e.value.field) == ("unknown_op", "op")
    with pytest.raises(ProtocolError) as e:
        validate_body(None, {})
    assert e.value.code == "unknown_op"


def test_encode_reply_refuses():
    for call, code, field in ((lambda: encode_reply(-1), "invalid", "q"),
                              (lambda: encode_reply(1, [1]), "invalid", "b"),
                              (lambda: encode_reply(1, {"x": object()}), "invalid", "b"),
                              (lambda: encode_error(1, "nope", None, "m"), "invalid", "err.code"),
                              (lambda: encode_error(1, "busy", 3, "m"), "invalid", "err.field"),
                              (lambda: encode_error(1, "busy", None, None), "invalid", "err.msg")):
        with pytest.raises(ProtocolError) as e:
            call()
        assert (e.value.code, e.value.field) == (code, field)


@pytest.mark.parametrize("reply,code", [
    ({"v": 1, "q": 1, "ok": True}, "bad_message"),
    ({"v": 1, "q": 1, "ok": True, "b": []}, "bad_message"),
    ({"v": 1, "q": None, "ok": True, "b": {}}, "bad_message"),
    ({"v": 1, "q": 1, "ok": 1, "b": {}}, "bad_message"),
    ({"v": 1, "q": 1, "ok": True, "b": {}, "x": 1}, "bad_message"),
    ({"v": 1, "q": 1, "ok": True, "err": {}}, "bad_message"),
    ({"v": 1, "q": 1, "ok": False, "err": {"code": "busy", "msg": "m"}}, "bad_message"),
    ({"v": 1, "q": 1, "ok": False, "err": {"code": "", "field": None, "msg": "m"}}, "bad_message"),
    ({"v": 1, "q": 1, "ok": False, "err": {"code": "busy", "field": 1, "msg": "m"}}, "bad_message"),
    ({"v": 1, "q": -1, "ok": False, "err": {"code": "busy", "field": None, "msg": "m"}}, "bad_message"),
    ({"v": 2, "q": 1, "ok": True, "b": {}}, "unsupported_version"),
    ([1, 2], "bad_message"),
])
def test_bad_reply(reply, code):
    with pytest.raises(ProtocolError) as e:
        decode_reply(msgpack.packb(reply))
    assert e.value.code == code


def test_unknown_error_code_kept():
    err = {"code": "new_code", "field": None, "msg": ""}
    r = decode_reply(msgpack.packb({"v": 1, "q": 1, "ok": False, "err": err}))
    assert r.error.code == "new_code"


# ------------------------------------------------------------------ routes


@pytest.mark.parametrize("fam", [4, 6])
@given(data=st.data())
def test_pack_unpack_routes(fam, data):
    nets = data.draw(st.lists(st.one_of(networks(fam), networks(fam, st.sampled_from(
        [0, 32 if fam == 4 else 128]))), min_size=1, max_size=60))
    nhs = data.draw(st.none() | st.lists(st.integers(0, 0xFFFFFFFE), min_size=len(nets), max_size=len(nets)))
    as_objects = data.draw(st.booleans())
    body = pack_routes(fam, nets if as_objects else [str(n) for n in nets], nhs, vrf=9)
    expected = [(str(n), None if nhs is None else h) for n, h in zip(nets, nhs or [None] * len(nets))]
    assert unpack_routes(body) == expected
    op = "route_del" if nhs is None else "route_add"
    req = decode_request(encode_request(op, body, **ENV))
    assert unpack_routes(req.body) == expected
    b = req.body
    assert b["vrf"] == 9 and b["lens"].dtype == np.uint8 and b["lens"].tolist() == [n.prefixlen for n in nets]
    if fam == 4:
        assert b["addrs"].dtype == np.uint32 and b["addrs"].tolist() == [int(n.network_address) for n in nets]
    else:
        assert b["addrs"].dtype == np.uint8 and b["addrs"].shape == (len(nets), 16)
        assert [bytes(r) for r in b["addrs"]] == [n.network_address.packed for n in nets]
    if nhs is not None:
        assert b["nhs"].dtype == np.uint32 and b["nhs"].tolist() == nhs


@pytest.mark.parametrize("fam", [4, 6])
@given(data=st.data())
def test_host_bits_first_bad_index(fam, data):
    """The vectorised check agrees with ipaddress' strict parse, row by row."""
    width = 4 if fam == 4 else 16
    rows = data.draw(st.lists(st.tuples(st.binary(min_size=width, max_size=width), st.integers(0, width * 8)),
                              min_size=1, max_size=30))
    body = {"vrf": 0, "family": fam, "addrs": b"".join(a for a, _ in rows), "lens": bytes(ln for _, ln in rows)}
    first_bad = next((i for i, (a, ln) in enumerate(rows)
                      if ipaddress.ip_network((a, ln), strict=False).network_address.packed != a), None)
    if first_bad is None:
        assert unpack_routes(validate_body("route_del", body)) == \
            [(str(ipaddress.ip_network((a, ln))), None) for a, ln in rows]
    else:
        with pytest.raises(ProtocolError) as e:
            validate_body("route_del", body)
        assert e.value.field == f"b.addrs[{first_bad}]"
        assert e.value.msg.startswith(f"host bits set for /{rows[first_bad][1]} ")


def test_pack_routes_refuses():
    for args, field in (((4, ["10.0.0.1/8"]), "prefixes[0]"), ((4, ["10.0.0.0/8", "2001:db8::/32"]), "prefixes[1]"),
                        ((6, [ipaddress.ip_network("10.0.0.0/8")]), "prefixes[0]"), ((5, []), "family"),
                        ((4, ["10.0.0.0/8"], [1, 2]), "nhs"), ((4, ["10.0.0.0/8"], [-1]), "nhs"),
                        ((4, ["10.0.0.0/8"], [0xFFFFFFFF]), "nhs"), ((4, ["10.0.0.0/8"], ["x"]), "nhs")):
        with pytest.raises(ProtocolError) as e:
            pack_routes(*args)
        assert (e.value.code, e.value.field) == ("invalid", field)


def random_routes(fam, n, seed=1):
    """n random valid routes as wire columns, masked independently of the module's own check."""
    rng = np.random.default_rng(seed)
    bits = 32 if fam == 4 else 128
    lens = rng.integers(0, bits + 1, n, dtype=np.uint8)
    if fam == 4:
        a = rng.integers(0, 2 ** 32, n, dtype=np.uint64)
        a &= ~((np.uint64(1) << (np.uint64(32) - lens.astype(np.uint64))) - np.uint64(1)) & np.uint64(0xFFFFFFFF)
        addrs = a.astype(">u4").tobytes()
    else:
        a = rng.integers(0, 256, (n, 16), dtype=np.uint8)
        keep = np.clip(lens.astype(np.int32)[:, None] - np.arange(0, 128, 8, dtype=np.int32)[None, :], 0, 8)
        a &= ((0xFF00 >> keep) & 0xFF).astype(np.uint8)
        addrs = a.tobytes()
    return {"vrf": 3, "family": fam, "addrs": addrs, "lens": lens.tobytes(),
            "nhs": rng.integers(0, 2 ** 24, n, dtype=np.uint32).astype("<u4").tobytes()}


@pytest.mark.parametrize("fam", [4, 6])
def test_million_routes(fam, capsys):
    body = random_routes(fam, MAX_ROUTES)
    t0 = time.perf_counter()
    payload = encode_request("route_add", body, **ENV)
    t1 = time.perf_counter()
    req = decode_request(payload)
    t2 = time.perf_counter()
    with capsys.disabled():
        print(f"\n  IPv{fam}: {MAX_ROUTES:,} routes, {len(payload) / 2 ** 20:.1f} MiB: encode {t1 - t0:.3f} s, "
              f"decode+validate {t2 - t1:.3f} s")
    b = req.body
    assert np.array_equal(b["lens"], np.frombuffer(body["lens"], np.uint8))
    assert np.array_equal(b["nhs"], np.frombuffer(body["nhs"], "<u4"))
    if fam == 4:
        assert b["addrs"].dtype == np.uint32 and np.array_equal(b["addrs"], np.frombuffer(body["addrs"], ">u4"))
    else:
        assert b["addrs"].shape == (MAX_ROUTES, 16) and b["addrs"].tobytes() == body["addrs"]
    # spot-check against ipaddress
    for i in (0, 1, MAX_ROUTES // 2, MAX_ROUTES - 1):
        w = 4 if fam == 4 else 16
        net = ipaddress.ip_network((body["addrs"][i * w:(i + 1) * w], int(b["lens"][i])))
        assert unpack_routes({"family": fam, "addrs": b["addrs"][i:i + 1], "lens": b["lens"][i:i + 1],
                              "nhs": b["nhs"][i:i + 1]}) == [(str(net), int(b["nhs"][i]))]


def test_too_many_routes():
    body = random_routes(4, MAX_ROUTES + 1)
    for call in (lambda: validate_body("route_add", body), lambda: encode_request("route_add", body, **ENV),
                 lambda: decode_request(raw_request("route_add", body))):
        with pytest.raises(ProtocolError) as e:
            call()
        assert (e.value.code, e.value.field) == ("invalid", "b.lens")


# ------------------------------------------------------------------ fuzzing

def valid_payloads():
    out = [encode_request(op, body, **ENV) for op, body in GOOD.items()]
    out += [encode_request("nh_add", TUNNEL, **ENV), encode_request("nh_add", MPLS, **ENV),
            encode_request("vif_add", {**GOOD["vif_add"], "gw4": "10.1.0.1", "gw6": "fd00::1", "tap": {
                **TAP, "netns": "pod1", "ip": "10.1.0.2/24", "ip6": "fd00::2/64"}}, **ENV),
            encode_reply(1, {"instance": "x", "version": 1, "generation": 0, "node": "n"}),
            encode_error(2, "invalid", "b.x", "m"), encode_error(None, "bad_message", None, "m")]
    return out


def check_decode(payload):
    """Each decoder returns a message or raises ProtocolError (never 'internal', never anything else)."""
    for fn in (decode_request, decode_reply):
        try:
            fn(payload)
        except ProtocolError as e:
            assert e.code in ERROR_CODES and e.code != "internal", str(e)


def test_fuzz_random_bytes():
    rng = random.Random(20240601)
    for _ in range(10_000):
        check_decode(rng.randbytes(rng.choice((1, 2, 5, 16, 64, 300))))


def mutate(rng, p):
    p = bytearray(p)
    for _ in range(rng.randint(1, 4)):
        k = rng.randrange(6)
        i = rng.randrange(len(p)) if p else 0
        if k == 0 and p:            # bit flip
            p[i] ^= 1 << rng.randrange(8)
        elif k == 1 and p:          # byte overwrite with a "structural" value
            p[i] = rng.choice((0x00, 0x7F, 0x80, 0x8F, 0x90, 0xC0, 0xC2, 0xC3, 0xC4, 0xCC, 0xCF, 0xD3, 0xDC,
                               0xDD, 0xDE, 0xDF, 0xC7, 0xD6, 0xFF, rng.randrange(256)))
        elif k == 2:                # truncation
            del p[i:]
        elif k == 3:                # insertion
            p[i:i] = rng.randbytes(rng.randint(1, 4))
        elif k == 4 and p:          # deletion
            del p[i:i + rng.randint(1, 4)]
        else:                       # splice in a piece of another message
            p[i:i] = p[rng.randrange(len(p) + 1):][:8]
    return bytes(p)


def test_fuzz_mutated_payloads():
    rng = random.Random(7)
    seeds = valid_payloads()
    for p in seeds:
        check_decode(p)
    for _ in range(12_000):
        check_decode(mutate(rng, rng.choice(seeds)))


POOL = [None, True, False, 0, -1, 1, 15, 16, 255, 256, 4095, 4096, 65535, 65536, 2 ** 24 - 1, 2 ** 24, 2 ** 32 - 1,
        2 ** 63 - 1, 2 ** 64 - 1, -2 ** 63, 1.5, float("nan"), "", "x", "any", "tcp", "icmp6", "vxlan", "mplsoudp",
        "virtual", "fabric", "tunnel", "ecmp", "route", "policy", "vif", "10.0.0.0/8", "10.0.0.1/8", "::/0",
        "::ffff:1.2.3.4", "02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff", "192.0.2.1", "2001:db8::1", "fe80::1%eth0",
        "10.1.0.2/24", b"", bytes(4), bytes(16), b"\xff" * 5, [], [1, 2], [443, 80], [None], {}, {"x": 1},
        {"id": 1, "action": "pass"}, {"name": "t", "pod_mac": "02:00:00:00:00:02"}]
KEYS = ["x", "type", "encap", "vni", "label", "kind", "tap", "all", "vrf", "id", "nhs", "family", "rules", "v", "q"]


def mutate_obj(rng, o):
    """One structural change somewhere in a decoded message: a value replaced (by one from POOL or a mutated
    copy), a key dropped or added."""
    if isinstance(o, dict) and o and rng.random() < 0.85:
        o, k, r = dict(o), rng.choice(list(o)), rng.random()
        if r < 0.15:
            del o[k]
        elif r < 0.3:
            o[rng.choice(KEYS)] = rng.choice(POOL)
        elif r < 0.7:
            o[k] = mutate_obj(rng, o[k])
        else:
            o[k] = rng.choice(POOL)
        return o
    if isinstance(o, list) and o and rng.random() < 0.85:
        o, i = list(o), rng.randrange(len(o))
        o[i] = mutate_obj(rng, o[i]) if rng.random() < 0.5 else rng.choice(POOL)
        return o
    return rng.choice(POOL)


def test_fuzz_mutated_structures():
    """10,000 valid messages changed at the object level (mostly inside the body), re-encoded."""
    rng = random.Random(11)
    seeds = [msgpack.unpackb(p, raw=False) for p in valid_payloads()]
    outcomes = set()
    for _ in range(10_000):
        m = rng.choice(seeds)
        m = {**m, "b": mutate_obj(rng, m["b"])} if "op" in m and rng.random() < 0.8 else mutate_obj(rng, m)
        payload = msgpack.packb(m, use_bin_type=True)
        check_decode(payload)
        try:
            decode_request(payload)
            outcomes.add("ok")
        except ProtocolError as e:
            outcomes.add(e.code)
    assert {"ok", "invalid", "bad_message"} <= outcomes


leaves = st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 64 - 1) | st.floats() | st.text(max_size=20) | \
    st.binary(max_size=20) | st.sampled_from(["any", "tcp", "vxlan", "route", "policy", "10.0.0.0/8", "::/0",
                                              "02:00:00:00:00:01", "192.0.2.1", 4, 6, 4095, 65535, 2 ** 24])
values = st.recursive(leaves, lambda c: st.lists(c, max_size=6) | st.dictionaries(
    st.sampled_from(["id", "type", "kind", "vrf", "b", "v", "q", "ok", "err", "code", "rules", "tap", "x"]) |
    st.text(max_size=6), c, max_size=6), max_leaves=40)


@given(v=values)
def test_fuzz_structures(v):
    check_decode(msgpack.packb(v, use_bin_type=True))


@given(op=st.sampled_from(sorted(OPS)), body=values, q=st.integers(0, U63))
def test_fuzz_bodies(op, body, q):
    check_decode(raw_request(op, body, q=q))


@given(data=st.data(), op=st.sampled_from(sorted(set(GOOD) - set(ROUTE_OPS))))
def test_fuzz_fields_of_valid_bodies(data, op):
    """A valid body with one field replaced, removed or added, at the top or one level down."""
    body = dict(data.draw(BODIES[op]))
    target = body
    nested = [k for k, v in body.items()
              if isinstance(v, dict) or (isinstance(v, list) and v and isinstance(v[0], dict))]
    if nested and data.draw(st.booleans()):
        k = data.draw(st.sampled_from(nested))
        target = dict(body[k]) if isinstance(body[k], dict) else dict(body[k][0])
        body[k] = target if isinstance(body[k], dict) else [target] + body[k][1:]
    key = data.draw(st.sampled_from(sorted(target)) | st.text(max_size=6)) if target else data.draw(st.text(max_size=6))
    if data.draw(st.booleans()):
        target.pop(key, None)
    else:
        target[key] = data.draw(values)
    check_decode(raw_request(op, body))
    try:
        validate_body(op, body)
    except ProtocolError as e:
        assert e.code == "invalid" and e.field.startswith("b"), str(e)


@given(q=st.none() | st.integers(-1, U63 + 1), ok=values, b=values, err=values, extra=st.booleans())
def test_fuzz_replies(q, ok, b, err, extra):
    m = {"v": 1, "q": q, "ok": ok, "b" if extra else "err": b if extra else err}
    check_decode(msgpack.packb(m, use_bin_type=True))


# ------------------------------------------------------------------ size caps

def test_too_large_refused_without_unpacking(monkeypatch):
    def boom(*a, **kw):
        raise AssertionError("unpackb called on an oversized payload")
    monkeypatch.setattr(P.msgpack, "unpackb", boom)
    big = bytes(MAX_MESSAGE + 1)
    for payload in (big, memoryview(big)):
        for fn in (decode_request, decode_reply):
            with pytest.raises(ProtocolError) as e:
                fn(payload)
            assert e.value.code == "too_large"


def test_too_large_not_encoded():
    with pytest.raises(ProtocolError) as e:
        encode_reply(1, {"blob": bytes(MAX_MESSAGE)})
    assert e.value.code == "too_large"


@pytest.mark.parametrize("claim", [b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff",
                                   b"\xc6\xff\xff\xff\xff", b"\xc9\xff\xff\xff\xff\x01", b"\xdc\xff\xff",
                                   b"\x91" * 100_000, b"\xdd\x00\x01\x00\x00" + b"\xdd\x00\x01\x00\x00" * 2000],
                         ids=["array32", "map32", "str32", "bin32", "ext32", "array16", "deep", "wide-nested"])
def test_small_payload_claiming_huge_structure(claim):
    # alone, and as the body of an otherwise well-formed envelope (a 6-entry map whose last value lies)
    head = b"\x86" + b"".join(msgpack.packb(x) for x in ("v", 1, "s", "s", "g", 0, "q", 1, "op", "trace", "b"))
    for payload in (claim, head + claim):
        tracemalloc.start()
        t0 = time.perf_counter()
        with pytest.raises(ProtocolError) as e:
            decode_request(payload)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert e.value.code == "bad_message"
        assert elapsed < 1.0 and peak < 4 * len(payload) + (1 << 20), (elapsed, peak)


def test_pure_python_module():
    """Shared by the server and the agents: imports neither vrouter nor pyzmq."""
    code = ("import sys, control.protocol; bad = [m for m in sys.modules if m.split('.')[0] in ('vrouter', 'zmq')];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
