"""The cluster<->node channel and the node agent, in process (no root: the vrouters are
tests/fake_node.py's): the state's wire form round-trips and a bad one is refused naming the field; the
long poll answers when the state moves (not before), a newer request supersedes a held one, a node the
cluster agent pushes itself is refused; a node agent brings its vrouter to the state, follows changes
with diffs, keeps working while the cluster agent is away, and a restarted node agent snapshots the same
objects in place (nothing swept)."""
from __future__ import annotations

import copy
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fake_node as FN
from agent_strategies import intent_specs
from control import client as C
from control import protocol as P
from control.agent.agent import Agent
from control.agent.compiler import compile_cluster
from control.agent.intent import load
from control.node import channel as CH
from control.node import state as S
from control.node.agent import NodeAgent
from test_node_digest import _state, vrouter_digest


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=intent_specs(), encap=st.sampled_from(("vxlan", "mplsoudp")))
def test_the_wire_form_round_trips_through_msgpack(spec, encap):
    import msgpack
    for st_ in compile_cluster(load(spec.yaml()), encap=encap).nodes.values():
        wire = msgpack.unpackb(msgpack.packb(S.to_wire(st_), use_bin_type=True), raw=False)
        assert S.from_wire(wire, control=st_.control) == st_


@pytest.mark.parametrize("edit,field", [
    (lambda w: w["vifs"][0]["tap"].update(pod_mac="nope"), "b.state.vifs[0].tap.pod_mac"),
    (lambda w: w["nhs"].insert(1, copy.deepcopy(w["nhs"][0])), "b.state.nhs[1].id"),
    (lambda w: w["routes"][0].update(lens=b"\x21" + w["routes"][0]["lens"][1:]), "b.state.routes[0].lens[0]"),
    (lambda w: w["routes"].insert(1, copy.deepcopy(w["routes"][0])), "b.state.routes[1].addrs[0]"),
    (lambda w: w["policies"][0].update(kind="vrf"), "b.state.policies[0].kind"),
    (lambda w: w.pop("vnis"), "b.state.vnis"),
    (lambda w: w.update(extra=1), "b.state.extra"),
    (lambda w: w.update(vrfs={}), "b.state.vrfs"),
])
def test_a_bad_state_is_refused_naming_the_field(edit, field):
    w = S.to_wire(_state())
    edit(w)
    with pytest.raises(P.ProtocolError) as e:
        S.from_wire(w)
    assert e.value.field == field, e.value


@pytest.fixture
def service(tmp_path):
    s = CH.ClusterService(f"ipc://{tmp_path}/cluster.sock", hold=1.5)
    s.start()
    yield s
    s.stop()


def client(service, **kw):
    return C.Client(service.endpoint, ops=CH.OPS, timeout=kw.pop("timeout", 5), retries=0, **kw)


def test_the_long_poll(service):
    st_ = _state()
    st_.control = None          # served to its node agent
    with client(service) as c:
        assert c.call("hello", {"node": "node-1"}) == {"instance": service.instance, "generation": 0, "known": False}
        t0 = time.monotonic()
        r = c.call("state", {"node": "node-1", "since": 0})              # nothing yet: held to the end
        assert r["state"] is None and r["generation"] == 0 and time.monotonic() - t0 >= 1.4
        service.publish({"node-1": st_}, set())
        r = c.call("state", {"node": "node-1", "since": 0, "instance": service.instance})   # at once
        assert r["generation"] == 1 and S.from_wire(r["state"]) == st_
        # held until the state moves, answered as soon as it does
        threading.Timer(0.4, service.publish, ({"node-1": S.from_wire(S.to_wire(st_))}, set())).start()
        threading.Timer(0.7, lambda: service.publish({"node-1": _changed(st_)}, set())).start()
        t0 = time.monotonic()
        r = c.call("state", {"node": "node-1", "since": 1, "applied": 1, "instance": service.instance})
        took = time.monotonic() - t0
        assert r["generation"] == 2 and 0.6 < took < 1.3, took        # an equal state is not a new generation
        assert service.status("node-1") == (True, 1, 2) and not service.in_sync("node-1")
        # another instance seen by the node agent: the state at once, whatever since says
        r = c.call("state", {"node": "node-1", "since": 2, "applied": 2, "instance": "another"})
        assert r["state"] is not None and not service.in_sync("node-1")   # applied under another instance
        r = c.call("state", {"node": "node-1", "since": 2, "applied": 2, "instance": service.instance})
        assert r["state"] is None and service.in_sync("node-1")
        # a node the cluster agent pushes itself has no node agent
        service.publish({}, {"node-1"})
        with pytest.raises(C.InUseError) as e:
            c.call("hello", {"node": "node-1"})
        assert e.value.field == "b.node"
        with pytest.raises(C.InvalidError):
            c.call("state", {"node": "node-1"})                          # since is required


def _changed(st_):
    new = copy.deepcopy(st_)
    new.vifs[sorted(new.vifs)[0]]["mtu"] = 1400
    return new


def test_a_newer_request_supersedes_the_held_one(service):
    import zmq
    service.publish({"node-1": _state()}, set())
    c = client(service)
    try:
        seq1, p1 = c._request("state", {"node": "node-1", "since": 1, "instance": service.instance})
        seq2, p2 = c._request("state", {"node": "node-1", "since": 1, "applied": 1, "instance": service.instance})
        c.sock.send(p1)
        time.sleep(0.2)
        t0 = time.monotonic()
        c.sock.send(p2)
        assert c.sock.poll(1000, zmq.POLLIN)
        rep = P.decode_reply(c.sock.recv())
        assert rep.seq == seq1 and rep.body["state"] is None and time.monotonic() - t0 < 0.5
        assert service.status("node-1")[1] == 1                          # the newer one reported applied
    finally:
        c.close()


NODES = """
apiVersion: vrouter.io/v1
kind: Node
metadata: {{name: node-{n}}}
spec: {{fabricAddress: 192.0.2.{n}, fabricMac: "02:fa:00:00:00:0{n}"}}
"""
PODS = """
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec: {nodeName: node-1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: default}
spec: {nodeName: node-2}
"""


def wait(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.02)


class Running:
    """A NodeAgent in its threads."""

    def __init__(self, node, cluster, vrouter, **kw):
        self.agent = NodeAgent(node, cluster, vrouter, timeout=1.0, hold=kw.pop("hold", 1.0), **kw)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.agent.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=10)
        self.agent.close()


def test_node_agents_with_the_cluster_agent(tmp_path):
    (tmp_path / "intent").mkdir()
    intent = tmp_path / "intent" / "i.yaml"
    intent.write_text("---".join(NODES.format(n=n) for n in (1, 2)) + PODS)
    state = str(tmp_path / "state.json")
    listen = f"ipc://{tmp_path}/cluster.sock"
    agent = Agent([tmp_path / "intent"], state, listen=listen, hold=1.0, netns_format=None)
    runs = []
    with FN.fake_vrouter(tmp_path, "node-1") as (ep1, b1), FN.fake_vrouter(tmp_path, "node-2") as (ep2, b2):
        try:
            assert agent.round() and not agent.converged() and agent.unserved() == ["node-1", "node-2"]
            runs = [Running("node-1", listen, ep1), Running("node-2", listen, ep2)]
            wait(agent.converged, what="convergence")
            assert agent.unserved() == [] and not agent.nodes        # nothing pushed directly
            for b, n in ((b1, "node-1"), (b2, "node-2")):
                assert vrouter_digest(b)["digests"] == S.digests(agent.cluster.nodes[n])[0]
            p1 = runs[0].agent.pusher
            assert [h["kind"] for h in p1.history] == ["snapshot"]
            # an intent change: a diff, and the cluster agent sees it applied
            intent.write_text(intent.read_text() + PODS.replace("web", "web-2").replace("name: db", "name: db-2"))
            assert agent.round()
            wait(agent.converged, what="convergence after a change")
            assert [h["kind"] for h in p1.history] == ["snapshot", "diff"]
            want1 = agent.cluster.nodes["node-1"]
            assert vrouter_digest(b1)["digests"] == S.digests(want1)[0]
            # the cluster agent away: the node agents keep the state; its successor (another instance,
            # the same allocations) serves the same state, and nothing is pushed
            agent.close()
            wait(lambda: not runs[0].agent.connected, 5, "disconnection")
            FN.apply(b1, [("route_del", {"vrf": sorted(want1.vrfs)[0], "family": 4,
                                         "prefixes": [sorted(want1.routes[(sorted(want1.vrfs)[0], 4)])[0]]})])
            runs[0].agent.pusher.audit(runs[0].agent.state[1])          # the node agent still repairs
            assert vrouter_digest(b1)["digests"] == S.digests(want1)[0]
            agent = Agent([tmp_path / "intent"], state, listen=listen, hold=1.0, netns_format=None)
            assert agent.round()
            wait(agent.converged, what="convergence with a new cluster agent")
            assert [h["kind"] for h in p1.history] == ["snapshot", "diff", "audit"]
            # a node agent restarted: a snapshot of the same ids, nothing swept
            runs[0].close()
            runs[0] = Running("node-1", listen, ep1)
            wait(lambda: runs[0].agent.pusher.history, what="the new node agent's push")
            h = runs[0].agent.pusher.history[0]
            assert h["kind"] == "snapshot" and not any(h["swept"].values()), h
            wait(agent.converged, what="convergence with a new node agent")
        finally:
            for r in runs:
                r.close()
            agent.close()


def test_a_direct_node_refuses_a_node_agent(tmp_path):
    (tmp_path / "i.yaml").write_text(NODES.format(n=1).replace("fabricMac", f'control: "ipc://{tmp_path}/v.sock", '
                                                                            "fabricMac"))
    listen = f"ipc://{tmp_path}/cluster.sock"
    agent = Agent([tmp_path], None, listen=listen, hold=1.0)
    r = None
    try:
        agent.compile()
        r = Running("node-1", listen, f"ipc://{tmp_path}/v.sock")
        wait(lambda: r.agent.cluster_error, what="refusal")
        assert "InUseError" in r.agent.cluster_error and "spec.control" in r.agent.cluster_error
        assert r.agent.state is None
    finally:
        if r:
            r.close()
        agent.close()
