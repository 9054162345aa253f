"""control.node.push.NodePusher against a real control server and backend (in process, no devices):
a snapshot first, diffs after; the periodic audit finds what was changed behind its back (a route
deleted, a stray route, a next hop changed, a vif deleted with its next hop and route, a policy changed,
a label or VNI changed, stray objects of every kind), repairs it with ordered ops and not a snapshot,
logs and counts every repair per kind, and leaves the vrouter's digests equal to the desired state's."""
from __future__ import annotations

import copy
import logging
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fake_node as FN
from agent_strategies import intent_specs
from control import protocol as P
from control.agent.compiler import compile_cluster
from control.agent.intent import load
from control.node import state as S
from control.node.push import NodePusher, diff
from test_node_digest import SPEC, _state, vrouter_digest


@pytest.fixture
def vr(tmp_path):
    with FN.fake_vrouter(tmp_path, "node-1") as (ep, b):
        yield ep, b


def in_sync(b, want):
    return vrouter_digest(b)["digests"] == S.digests(want)[0]


def pusher(ep, **kw):
    return NodePusher("node-1", ep, timeout=2.0, audit_interval=kw.pop("audit_interval", 3600), **kw)


def test_snapshot_then_diffs_then_quiet_audits(vr):
    ep, b = vr
    want = _state()
    p = pusher(ep)
    try:
        assert p.sync(want) and p.history[-1]["kind"] == "snapshot" and in_sync(b, want)
        assert p.sync(want) and len(p.history) == 1           # nothing to do
        assert p.audit(want) == {} and p.counters["audit"] == 1 and len(p.history) == 1
        new = copy.deepcopy(want)
        vif = sorted(new.vifs)[0]
        new.vifs[vif]["mtu"] = 1400
        assert p.sync(new) and p.history[-1] == {**p.history[-1], "kind": "diff", "ops": {"vif_update": 1}}
        assert in_sync(b, new) and p.audit(new) == {}
    finally:
        p.close()


def _route(want, fam=4):
    vrf = sorted(v for v, f in want.routes if f == fam)[0]
    return vrf, sorted(want.routes[(vrf, fam)])[0]


OOB = {   # name -> (what an operator does behind the agent's back, the kinds the audit repairs)
    "route deleted": (lambda w: [("route_del", {"vrf": _route(w)[0], "family": 4, "prefixes": [_route(w)[1]]})],
                      {"route": 1}),
    "v6 route deleted": (lambda w: [("route_del", {"vrf": _route(w, 6)[0], "family": 6,
                                                   "prefixes": [_route(w, 6)[1]]})], {"route": 1}),
    "stray route": (lambda w: [("route_add", {"vrf": _route(w)[0], "family": 4, "prefixes": ["10.66.0.0/16"],
                                              "nhs": [sorted(w.nhs)[0]]})], {"route": 1}),
    "route to another next hop": (lambda w: [("route_add", {"vrf": _route(w)[0], "family": 4,
                                                            "prefixes": [_route(w)[1]],
                                                            "nhs": [sorted(w.nhs)[-1]]})], {"route": 1}),
    "next hop changed": (lambda w: [("nh_update", dict(_tunnel(w), dst="192.0.2.77"))], {"nh": 1}),
    "vif deleted with its next hop and routes": (lambda w: _drop_vif(w), None),
    "policy changed": (lambda w: [("policy_set", dict(_pol(w), rules=[{"id": 1, "action": "deny"}]))],
                       {"policy": 1}),
    "policy deleted": (lambda w: [("policy_del", {"kind": "vif", "id": _pol(w)["id"]})], {"policy": 1}),
    "label changed": (lambda w: [("label_add", {"label": sorted(w.labels)[0], "nh": sorted(w.nhs)[-1]})],
                      {"label": 1}),
    "vni changed": (lambda w: [("vni_add", {"vni": sorted(w.vnis)[0], "vrf": 4000}),
                               ("vrf_add", {"vrf": 4000})][::-1], {"vni": 1, "vrf": 1}),
    "strays of every kind": (lambda w: [("vrf_add", {"vrf": 4001}), ("nh_add", {"id": 4001, "type": "discard"}),
                                        ("vif_add", {"id": 4001, "kind": "virtual", "vrf": 4001,
                                                     "mac": "02:00:00:00:40:01"}),
                                        ("label_add", {"label": 4001, "nh": 4001}),
                                        ("vni_add", {"vni": 4001, "vrf": 4001}),
                                        ("route_add", {"vrf": 4001, "family": 4, "prefixes": ["10.0.0.0/8"],
                                                       "nhs": [4001]}),
                                        ("policy_set", {"kind": "vrf", "id": 4001, "rules": []}),
                                        ("policy_set", {"kind": "vif", "id": 4001, "rules": []})],
                             {"vrf": 1, "nh": 1, "vif": 1, "label": 1, "vni": 1, "route": 1, "policy": 2}),
}


def _tunnel(w):
    return next(b for b in w.nhs.values() if b["type"] == "tunnel")


def _pol(w):
    return w.policies[sorted(w.policies)[0]]


def _drop_vif(w):
    vid = sorted(w.policies)[0]                      # a pod with a policy, a label and routes
    nhs = [i for i, b in w.nhs.items() if b.get("vif") == vid]
    ops = [("policy_del", {"kind": "vif", "id": vid})]
    for (vrf, fam), t in w.routes.items():
        gone = [p for p, n in t.items() if n in nhs]
        if gone:
            ops.append(("route_del", {"vrf": vrf, "family": fam, "prefixes": gone}))
    ops += [("label_del", {"label": lab}) for lab, b in w.labels.items() if b["nh"] in nhs]
    ops += [("nh_del", {"id": i}) for i in nhs] + [("vif_del", {"id": vid})]
    return ops


@pytest.mark.parametrize("case", sorted(OOB))
def test_the_audit_repairs_what_was_changed_out_of_band(vr, case, caplog):
    ep, b = vr
    want = _state("mplsoudp")
    p = pusher(ep)
    try:
        assert p.sync(want)
        oob, expect = OOB[case]
        ops = oob(want)
        FN.apply(b, ops)
        assert not in_sync(b, want)
        generation = b.gen.copy()
        with caplog.at_level(logging.WARNING, "vrouter.push"):
            repaired = p.audit(want)
        if expect is None:      # the vif, its policy, next hop, label and routes
            expect = {"vif": 1, "policy": 1, "nh": 1, "label": 1,
                      "route": sum(len(body["prefixes"]) for op, body in ops if op == "route_del")}
        assert repaired == expect
        assert in_sync(b, want), vrouter_digest(b)
        assert dict(p.repairs) == expect and p.counters["audit_repaired"] == 1
        assert p.history[-1]["kind"] == "audit" and p.history[-1]["unrepaired"] == []
        assert p.counters["snapshot"] == 1                  # repaired without a snapshot
        assert all(b.gen.get(k) == g for k, g in generation.items() if g != -1 and k in b.gen)
        logged = [r.getMessage() for r in caplog.records if "audit:" in r.getMessage()]
        assert len(logged) == sum(expect.values()), logged
        assert p.audit(want) == {} and p.counters["audit_repaired"] == 1     # nothing left
    finally:
        p.close()


def test_the_audit_runs_every_audit_interval_from_sync(vr):
    ep, b = vr
    want = _state()
    p = pusher(ep, audit_interval=0.3)
    try:
        assert p.sync(want)
        vrf, prefix = _route(want)
        FN.apply(b, [("route_del", {"vrf": vrf, "family": 4, "prefixes": [prefix]})])
        assert p.sync(want) and not in_sync(b, want)        # not due yet: the snapshot counts as an audit
        deadline = time.monotonic() + 3
        while not in_sync(b, want) and time.monotonic() < deadline:
            assert p.due(want, time.monotonic()) or not p.audit_due(time.monotonic())
            p.sync(want)
            time.sleep(0.05)
        assert in_sync(b, want) and p.repairs["route"] == 1
    finally:
        p.close()


def test_a_vrouter_without_the_digest_op_is_not_audited(vr, monkeypatch):
    ep, b = vr
    monkeypatch.delattr(type(b), "op_digest")
    want = _state()
    p = pusher(ep)
    try:
        assert p.sync(want)
        assert p.audit(want) == {} and p.audit_interval == 0 and p.last_error is None and p.pushed == want
    finally:
        p.close()


MUTATIONS = ("route_del", "route_add", "nh_update", "vif_update", "policy_set", "vrf_add", "vni_add")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(spec=intent_specs(), encap=st.sampled_from(("vxlan", "mplsoudp")), data=st.data())
def test_random_out_of_band_changes_are_repaired(tmp_path_factory, spec, encap, data):
    c = compile_cluster(load(spec.yaml()), encap=encap)
    name, want = data.draw(st.sampled_from(sorted(c.nodes.items(), key=lambda x: x[0])))
    if not want.vifs:
        return
    with FN.fake_vrouter(tmp_path_factory.mktemp("vr"), name) as (ep, b):
        p = NodePusher(name, ep, timeout=2.0, audit_interval=3600)
        try:
            assert p.sync(want)
            for m in data.draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=4)):
                FN.apply(b, [_mutation(m, want, data)])
            p.audit(want)
            assert in_sync(b, want) and p.history[-1]["unrepaired"] == []
        finally:
            p.close()


def _mutation(m, w, data):
    vrf = data.draw(st.sampled_from(sorted(w.vrfs)))
    nh = data.draw(st.sampled_from(sorted(w.nhs)))
    if m == "route_del":
        fam, t = data.draw(st.sampled_from(sorted(w.routes.items())))
        return ("route_del", {"vrf": fam[0], "family": fam[1], "prefixes": [data.draw(st.sampled_from(sorted(t)))]})
    if m == "route_add":
        return ("route_add", {"vrf": vrf, "family": 4, "prefixes": [f"10.200.{data.draw(st.integers(0, 3))}.0/24"],
                              "nhs": [nh]})
    if m == "nh_update":
        return ("nh_update", {"id": nh, "type": "interface", "vif": 0, "dmac": "02:00:00:00:99:99"})
    if m == "vif_update":
        vid = data.draw(st.sampled_from(sorted(w.vifs)))
        return ("vif_update", dict(w.vifs[vid], mtu=1280, tap=None))
    if m == "policy_set":
        vid = data.draw(st.sampled_from(sorted(w.vifs)))
        return ("policy_set", {"kind": "vif", "id": vid, "rules": [{"id": 7, "proto": "udp", "action": "deny"}]})
    if m == "vrf_add":
        return ("vrf_add", {"vrf": vrf, "name": "renamed"})
    return ("vni_add", {"vni": 9999, "vrf": vrf})


def test_repairs_are_counted_per_kind_in_the_metrics(vr):
    import socket
    import urllib.request

    from control.node import metrics as M
    ep, b = vr
    want = _state()
    p = pusher(ep)
    try:
        assert p.sync(want)
        vrf, prefix = _route(want)
        FN.apply(b, [("route_del", {"vrf": vrf, "family": 4, "prefixes": [prefix]})])
        p.audit(want)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        http = M.serve(f"127.0.0.1:{port}", M.PushCollector(lambda: [p]))
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        finally:
            http.shutdown()
        assert 'vrouter_agent_audit_repairs_total{kind="route",node="node-1"} 1.0' in text, text
        assert 'vrouter_agent_audit_repairs_total{kind="vif",node="node-1"} 0.0' in text
        assert 'vrouter_agent_pushes_total{kind="snapshot",node="node-1"} 1.0' in text
        assert 'vrouter_agent_audits_total{node="node-1"} 1.0' in text
        assert 'vrouter_agent_in_sync{node="node-1"} 1.0' in text
    finally:
        p.close()
