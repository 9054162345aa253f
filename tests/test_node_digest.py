"""The digest's canonical form (control/digest.py): the vrouter's digest of tables built from a compiled
NodeState (vrouter/control_backend.py, from the tables themselves: LPM dumps, the next-hop table, the
policies as stored) equals the digest the pusher computes from that NodeState, for random intents and
both encapsulations; each kind's digest moves when, and only when, an object of that kind changes; the
node's own configuration (generation STATIC) is outside every digest and every ``static: false`` dump."""
from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fake_node as FN
from agent_strategies import IntentSpec, PodSpec, PolicySpec, VNSpec, intent_specs
from control import digest as D
from control import protocol as P
from control.agent.compiler import compile_cluster
from control.agent.intent import load
from control.node import state as S
from control.node.push import diff

ENCAPS = ("vxlan", "mplsoudp")


def vrouter_digest(b, kinds=None):
    return b.apply("digest", P.validate_body("digest", {"kinds": kinds}), None)


def built(st_, static=()):
    b = FN.backend(st_.name, static)
    FN.apply(b, diff(None, st_), 1)
    return b


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=intent_specs(), encap=st.sampled_from(ENCAPS))
def test_the_vrouters_digest_of_a_pushed_state_is_the_pushers(spec, encap):
    c = compile_cluster(load(spec.yaml()), encap=encap)
    for name, st_ in c.nodes.items():
        got = vrouter_digest(built(st_))
        kinds, tables = S.digests(st_)
        assert got["digests"] == kinds, (name, {k for k in kinds if kinds[k] != got["digests"][k]})
        assert got["routes"] == tables
        assert got["counts"]["vif"] == len(st_.vifs) and got["counts"]["nh"] == len(st_.nhs)
        assert got["counts"]["route"] == sum(len(t) for t in st_.routes.values())


SPEC = IntentSpec([1, 2], [VNSpec(1, "ns-a", {}, v6=True), VNSpec(2, "ns-a", {})],
                  pods=[PodSpec("a", "ns-a", 1, {"app": "a"}, [("ns-a", "vn1")]),
                        PodSpec("b", "ns-a", 2, {"app": "b"}, [("ns-a", "vn1")]),
                        PodSpec("c", "ns-a", 1, {}, [("ns-a", "vn2")])],
                  policies=[PolicySpec("np", "ns-a", {"app": "a"}, {"app": "b"})])


def _state(encap="mplsoudp"):
    return compile_cluster(load(SPEC.yaml()), encap=encap).nodes["node-1"]


def _first(d):
    return d[sorted(d)[0]]


# each edit changes one object of one kind of the desired state
EDITS = {
    "vrf": lambda s: _first(s.vrfs).update(name="renamed"),
    "vif": lambda s: _first(s.vifs).update(mtu=1400),
    "tap": lambda s: _first(s.vifs)["tap"].update(routes=["10.99.0.0/16"]),
    "nh": lambda s: next(b for b in s.nhs.values() if b["type"] == "tunnel").update(dst="192.0.2.9"),
    "label": lambda s: _first(s.labels).update(nh=next(n for n in sorted(s.nhs) if n != _first(s.labels)["nh"])),
    "vni": lambda s: s.vnis.update({777: {"vni": 777, "vrf": sorted(s.vrfs)[0]}}),
    "policy": lambda s: _first(s.policies)["rules"][0].update(dport=8080),
    "route": lambda s: _first(s.routes).update({"10.77.0.0/16": sorted(s.nhs)[0]}),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_each_kinds_digest_moves_with_its_objects_only(edit):
    st_ = _state()
    before, _ = S.digests(st_)
    changed = copy.deepcopy(st_)
    EDITS[edit](changed)
    after, _ = S.digests(changed)
    kind = "vif" if edit == "tap" else edit
    assert [k for k in D.KINDS if before[k] != after[k]] == [kind]
    # and the vrouter holding the changed state agrees with the pusher
    assert vrouter_digest(built(changed))["digests"] == after


def test_the_canonical_form_reads_the_protocols_defaults_as_given():
    """A body written with its defaults spelled out, addresses and MACs in another case, prefixes in
    another order, has the digest of the body without them."""
    st_ = _state()
    spelled = copy.deepcopy(st_)
    vif = _first(spelled.vifs)
    vif.update(vlan=0, admin_down=False, mac=vif["mac"].upper(), prefixes=list(reversed(vif["prefixes"])))
    for r in _first(spelled.policies)["rules"]:
        r.setdefault("sport", "any")
        r.setdefault("log", False)
    assert S.digests(spelled) == S.digests(st_)


def test_the_nodes_own_configuration_is_outside_the_digest_and_static_false_dumps():
    st_ = _state()
    static = [("vrf_add", {"vrf": 900}), ("nh_add", {"id": 5, "type": "discard"}),
              ("vni_add", {"vni": 900, "vrf": 900}),
              ("route_add", dict(P.pack_routes(4, ["10.250.0.0/16"], [5]), vrf=900))]
    vrf = sorted(st_.vrfs)[0]
    static += [("vrf_add", {"vrf": vrf}),        # an agent's VRF declared by node.yaml too: the agent's now
               ("route_add", dict(P.pack_routes(4, ["10.251.0.0/16"], [5]), vrf=vrf))]   # a static route in it
    b = built(st_, static)
    got = vrouter_digest(b)
    assert got["digests"] == S.digests(st_)[0]
    dump = lambda **kw: b.apply("dump", P.validate_body("dump", kw), None)["items"]  # noqa: E731
    assert 0 in [v["id"] for v in dump(table="vif")] and 0 not in [v["id"] for v in dump(table="vif", static=False)]
    assert 900 not in [v["vrf"] for v in dump(table="vrf", static=False)]
    prefixes = [r["prefix"] for r in dump(table="route", vrf=vrf, limit=10000, static=False)]
    assert "10.251.0.0/16" not in prefixes and sorted(prefixes) == sorted(p for p in st_.routes[(vrf, 4)])
    assert "10.251.0.0/16" in [r["prefix"] for r in dump(table="route", vrf=vrf, limit=10000)]
    assert {x["vni"]: x["vrf"] for x in dump(table="vni")} == {900: 900, **{k: v["vrf"] for k, v in st_.vnis.items()}}


def test_an_out_of_band_change_moves_the_vrouters_digest():
    st_ = _state()
    b = built(st_)
    vrf = sorted(st_.vrfs)[0]
    prefix = sorted(st_.routes[(vrf, 4)])[0]
    FN.apply(b, [("route_del", {"vrf": vrf, "family": 4, "prefixes": [prefix]})])
    got = vrouter_digest(b)
    want, tables = S.digests(st_)
    assert [k for k in D.KINDS if got["digests"][k] != want[k]] == ["route"]
    assert [k for k in tables if got["routes"].get(k) != tables[k]] == [D.route_key(vrf, 4)]
