"""control.agent.agent.diff: the ops it sends are safe (never break the vrouter's referential rules) and
complete (they end exactly at the desired state).

``NodeSim`` is a node's tables with the rules of control/protocol.py and vrouter/control_backend.py:
a vif needs its VRF, a next hop its vif (tunnels use vif 0, the fabric, always there), a route its VRF and
next hops, a label its next hop, a VNI its VRF, a vif policy its vif; nothing still referenced is
deleted; a vif_update naming another device replaces the vif's (the vrouter closes the old TAP first),
and with ``devices`` no two vifs ever hold the same device (a Linux namespace has one device of a name).
"""
from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from agent_strategies import IntentSpec, PodSpec, VNSpec, spec_pairs
from control.node.push import diff
from control.agent.compiler import FABRIC_VIF, NodeState, compile_cluster
from control.agent.intent import load

ENCAPS = ("vxlan", "mplsoudp")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Refused(Exception):
    pass


class NodeSim:
    """One node's tables; ``apply`` refuses (raises Refused) what the vrouter would refuse.
    ``devices``: also refuse a vif_add / vif_update whose device (netns, name) another vif has."""

    def __init__(self, devices: bool = False):
        self.devices = devices
        self.vrfs: dict[int, dict] = {}
        self.vifs: dict[int, dict] = {}
        self.nhs: dict[int, dict] = {}
        self.labels: dict[int, dict] = {}
        self.vnis: dict[int, dict] = {}
        self.routes: dict[tuple[int, int], dict[str, int]] = {}
        self.policies: dict[int, dict] = {}

    # -- helpers
    def _need(self, cond, why):
        if not cond:
            raise Refused(why)

    def _nh_users(self, nid):
        users = [f"route {p} of VRF {v}/{f}" for (v, f), t in self.routes.items() for p, n in t.items() if n == nid]
        return users + [f"label {lab}" for lab, b in self.labels.items() if b["nh"] == nid]

    def apply(self, op, b):
        getattr(self, "op_" + op)(copy.deepcopy(b))

    # -- VRFs
    def op_vrf_add(self, b):
        self.vrfs[b["vrf"]] = b

    def op_vrf_del(self, b):
        vrf = b["vrf"]
        self._need(vrf in self.vrfs, f"VRF {vrf} does not exist")
        self._need(not [i for i, v in self.vifs.items() if v["vrf"] == vrf], f"VRF {vrf} in use by a vif")
        self._need(not [i for i, v in self.vnis.items() if v["vrf"] == vrf], f"VRF {vrf} in use by a VNI")
        self._need(not any(t for (v, _), t in self.routes.items() if v == vrf), f"VRF {vrf} in use by routes")
        del self.vrfs[vrf]

    # -- vifs
    def op_vif_add(self, b):
        self._need(b["id"] not in self.vifs, f"vif_add of vif {b['id']}, which exists (vif_update it)")
        self._need(b["vrf"] in self.vrfs, f"vif {b['id']}: VRF {b['vrf']} does not exist")
        self._device_free(b)
        self.vifs[b["id"]] = b

    def _device_free(self, b):
        if self.devices and b.get("tap"):
            dev = (b["tap"].get("netns"), b["tap"]["name"])
            other = [i for i, v in self.vifs.items()
                     if i != b["id"] and v.get("tap") and (v["tap"].get("netns"), v["tap"]["name"]) == dev]
            self._need(not other, f"vif {b['id']}: device {dev[1]} in netns {dev[0]} already exists (vif {other})")

    def op_vif_update(self, b):
        old = self.vifs.get(b["id"])
        self._need(old is not None, f"vif {b['id']} does not exist")
        self._need(b["vrf"] in self.vrfs, f"vif {b['id']}: VRF {b['vrf']} does not exist")
        self._device_free(b)
        self.vifs[b["id"]] = b

    def op_vif_del(self, b):
        vid = b["id"]
        self._need(vid in self.vifs, f"vif {vid} does not exist")
        users = [i for i, n in self.nhs.items() if n["vif"] == vid]
        self._need(not users, f"vif {vid} in use by next hops {users}")
        self._need(vid not in self.policies, f"vif {vid} in use by its policy")
        del self.vifs[vid]

    # -- next hops
    def _nh_set(self, b):
        self._need(b["vif"] == FABRIC_VIF or b["vif"] in self.vifs, f"next hop {b['id']}: vif {b['vif']} does not exist")
        self.nhs[b["id"]] = b

    def op_nh_add(self, b):
        self._need(b["id"] not in self.nhs, f"nh_add of next hop {b['id']}, which exists (nh_update it)")
        self._nh_set(b)

    def op_nh_update(self, b):
        self._need(b["id"] in self.nhs, f"next hop {b['id']} does not exist")
        self._nh_set(b)

    def op_nh_del(self, b):
        nid = b["id"]
        self._need(nid in self.nhs, f"next hop {nid} does not exist")
        users = self._nh_users(nid)
        self._need(not users, f"next hop {nid} in use by {users[:3]}")
        del self.nhs[nid]

    # -- routes
    def op_route_add(self, b):
        self._need(isinstance(b["prefixes"], list) and isinstance(b["nhs"], list)
                   and len(b["prefixes"]) == len(b["nhs"]) > 0, f"route_add body {b}")
        self._need(b["vrf"] in self.vrfs, f"route_add: VRF {b['vrf']} does not exist")
        for p, n in zip(b["prefixes"], b["nhs"]):
            self._need(n in self.nhs, f"route {p} of VRF {b['vrf']}: next hop {n} does not exist")
            self._need((":" in p) == (b["family"] == 6), f"route {p} in family {b['family']}")
        t = self.routes.setdefault((b["vrf"], b["family"]), {})
        t.update(zip(b["prefixes"], b["nhs"]))

    def op_route_del(self, b):
        self._need(isinstance(b["prefixes"], list) and b["prefixes"] and "nhs" not in b, f"route_del body {b}")
        t = self.routes.get((b["vrf"], b["family"]), {})
        for p in b["prefixes"]:
            self._need(p in t, f"route_del: {p} not in VRF {b['vrf']}/{b['family']}")
            del t[p]

    # -- labels, VNIs, policies
    def op_label_add(self, b):
        self._need(b["nh"] in self.nhs, f"label {b['label']}: next hop {b['nh']} does not exist")
        self.labels[b["label"]] = b

    def op_label_del(self, b):
        self._need(b["label"] in self.labels, f"label {b['label']} does not exist")
        del self.labels[b["label"]]

    def op_vni_add(self, b):
        self._need(b["vrf"] in self.vrfs, f"VNI {b['vni']}: VRF {b['vrf']} does not exist")
        self.vnis[b["vni"]] = b

    def op_vni_del(self, b):
        self._need(b["vni"] in self.vnis, f"VNI {b['vni']} does not exist")
        del self.vnis[b["vni"]]

    def op_policy_set(self, b):
        self._need(b["kind"] == "vif", f"policy kind {b['kind']}")
        self._need(b["id"] in self.vifs, f"policy on vif {b['id']}, which does not exist")
        self.policies[b["id"]] = b

    def op_policy_del(self, b):
        self._need(b["kind"] == "vif" and b["id"] in self.policies, f"no policy on vif {b['id']}")
        del self.policies[b["id"]]

    # -- comparing
    def tables(self) -> dict:
        return {"vrfs": self.vrfs, "vifs": self.vifs, "nhs": self.nhs, "labels": self.labels, "vnis": self.vnis,
                "routes": {k: t for k, t in self.routes.items() if t}, "policies": self.policies}


def state_tables(s: NodeState) -> dict:
    return {"vrfs": s.vrfs, "vifs": s.vifs, "nhs": s.nhs, "labels": s.labels, "vnis": s.vnis,
            "routes": {k: t for k, t in s.routes.items() if t}, "policies": s.policies}


def run(sim: NodeSim, ops, what: str) -> None:
    for n, (op, b) in enumerate(ops):
        try:
            sim.apply(op, b)
        except Refused as e:
            shown = "\n".join(f"  {'>>' if i == n else '  '} {o} {bb}" for i, (o, bb) in enumerate(ops))
            raise AssertionError(f"{what}: op {n} ({op}) refused: {e}\n{shown}") from None


def push(old: NodeState | None, new: NodeState, sim: NodeSim, what: str) -> None:
    before = (copy.deepcopy(old), copy.deepcopy(new))
    ops = diff(old, new)
    assert (old, new) == before, "diff changed its arguments"
    run(sim, ops, what)
    assert sim.tables() == state_tables(new), f"{what}: the node does not end at the desired state"


def check_transition(a_spec: IntentSpec, b_spec: IntentSpec, encap: str, shared_alloc: bool = True,
                     devices: bool = True) -> None:
    ca = compile_cluster(load(a_spec.yaml()), encap=encap)
    cb = compile_cluster(load(b_spec.yaml()), ca.alloc if shared_alloc else None, encap=encap)
    for name, sa in ca.nodes.items():
        assert diff(sa, sa) == []
        push(None, sa, NodeSim(devices), f"{name}: snapshot of A")
    for name, sb in cb.nodes.items():
        assert diff(sb, sb) == []
        sim = NodeSim(devices)
        sa = ca.nodes.get(name)
        if sa is not None:
            run(sim, diff(None, sa), f"{name}: snapshot of A")
        push(sa, sb, sim, f"{name}: A -> B")


# ---------------------------------------------------------------------------------------------- properties

@FAST
@given(pair=spec_pairs(), encap=st.sampled_from(ENCAPS))
def test_diff_is_safe_and_complete(pair, encap):
    """A compiled, then B compiled with A's allocations (what the agent does): every node goes from
    nothing to A and from A to B without a refused op, ending exactly at B."""
    check_transition(*pair, encap)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=spec_pairs(), encap=st.sampled_from(ENCAPS))
def test_diff_between_unrelated_allocations(pair, encap):
    """B compiled from scratch: ids collide with A's for other objects (a VRF, vif or next hop id now
    means something else), the hardest case for the ordering. diff's contract is any old -> any new."""
    check_transition(*pair, encap, shared_alloc=False, devices=False)


def test_diff_of_equal_states_is_empty():
    spec = IntentSpec([1, 2], [VNSpec(1, "ns-a", {}), VNSpec(2, "ns-a", {}, v6=True)],
                      pods=[PodSpec("a", "ns-a", 1, {"app": "a"}, [("ns-a", "vn1")]),
                            PodSpec("b", "ns-a", 2, {}, [("ns-a", "vn2")])])
    for encap in ENCAPS:
        c = compile_cluster(load(spec.yaml()), encap=encap)
        for st_ in c.nodes.values():
            assert diff(st_, copy.deepcopy(st_)) == []
            assert diff(None, st_) != []


# ---------------------------------------------------------------------------------------------- minimal cases

def _one_pod(networks, v6=False):
    return IntentSpec([1, 2], [VNSpec(1, "ns-a", {}, v6=v6), VNSpec(2, "ns-a", {})],
                      pods=[PodSpec("web", "ns-a", 1, {}, networks)])


@pytest.mark.parametrize("a,b", [
    (_one_pod([("ns-a", "vn1")]), _one_pod([("ns-a", "vn2")])),       # the pod's eth1 moves to another VN
    (_one_pod([("ns-a", "vn1")]), _one_pod([("ns-a", "vn1")], v6=True)),  # its VN gains a v6 subnet
], ids=["eth1-changes-vn", "vn-gains-v6"])
def test_replacing_a_pods_device(a, b):
    """A pod interface keeps its vif id when its network or addresses change: one vif_update names the
    new device (the vrouter replaces the TAP), the routes move, and no two vifs ever claim eth1 of the
    pod's namespace (before, a new vif id was added while the old one still held the device)."""
    ca = compile_cluster(load(a.yaml()), encap="vxlan")
    cb = compile_cluster(load(b.yaml()), ca.alloc, encap="vxlan")
    (name, sa), = [(n, x) for n, x in ca.nodes.items() if x.vifs]     # the pod's node
    ops = [op for op, _ in diff(sa, cb.nodes[name])]
    assert "vif_add" not in ops and "vif_del" not in ops and ops.count("vif_update") >= 1, ops
    check_transition(a, b, "vxlan", devices=True)
    check_transition(a, b, "vxlan", devices=True)
