"""control.agent.compiler: the compiled routes give exactly CN2's reachability.

Random intents (tests/agent_strategies.py) are compiled; an independent model of CN2's VirtualNetworkRouter
semantics says which VN receives which VN's routes, and a packet walk over nothing but the compiled node
tables (LPM, next hops, VNI / label tables) says which pod interface reaches which. They must agree, for
both encapsulations; the tables must also be referentially sound and stable under recompilation.
"""
from __future__ import annotations

import copy
import ipaddress
import itertools
import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

import selector_ref as ref
from agent_strategies import (NS_NAME_LABEL, ImportSpec, IntentSpec, PodSpec, VNRSpec, VNSpec, intent_specs)
from control.agent.compiler import Allocations, compile_cluster
from control.agent.intent import IntentError, load

ENCAPS = ("vxlan", "mplsoudp")
POD_NETWORK = ("default", "default-podnetwork")
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------- the model

def model_routes_into(spec: IntentSpec) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """VN -> the VNs whose routes it receives, straight from CN2's rules:

    isolated by default; a mesh VNR's members reach each other; a VNR importing another receives the
    imported VNR's members' routes (one way), honoured only for mesh<-mesh, hub<-spoke, spoke<-hub; a VN in
    several VNRs gets the union. Never itself (its own routes are its own)."""
    members = {r.key: {v.key for v in spec.vns
                       if v.namespace == r.namespace and ref.matches(r.raw_selector(), v.labels)}
               for r in spec.vnrs}
    out = {v.key: set() for v in spec.vns}
    allowed = {("mesh", "mesh"), ("hub", "spoke"), ("spoke", "hub")}
    for r in spec.vnrs:
        if r.type == "mesh":
            for a in members[r.key]:
                out[a] |= members[r.key]
        for imp in r.imports:
            if imp.namespace_selector is None:
                scope = {r.namespace}
            else:
                scope = {ns for ns in {q.namespace for q in spec.vnrs}
                         if ref.matches({"matchLabels": imp.namespace_selector}, {NS_NAME_LABEL: ns})}
            for other in spec.vnrs:
                if other.key == r.key or other.namespace not in scope or \
                        not ref.matches(imp.raw_selector(), other.labels):
                    continue
                if (r.type, other.type) in allowed:
                    for a in members[r.key]:
                        out[a] |= members[other.key]
    for a in out:
        out[a].discard(a)
    return out


# ---------------------------------------------------------------------------------------------- the packet walk

class Fabric:
    """Forwarding over the compiled NodeStates only. ``walk(x, d)`` -> (node, vif, dmac) of the interface
    next hop the packet from pod interface ``x`` to address ``d`` ends at, or None (dropped)."""

    def __init__(self, cluster, intent, encap: str):
        self.c, self.encap = cluster, encap
        self.by_fabric = {str(n.fabric_address): name for name, n in intent.nodes.items()}
        self._tables: dict = {}

    def lpm(self, node: str, vrf: int, addr) -> int | None:
        key = (node, vrf, addr.version)
        t = self._tables.get(key)
        if t is None:
            t = sorted(((ipaddress.ip_network(p), nh) for p, nh in
                        self.c.nodes[node].routes.get((vrf, addr.version), {}).items()),
                       key=lambda x: -x[0].prefixlen)
            self._tables[key] = t
        return next((nh for net, nh in t if addr in net), None)

    def walk(self, x, addr):
        here = self.c.nodes[x.node]
        vif = here.vifs.get(x.vif)
        if vif is None:
            return None
        nh = here.nhs.get(self.lpm(x.node, vif["vrf"], addr))
        if nh is None:
            return None
        if nh["type"] == "interface":
            return (x.node, nh["vif"], nh["dmac"])
        if nh["type"] != "tunnel" or nh.get("encap") != self.encap:
            return None
        m = self.by_fabric.get(nh["dst"])
        if m is None:
            return None
        there = self.c.nodes[m]
        if self.encap == "vxlan":
            vni = there.vnis.get(nh["vni"])
            if vni is None:
                return None
            last = there.nhs.get(self.lpm(m, vni["vrf"], addr))
        else:
            lab = there.labels.get(nh["label"])
            if lab is None:
                return None
            last = there.nhs.get(lab["nh"])
        if last is None or last["type"] != "interface":
            return None
        return (m, last["vif"], last["dmac"])

    def delivered(self, x, y, addr) -> bool:
        return self.walk(x, addr) == (y.node, y.vif, y.mac)


def compile_spec(spec: IntentSpec, encap: str, alloc=None):
    intent = load(spec.yaml())
    return intent, compile_cluster(intent, alloc, encap=encap)


def check_reach(spec: IntentSpec, intent, cluster, encap: str) -> None:
    model = model_routes_into(spec)
    fab = Fabric(cluster, intent, encap)
    ifs = cluster.interfaces
    assert {(i.pod, i.index) for i in ifs} == {(p.key, n) for p in spec.pods for n in range(len(p.networks) + 1)}
    for x, y in itertools.permutations(ifs, 2):
        want = x.vn == y.vn or y.vn in model.get(x.vn, set())
        for d in y.addresses:
            got = fab.delivered(x, y, d)
            assert got == want, (
                f"{encap}: {x.owner} ({x.vn[0]}/{x.vn[1]} on {x.node}) -> {y.owner} {d} ({y.vn[0]}/{y.vn[1]} on "
                f"{y.node}): delivered={got}, CN2 says {want} (model routes_into={sorted(model.get(x.vn, ()))})\n"
                f"walk ended at {fab.walk(x, d)}\n{spec.yaml()}")
    pod_net = [i for i in ifs if i.index == 0]
    assert all(i.vn == POD_NETWORK for i in pod_net)
    for x, y in itertools.permutations(pod_net, 2):
        assert all(fab.delivered(x, y, d) for d in y.addresses), (x.owner, y.owner)


def check_tables(intent, cluster, encap: str) -> None:
    fabric = {name: (str(n.fabric_address), n.fabric_mac) for name, n in intent.nodes.items()}
    for name, st in cluster.nodes.items():
        for (vrf, fam), table in st.routes.items():
            assert vrf in st.vrfs, (name, vrf)
            for prefix, nh in table.items():
                assert ipaddress.ip_network(prefix).version == fam
                assert nh in st.nhs, f"{name}: VRF {vrf} route {prefix} -> missing next hop {nh}"
        for nid, nh in st.nhs.items():
            assert nh["id"] == nid
            if nh["type"] == "interface":
                assert nh["vif"] in st.vifs, f"{name}: next hop {nid} uses missing vif {nh['vif']}"
                assert nh["dmac"] == st.vifs[nh["vif"]]["tap"]["pod_mac"]
            else:
                assert nh["type"] == "tunnel" and nh["vif"] == 0 and nh["encap"] == encap
                assert nh["src"] == fabric[name][0]
                peers = [n for n, (addr, _) in fabric.items() if addr == nh["dst"]]
                assert len(peers) == 1 and peers[0] != name, nh
                assert nh["dmac"] == fabric[peers[0]][1]
                assert ("vni" in nh) == (encap == "vxlan") and ("label" in nh) == (encap == "mplsoudp")
        for vid, vif in st.vifs.items():
            assert vif["id"] == vid and vif["vrf"] in st.vrfs, (name, vid)
        for vni, b in st.vnis.items():
            assert b["vni"] == vni and b["vrf"] in st.vrfs, (name, vni)
        for lab, b in st.labels.items():
            assert b["label"] == lab and b["nh"] in st.nhs and st.nhs[b["nh"]]["type"] == "interface"
        for vid, b in st.policies.items():
            assert b["kind"] == "vif" and b["id"] == vid and vid in st.vifs and st.vifs[vid]["policy"]
        assert (encap == "mplsoudp") or not st.labels
    # pod interfaces: one vif each, no two sharing a vif id on a node
    seen = set()
    for itf in cluster.interfaces:
        assert (itf.node, itf.vif) not in seen, f"vif {itf.vif} given twice on {itf.node}"
        seen.add((itf.node, itf.vif))
        st = cluster.nodes[itf.node]
        assert st.vifs[itf.vif]["vrf"] == cluster.vrf_ids[itf.vn]
        assert st.vnis[cluster.vnis[itf.vn]]["vrf"] == cluster.vrf_ids[itf.vn]
    assert {(n, v) for n, st in cluster.nodes.items() for v in st.vifs} == seen
    # addresses: inside the VN's subnet, one per subnet, unique within the VN, never the gateway
    by_vn: dict = {}
    for itf in cluster.interfaces:
        subs = intent.vn_subnets(intent.virtual_networks[itf.vn])
        assert sorted(a.version for a in itf.addresses) == sorted(s.cidr.version for s in subs)
        for a, plen in zip(itf.addresses, itf.prefixlens):
            (sub,) = [s for s in subs if s.cidr.version == a.version]
            assert a in sub.cidr and plen == sub.cidr.prefixlen and a != sub.default_gateway
            assert a != sub.cidr.network_address and (a.version == 6 or a != sub.cidr.broadcast_address)
            assert (itf.vn, a) not in by_vn, f"{a} given to {by_vn.get((itf.vn, a))} and {itf.owner} in {itf.vn}"
            by_vn[(itf.vn, a)] = itf.owner
        assert cluster.nodes[itf.node].vifs[itf.vif]["prefixes"] == [f"{a}/{a.max_prefixlen}" for a in itf.addresses]
    # VRF ids and VNIs: one per VN, distinct
    assert len(set(cluster.vrf_ids.values())) == len(cluster.vrf_ids)
    assert len(set(cluster.vnis.values())) == len(cluster.vnis)


def check_stable(intent, cluster, encap: str) -> None:
    again = compile_cluster(intent, cluster.alloc, encap=encap)
    assert again.nodes == cluster.nodes
    assert again.interfaces == cluster.interfaces
    assert again.alloc.to_json() == cluster.alloc.to_json()
    j = cluster.alloc.to_json()
    back = Allocations.from_json(json.loads(json.dumps(j)))
    assert back.to_json() == j
    assert compile_cluster(intent, back, encap=encap).nodes == cluster.nodes


# ---------------------------------------------------------------------------------------------- properties

@FAST
@given(spec=intent_specs())
def test_routes_give_cn2_reachability(spec):
    for encap in ENCAPS:
        intent, cluster = compile_spec(spec, encap)
        check_reach(spec, intent, cluster, encap)


@FAST
@given(spec=intent_specs())
def test_tables_sound_and_stable(spec):
    for encap in ENCAPS:
        intent, cluster = compile_spec(spec, encap)
        check_tables(intent, cluster, encap)
        check_stable(intent, cluster, encap)


# ---------------------------------------------------------------------------------------------- examples

def _vn(i, ns="ns-a", v6=False, **labels):
    return VNSpec(i, ns, labels, v6)


def _pods(vns, nodes=(1, 2)):
    """Two pods per VN, on different nodes (local and tunnelled paths both)."""
    out = []
    for vn in vns:
        for n in nodes:
            out.append(PodSpec(f"p{len(out)}", vn.namespace, n, {}, [vn.key]))
    return out


def reach_matrix(spec: IntentSpec, encap: str) -> set[tuple[str, str]]:
    """(vn name, vn name) pairs, distinct VNs, where every interface of the first reaches every one of the
    second (all-or-nothing per pair is asserted)."""
    intent, cluster = compile_spec(spec, encap)
    check_tables(intent, cluster, encap)
    fab = Fabric(cluster, intent, encap)
    ifs = [i for i in cluster.interfaces if i.index > 0]
    out: dict = {}
    for x, y in itertools.permutations(ifs, 2):
        for d in y.addresses:
            out.setdefault((x.vn[1], y.vn[1]), set()).add(fab.delivered(x, y, d))
    for k, v in out.items():
        assert len(v) == 1, f"{k}: some interfaces reach, some do not"
    return {k for k, v in out.items() if v == {True} and k[0] != k[1]}


def _both_ways(*pairs):
    return {p for a, b in pairs for p in ((a, b), (b, a))}


def test_every_example_agrees_with_the_model():
    for spec in (HUB_TWO_SPOKE_VNRS, HUB_ONE_SPOKE_VNR, MESHES_ACROSS_NAMESPACES, HYBRID, ONE_WAY):
        for encap in ENCAPS:
            intent, cluster = compile_spec(spec, encap)
            check_reach(spec, intent, cluster, encap)


HUB_TWO_SPOKE_VNRS = IntentSpec(
    [1, 2], [_vn(1, role="hub"), _vn(2, site="s1"), _vn(3, site="s2")],
    [VNRSpec("hub", "ns-a", "hub", {"vnr": "hub"}, {"role": "hub"}, [ImportSpec({"vnr": "spoke"}, None)]),
     VNRSpec("spoke-1", "ns-a", "spoke", {"vnr": "spoke"}, {"site": "s1"}, [ImportSpec({"vnr": "hub"}, None)]),
     VNRSpec("spoke-2", "ns-a", "spoke", {"vnr": "spoke"}, {"site": "s2"}, [ImportSpec({"vnr": "hub"}, None)])])
HUB_TWO_SPOKE_VNRS.pods = _pods(HUB_TWO_SPOKE_VNRS.vns)


@pytest.mark.parametrize("encap", ENCAPS)
def test_hub_and_two_spokes(encap):
    # spokes reach the hub and the hub both spokes; the spokes never reach each other
    assert reach_matrix(HUB_TWO_SPOKE_VNRS, encap) == _both_ways(("vn1", "vn2"), ("vn1", "vn3"))


HUB_ONE_SPOKE_VNR = IntentSpec(
    [1, 2], [_vn(1, role="hub"), _vn(2, role="spoke"), _vn(3, role="spoke"), _vn(4, role="hub", v6=True)],
    [VNRSpec("hub", "ns-a", "hub", {"vnr": "hub"}, {"role": "hub"}, [ImportSpec({"vnr": "spoke"}, None)]),
     VNRSpec("spokes", "ns-a", "spoke", {"vnr": "spoke"}, {"role": "spoke"}, [ImportSpec({"vnr": "hub"}, None)])])
HUB_ONE_SPOKE_VNR.pods = _pods(HUB_ONE_SPOKE_VNR.vns)


@pytest.mark.parametrize("encap", ENCAPS)
def test_members_of_one_spoke_or_hub_vnr_stay_apart(encap):
    # vn2 and vn3 share the spoke VNR, vn1 and vn4 the hub VNR: neither pair reaches each other
    assert reach_matrix(HUB_ONE_SPOKE_VNR, encap) == _both_ways(("vn1", "vn2"), ("vn1", "vn3"), ("vn4", "vn2"),
                                                                ("vn4", "vn3"))


MESHES_ACROSS_NAMESPACES = IntentSpec(
    [1, 2, 3], [_vn(1, "ns-a", mesh="yes"), _vn(2, "ns-a", mesh="yes", v6=True), _vn(3, "ns-a"),
                _vn(4, "ns-b", mesh="yes", v6=True)],
    [VNRSpec("mesh-a", "ns-a", "mesh", {"vnr": "a"}, {"mesh": "yes"},
             [ImportSpec({"vnr": "b"}, {NS_NAME_LABEL: "ns-b"})]),
     VNRSpec("mesh-b", "ns-b", "mesh", {"vnr": "b"}, {"mesh": "yes"}, [ImportSpec({"vnr": "a"}, {})])])
MESHES_ACROSS_NAMESPACES.pods = _pods(MESHES_ACROSS_NAMESPACES.vns, (1, 3))


@pytest.mark.parametrize("encap", ENCAPS)
def test_two_meshes_in_two_namespaces_importing_each_other(encap):
    # vn1, vn2 (ns-a) and vn4 (ns-b) all reach each other; vn3 (selected by nothing) stays isolated
    assert reach_matrix(MESHES_ACROSS_NAMESPACES, encap) == _both_ways(("vn1", "vn2"), ("vn1", "vn4"),
                                                                       ("vn2", "vn4"))


HYBRID = IntentSpec(
    [1, 2], [_vn(1, role="hub", mesh="m"), _vn(2, role="spoke"), _vn(3, mesh="m")],
    [VNRSpec("hub", "ns-a", "hub", {"vnr": "hub"}, {"role": "hub"}, [ImportSpec({"vnr": "spoke"}, None)]),
     VNRSpec("spoke", "ns-a", "spoke", {"vnr": "spoke"}, {"role": "spoke"}, [ImportSpec({"vnr": "hub"}, None)]),
     VNRSpec("mesh", "ns-a", "mesh", {"vnr": "mesh"}, {"mesh": "m"})])
HYBRID.pods = _pods(HYBRID.vns)


@pytest.mark.parametrize("encap", ENCAPS)
def test_hybrid_hub_also_in_a_mesh(encap):
    # vn1 is the hub for spoke vn2 and meshed with vn3; vn2 and vn3 do not reach each other
    assert reach_matrix(HYBRID, encap) == _both_ways(("vn1", "vn2"), ("vn1", "vn3"))


ONE_WAY = IntentSpec(
    [1, 2], [_vn(1, side="a"), _vn(2, side="b")],
    [VNRSpec("A", "ns-a", "mesh", {"vnr": "A"}, {"side": "a"}, [ImportSpec({"vnr": "B"}, None)]),
     VNRSpec("B", "ns-a", "mesh", {"vnr": "B"}, {"side": "b"})])
ONE_WAY.pods = _pods(ONE_WAY.vns)


@pytest.mark.parametrize("encap", ENCAPS)
def test_one_way_import(encap):
    intent, cluster = compile_spec(ONE_WAY, encap)
    a, b = ("ns-a", "vn1"), ("ns-a", "vn2")
    addrs = {vk: {f"{ad}/32" for i in cluster.interfaces if i.vn == vk for ad in i.addresses} for vk in (a, b)}
    for st in cluster.nodes.values():
        ra = set(st.routes.get((cluster.vrf_ids[a], 4), {}))
        rb = set(st.routes.get((cluster.vrf_ids[b], 4), {}))
        assert addrs[b] <= ra and addrs[a] <= ra       # A's VRF: its own routes and B's
        assert addrs[b] <= rb and not addrs[a] & rb     # B's VRF: its own only
    assert reach_matrix(ONE_WAY, encap) == {("vn1", "vn2")}


@pytest.mark.parametrize("encap", ENCAPS)
def test_ignored_imports_leak_nothing(encap):
    # spoke<-spoke, hub<-hub, mesh<-hub, hub<-mesh: every one ignored
    spec = IntentSpec([1, 2], [_vn(1, k="1"), _vn(2, k="2"), _vn(3, k="3"), _vn(4, k="4")],
                      [VNRSpec("s1", "ns-a", "spoke", {"t": "spoke"}, {"k": "1"}, [ImportSpec({"t": "spoke"}, None)]),
                       VNRSpec("s2", "ns-a", "spoke", {"t": "spoke"}, {"k": "2"}, [ImportSpec({"t": "spoke"}, None)]),
                       VNRSpec("h3", "ns-a", "hub", {"t": "hub"}, {"k": "3"}, [ImportSpec({"t": "hub"}, None),
                                                                               ImportSpec({"t": "mesh"}, None)]),
                       VNRSpec("m4", "ns-a", "mesh", {"t": "mesh"}, {"k": "4"}, [ImportSpec({"t": "hub"}, None)])])
    spec.pods = _pods(spec.vns)
    assert reach_matrix(spec, encap) == set()


# ---------------------------------------------------------------------------------------------- matchExpressions

def _as_expressions(docs: list[dict]) -> list[dict]:
    """The same intent with every selector's matchLabels written as matchExpressions (``key In [value]``)."""
    def conv(sel):
        exprs = [{"key": k, "operator": "In", "values": [v]} for k, v in (sel.get("matchLabels") or {}).items()]
        return {"matchExpressions": exprs + list(sel.get("matchExpressions") or [])}

    out = copy.deepcopy(docs)
    for d in out:
        spec = d.get("spec", {})
        if d["kind"] == "VirtualNetworkRouter":
            spec["virtualNetworkSelector"] = conv(spec["virtualNetworkSelector"])
            for e in spec.get("import", {}).get("virtualNetworkRouters", []):
                for k in ("virtualNetworkRouterSelector", "namespaceSelector"):
                    if k in e:
                        e[k] = conv(e[k])
        elif d["kind"] == "NetworkPolicy":
            spec["podSelector"] = conv(spec["podSelector"])
            for peer in (p for rule in spec.get("ingress", []) for p in rule.get("from", [])):
                for k in ("podSelector", "namespaceSelector"):
                    if k in peer:
                        peer[k] = conv(peer[k])
    return out


@FAST
@given(spec=intent_specs())
def test_match_labels_written_as_match_expressions_compile_the_same(spec):
    docs = spec.docs()
    alt = _as_expressions(docs)
    assert "matchLabels" not in json.dumps([d for d in alt if d["kind"] in ("VirtualNetworkRouter", "NetworkPolicy")])
    for encap in ENCAPS:
        a = compile_cluster(load(yaml.safe_dump_all(docs)), encap=encap)
        b = compile_cluster(load(yaml.safe_dump_all(alt)), encap=encap)
        assert b.leaks == a.leaks and b.nodes == a.nodes and b.interfaces == a.interfaces


def _in(key, *values):
    return {"key": key, "operator": "In", "values": list(values)}


# CN2's hub-and-spoke shape, selecting with matchExpressions: a hub VNR for the VNs with a role, a spoke VNR
# for those with a site other than s3, each importing the other by an In expression on the VNR's label.
CN2_HUB_SPOKE_EXPRESSIONS = IntentSpec(
    [1, 2], [_vn(1, role="hub"), _vn(2, site="s1"), _vn(3, site="s2"), _vn(4, site="s3")],
    [VNRSpec("hub", "ns-a", "hub", {"vnr": "hub"}, {}, [ImportSpec({}, None, [_in("vnr", "spoke")])],
             [{"key": "role", "operator": "Exists"}]),
     VNRSpec("spoke", "ns-a", "spoke", {"vnr": "spoke"}, {}, [ImportSpec({}, None, [_in("vnr", "hub", "x")])],
             [{"key": "site", "operator": "Exists"}, {"key": "site", "operator": "NotIn", "values": ["s3"]},
              {"key": "role", "operator": "DoesNotExist"}])])
CN2_HUB_SPOKE_EXPRESSIONS.pods = _pods(CN2_HUB_SPOKE_EXPRESSIONS.vns)
# the same with matchLabels only: vn2 and vn3 carry a label of their own for the spoke VNR to select
CN2_HUB_SPOKE_LABELS = IntentSpec(
    [1, 2], [_vn(1, role="hub"), _vn(2, site="s1", spoke="yes"), _vn(3, site="s2", spoke="yes"), _vn(4, site="s3")],
    [VNRSpec("hub", "ns-a", "hub", {"vnr": "hub"}, {"role": "hub"}, [ImportSpec({"vnr": "spoke"}, None)]),
     VNRSpec("spoke", "ns-a", "spoke", {"vnr": "spoke"}, {"spoke": "yes"}, [ImportSpec({"vnr": "hub"}, None)])])
CN2_HUB_SPOKE_LABELS.pods = _pods(CN2_HUB_SPOKE_LABELS.vns)


@pytest.mark.parametrize("encap", ENCAPS)
def test_cn2_hub_and_spoke_with_match_expressions(encap):
    # the hub reaches both spokes and they it; the spokes not each other; vn4 (site s3) nothing
    want = _both_ways(("vn1", "vn2"), ("vn1", "vn3"))
    assert reach_matrix(CN2_HUB_SPOKE_EXPRESSIONS, encap) == want == reach_matrix(CN2_HUB_SPOKE_LABELS, encap)
    intent, cluster = compile_spec(CN2_HUB_SPOKE_EXPRESSIONS, encap)
    check_reach(CN2_HUB_SPOKE_EXPRESSIONS, intent, cluster, encap)


# ---------------------------------------------------------------------------------------------- pod devices

def _devices(cluster):
    out: dict = {}
    for name, st in cluster.nodes.items():
        for vid, b in st.vifs.items():
            out.setdefault((name, b["tap"]["netns"], b["tap"]["name"]), []).append(vid)
    return {k: v for k, v in out.items() if len(v) > 1}


@FAST
@given(spec=intent_specs())
def test_pod_devices_unique_per_namespace(spec):
    intent, cluster = compile_spec(spec, "vxlan")
    assert _devices(cluster) == {}


@pytest.mark.parametrize("pods,netns_format", [
    ([PodSpec("a", "ns-a", 1, {}, []), PodSpec("b", "ns-a", 1, {}, [])], None),
    ([PodSpec("x-y", "ns-a", 1, {}, []), PodSpec("y", "ns-a-x", 1, {}, [])], "{namespace}-{name}"),
], ids=["no-netns", "netns-name-collision"])
def test_two_pods_never_get_the_same_device(pods, netns_format):
    """A pod's device is ``eth<i>`` in the namespace ``netns_format`` names. Two pods of a node must never
    get the same (namespace, device name): with netns_format=None (the pod's devices stay in the node's
    namespace; the CLI's ``--netns-format ''``) every pod would have an eth0 there, and with the default
    "{namespace}-{name}" pod ns-a/x-y and pod ns-a-x/y both map to the netns ns-a-x-y. Either the compiler
    refuses the intent (IntentError) or it gives them distinct devices; the second vif_add could not
    create its device otherwise."""
    spec = IntentSpec([1, 2], [_vn(1)], pods=pods)
    try:
        cluster = compile_cluster(load(spec.yaml()), encap="vxlan", netns_format=netns_format)
    except IntentError as e:
        assert "network namespace" in str(e) or "netns" in str(e), e
        return
    assert _devices(cluster) == {}
