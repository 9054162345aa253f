"""The node's control backend over a real control channel (ZeroMQ ipc, in process, real tables): next-hop
ids beyond the node's table and references to what does not exist.

- Next-hop ids: the protocol allows 0..2**24-1, a node holds 0..node.nexthops-1 (default 65,536; hello
  says it in "limits"). Every op that takes a next-hop id answers ``invalid`` naming the field for one
  beyond the table (nh_add/update/del's id, ECMP members, route_add's nhs column, label_add's nh, get),
  never ``internal``, and changes nothing; a node configured with more ids takes them.
- Dangling references answer ``not_found`` naming the field (the protocol's docstring says so): an
  interface or tunnel next hop's vif, an ECMP member, a vrf next hop's VRF, a vif's VRF, a label's next
  hop, a VNI's VRF, a route's VRF and next hops, a policy's vif or VRF; a VRF a vrf next hop uses is
  ``in_use``."""
import tempfile

import pytest

from control import client as C
from control import protocol as P
from control import fields as F
from control.server import ControlServer
from vrouter import nexthop
from vrouter.config import ConfigError, parse
from vrouter.node import CheckNode

MAC = "02:00:00:00:00:01"
BIG = 70_000                      # > 65,535, < 2**24: the protocol takes it, the default table does not


def start(nexthops=None):
    node = {"name": "t", "control": "off", "metrics": "off"}
    if nexthops is not None:
        node["nexthops"] = nexthops
    n = CheckNode(parse({"node": node}))
    n.check()
    srv = ControlServer(f"ipc://{tempfile.mkdtemp(prefix='ctl-')}/c.sock", n.backend)
    srv.start()
    return n, srv


@pytest.fixture
def chan():
    n, srv = start()
    try:
        with C.Client(srv.endpoint, timeout=5, retries=1) as c:
            c.hello("test")
            c.call("vrf_add", {"vrf": 1})
            c.call("vif_add", {"id": 1, "kind": "virtual", "vrf": 1, "mac": MAC})
            c.call("vif_add", {"id": 0, "kind": "fabric", "mac": MAC, "prefixes": ["192.0.2.1/32"]})
            c.call("nh_add", {"id": 1, "type": "interface", "vif": 1, "dmac": MAC})
            c.call("nh_add", {"id": 2, "type": "discard"})
            yield c, n, srv
    finally:
        srv.stop()


def state(n):
    dp = n.dp
    return (dp.nh.dump(), dp.lpm4.dump(1)[0].tolist(), dp.lpm4.dump(1)[2].tolist(), sorted(n.backend.vrfs),
            sorted(n.backend.policies))


def refused(c, op, body):
    with pytest.raises(C.ControlError) as e:
        c.call(op, body)
    return e.value


def test_the_protocol_and_the_table_agree_on_the_largest_table():
    # node.nexthops goes up to the protocol's whole id space, no further
    assert nexthop.NH_MAX_CAPACITY == F.NH_MAX + 1 == P.NH_MAX + 1
    assert parse({"node": {"nexthops": F.NH_MAX + 1}}).nexthop_capacity == 1 << 24
    assert parse({}).nexthop_capacity == nexthop.NH_DEFAULT_CAPACITY == 65536
    for bad in (0, -1, (1 << 24) + 1, "many", True):
        with pytest.raises(ConfigError, match=r"^node\.nexthops: "):
            parse({"node": {"nexthops": bad}})


BEYOND = [   # (op, body, field) with next-hop id BIG somewhere
    ("nh_add", {"id": BIG, "type": "discard"}, "b.id"),
    ("nh_update", {"id": BIG, "type": "discard"}, "b.id"),
    ("nh_del", {"id": BIG}, "b.id"),
    ("nh_add", {"id": 9, "type": "ecmp", "members": [1, None, BIG]}, "b.members[2]"),
    ("route_add", dict(P.pack_routes(4, ["10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16"], [1, 2, BIG]), vrf=1),
     "b.nhs[2]"),
    ("label_add", {"label": 100, "nh": BIG}, "b.nh"),
    ("get", {"table": "nh", "id": BIG}, "b.id"),
]


@pytest.mark.parametrize("op,body,field", BEYOND, ids=[f"{o}-{f}" for o, _, f in BEYOND])
def test_a_next_hop_id_beyond_the_table_is_invalid_naming_the_field(chan, op, body, field):
    c, n, srv = chan
    before = state(n)
    e = refused(c, op, body)
    assert (e.code, e.field) == ("invalid", field), str(e)
    assert f"next hop {BIG}" in e.msg and "0..65535" in e.msg and "node.nexthops" in e.msg, e.msg
    assert state(n) == before
    assert srv.counters["error_internal"] == 0
    assert c.hello("test")["limits"] == {"nexthops": 65536}
    # a page of next hops from beyond the table is just empty (a cursor is a position)
    assert c.call("dump", {"table": "nh", "cursor": BIG}) == {"items": [], "cursor": None}


def test_a_node_configured_for_more_next_hops_takes_them():
    n, srv = start(nexthops=1 << 17)
    try:
        with C.Client(srv.endpoint, timeout=5, retries=1) as c:
            assert c.hello("test")["limits"] == {"nexthops": 1 << 17}
            c.call("vrf_add", {"vrf": 1})
            c.call("nh_add", {"id": BIG, "type": "discard"})
            c.call("nh_update", {"id": BIG, "type": "discard"})
            c.call("nh_add", {"id": BIG + 1, "type": "ecmp", "members": [BIG]})
            assert c.add_routes(1, ["10.0.0.0/8"], [BIG + 1]) == 1
            c.call("label_add", {"label": 100, "nh": BIG})
            assert c.call("get", {"table": "nh", "id": BIG})["item"]["type"] == "discard"
            assert c.call("route_lookup", {"vrf": 1, "address": "10.1.2.3"})["nh"] == BIG + 1
            e = refused(c, "nh_add", {"id": 1 << 17, "type": "discard"})
            assert (e.code, e.field) == ("invalid", "b.id") and "0..131071" in e.msg
            c.call("label_del", {"label": 100})
            c.del_routes(1, ["10.0.0.0/8"])
            c.call("nh_del", {"id": BIG + 1})
            c.call("nh_del", {"id": BIG})
            assert n.dp.nh.nhs() == []
    finally:
        srv.stop()


def test_static_configuration_beyond_the_table_names_its_field():
    conf = parse({"node": {"name": "t", "control": "off", "metrics": "off", "nexthops": 1024},
                  "nexthops": [{"id": 1024, "type": "discard"}]})
    with pytest.raises(ConfigError, match=r"^nexthops\[0\]\.id: next hop 1024 is beyond .*0\.\.1023"):
        CheckNode(conf).check()
    conf = parse({"node": {"name": "t", "control": "off", "metrics": "off", "nexthops": 1024},
                  "nexthops": [{"id": 5, "type": "discard"}],
                  "routes": [{"vrf": 1, "prefix": "10.0.0.0/8", "nh": 5}, {"vrf": 1, "prefix": "10.1.0.0/16",
                                                                          "nh": 4096}]})
    with pytest.raises(ConfigError, match=r"^routes\[1\]\.nh: next hop 4096 is beyond"):
        CheckNode(conf).check()


DANGLING = [   # (op, body, field): each names something that does not exist
    ("nh_add", {"id": 9, "type": "interface", "vif": 7, "dmac": MAC}, "b.vif"),
    ("nh_add", {"id": 9, "type": "tunnel", "vif": 7, "dmac": MAC, "src": "192.0.2.1", "dst": "192.0.2.2",
                "vni": 5}, "b.vif"),
    ("nh_add", {"id": 9, "type": "ecmp", "members": [1, 3]}, "b.members[1]"),
    ("nh_add", {"id": 9, "type": "vrf", "vrf": 8}, "b.vrf"),
    ("nh_update", {"id": 2, "type": "ecmp", "members": [None, 1, 5]}, "b.members[2]"),
    ("nh_update", {"id": 3, "type": "discard"}, "b.id"),
    ("nh_del", {"id": 3}, "b.id"),
    ("vif_add", {"id": 2, "kind": "virtual", "vrf": 8, "mac": MAC}, "b.vrf"),
    ("vif_update", {"id": 1, "kind": "virtual", "vrf": 8, "mac": MAC}, "b.vrf"),
    ("label_add", {"label": 100, "nh": 3}, "b.nh"),
    ("vni_add", {"vni": 100, "vrf": 8}, "b.vrf"),
    ("route_add", dict(P.pack_routes(4, ["10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16"], [1, 4, 3]), vrf=1),
     "b.nhs[1]"),                                                # the first route naming an absent one
    ("route_add", dict(P.pack_routes(4, ["10.0.0.0/8"], [1]), vrf=8), "b.vrf"),
    ("policy_set", {"kind": "vrf", "id": 8, "rules": []}, "b.id"),
    ("policy_set", {"kind": "vif", "id": 7, "rules": []}, "b.id"),
    ("capture_start", {"vif": 7}, "b.vif"),
]


@pytest.mark.parametrize("op,body,field", DANGLING, ids=[f"{o}-{f}" for o, _, f in DANGLING])
def test_a_dangling_reference_is_not_found_naming_the_field(chan, op, body, field):
    c, n, _ = chan
    before = state(n)
    e = refused(c, op, body)
    assert (e.code, e.field) == ("not_found", field), str(e)
    assert "does not exist" in e.msg, e.msg
    assert state(n) == before


def test_what_a_next_hop_refers_to_that_is_there_but_wrong_is_invalid_naming_the_field(chan):
    c, n, _ = chan
    c.call("nh_add", {"id": 5, "type": "ecmp", "members": [1, 2]})
    before = state(n)
    for body, field, words in (
            ({"id": 6, "type": "ecmp", "members": [1, 5]}, "b.members[1]", "itself ECMP"),
            ({"id": 6, "type": "ecmp", "members": [6]}, "b.members[0]", "the ECMP next hop itself"),
            ({"id": 6, "type": "tunnel", "vif": 1, "dmac": MAC, "src": "192.0.2.1", "dst": "192.0.2.2",
              "vni": 5}, "b.vif", "fabric")):
        e = refused(c, "nh_add", body)
        assert (e.code, e.field) == ("invalid", field) and words in e.msg, str(e)
    assert state(n) == before


def test_the_references_that_exist_are_taken_and_a_vrf_next_hop_holds_its_vrf(chan):
    c, n, _ = chan
    c.call("vrf_add", {"vrf": 2})
    c.call("nh_add", {"id": 3, "type": "vrf", "vrf": 2})
    c.call("nh_add", {"id": 4, "type": "ecmp", "members": [1, None, 3]})
    c.call("nh_add", {"id": 5, "type": "tunnel", "vif": 0, "dmac": MAC, "src": "192.0.2.1",
                      "dst": "192.0.2.2", "vni": 5})
    c.call("label_add", {"label": 100, "nh": 4})
    c.call("vni_add", {"vni": 100, "vrf": 2})
    c.call("policy_set", {"kind": "vif", "id": 1, "rules": []})
    c.call("policy_set", {"kind": "vrf", "id": 2, "rules": []})
    c.call("vni_del", {"vni": 100})
    c.call("policy_del", {"kind": "vrf", "id": 2})
    e = refused(c, "vrf_del", {"vrf": 2})
    assert (e.code, e.field) == ("in_use", "b.vrf") and "nh 3" in e.msg, str(e)
    c.call("label_del", {"label": 100})
    c.call("nh_del", {"id": 4})
    c.call("nh_del", {"id": 3})
    c.call("vrf_del", {"vrf": 2})
