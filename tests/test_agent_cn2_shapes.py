"""CN2's shapes in the compiler, against a reference model that knows nothing of the compiler.

Random intents (tests/agent_strategies.py's, VNRs included) get on top: explicit route targets on networks,
networks defined by NetworkAttachmentDefinitions, custom pod networks on namespaces and pods, RouteTables
whose next hops are addresses pinned with Multus' ``ips`` (one or two per prefix: ECMP) and networks that
forward on the fabric. The model: a network receives another's routes when a VNR says so (CN2's VNR rules,
test_agent_reach.model_routes_into) or when one exports a target the other imports; a pod's primary network
is its own custom pod network, else its namespace's, else the default one; a RouteTable prefix of network V
is reached from every network that receives V's routes (and V), at the interfaces of V holding its next
hops (those on the sender's node when there are some: ECMP's local preference).
A packet walk over nothing but the compiled tables (LPM, next hops, ECMP groups, VNI / label tables, the
fabric VRF) must agree, for both encapsulations.
"""
from __future__ import annotations

import copy
import ipaddress
import itertools
import json
from dataclasses import dataclass

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_strategies import NETWORKS_ANNOTATION, IntentSpec, intent_specs
from control.agent.compiler import compile_cluster
from control.agent.intent import load
from test_agent_reach import Fabric, check_tables, model_routes_into

ENCAPS = ("vxlan", "mplsoudp")
TARGETS = ("target:64512:1", "target:64512:2", "target:65000:7")
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEFAULT = ("default", "default-podnetwork")


@dataclass
class Shapes:
    base: IntentSpec
    rts: dict            # vn key -> (both, imports, exports)
    nad: set             # vn keys written as NADs
    pod_networks: set    # vn keys with podNetwork: true
    ns_pod_network: dict  # namespace -> vn key
    pod_custom: dict     # pod name -> vn key
    ff: set              # vn keys with fabricForwarding
    pinned: dict         # (pod name, attachment index) -> address
    routes: list         # (vn key, prefix, [next-hop addresses])

    def docs(self) -> list[dict]:
        out = []
        for d in self.base.docs():
            kind, meta = d["kind"], d["metadata"]
            if kind == "Node":
                d["spec"]["fabricGatewayMac"] = "02:00:00:00:00:fe"
            if kind in ("Subnet", "VirtualNetwork"):
                vk = (meta["namespace"], meta["name"] if kind == "VirtualNetwork" else meta["name"].rsplit("-", 1)[0])
                if vk in self.nad:
                    if kind == "VirtualNetwork":
                        out.append(self._nad(vk, d))
                    continue
                if kind == "VirtualNetwork":
                    self._vn_spec(vk, d["spec"])
            if kind == "Pod":
                name = meta["name"]
                pod = next(p for p in self.base.pods if p.name == name)
                ann = meta.setdefault("annotations", {})
                if pod.networks:
                    ann[NETWORKS_ANNOTATION] = json.dumps([
                        {"name": vn, "namespace": ns, **({"ips": [f"{self.pinned[(name, i)]}/24"]}
                                                          if (name, i) in self.pinned else {})}
                        for i, (ns, vn) in enumerate(pod.networks)])
                if name in self.pod_custom:
                    ann["net.juniper.contrail.podnetwork"] = "/".join(self.pod_custom[name])
            out.append(d)
        for ns, vk in sorted(self.ns_pod_network.items()):
            out.insert(0, {"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": ns, "annotations": {"net.juniper.contrail.podnetwork": "/".join(vk)}}})
        for i, (vk, prefix, hops) in enumerate(self.routes):
            out.append({"apiVersion": "core.contrail.juniper.net/v3", "kind": "RouteTable",
                        "metadata": {"name": f"rt{i}", "namespace": vk[0]},
                        "spec": {"routes": {"route": [{"prefix": prefix, "nextHop": h, "nextHopType": "ip-address"}
                                                      for h in hops]}}})
        return out

    def _vn_spec(self, vk, spec: dict) -> None:
        both, imp, exp = self.rts.get(vk, ((), (), ()))
        for k, v in (("routeTargetList", both), ("importRouteTargetList", imp), ("exportRouteTargetList", exp)):
            if v:
                spec[k] = list(v)
        if vk in self.pod_networks:
            spec["podNetwork"] = True
        if vk in self.ff:
            spec["fabricForwarding"] = True
        tables = [{"name": f"rt{i}", "namespace": v[0]} for i, (v, _, _) in enumerate(self.routes) if v == vk]
        if tables:
            spec["routeTableReferences"] = tables

    def _nad(self, vk, vn_doc) -> dict:
        vn = self.base.vn(vk)
        net = {"ipamV4Subnet": vn.cidr4, **({"ipamV6Subnet": vn.cidr6} if vn.v6 else {})}
        both, imp, exp = self.rts.get(vk, ((), (), ()))
        for k, v in (("routeTargetList", both), ("importRouteTargetList", imp), ("exportRouteTargetList", exp)):
            if v:
                net[k] = list(v)
        if vk in self.pod_networks:
            net["podNetwork"] = True
        if vk in self.ff:
            net["fabricForwarding"] = True
        assert not any(v == vk for v, _, _ in self.routes)
        return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": vk[1], "namespace": vk[0], "labels": vn_doc["metadata"]["labels"],
                             "annotations": {"juniper.net/networks": json.dumps(net)}}}

    def yaml(self) -> str:
        return yaml.safe_dump_all(self.docs(), sort_keys=False)


@st.composite
def shapes(draw) -> Shapes:
    base = draw(intent_specs(policies=False))
    for vn in base.vns:
        vn.vni = None           # a NAD has no VNI field: keep every network alike
    keys = [v.key for v in base.vns]
    rts = {}
    for k in keys:
        if draw(st.integers(0, 2)) == 0:
            rts[k] = tuple(tuple(draw(st.lists(st.sampled_from(TARGETS), max_size=2, unique=True))) for _ in range(3))
    pod_networks = set(draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)))
    ff = set(draw(st.lists(st.sampled_from(keys), max_size=2, unique=True)))
    pnl = sorted(pod_networks)
    ns_pod = {}
    pod_custom = {}
    if pnl:
        for ns in sorted({p.namespace for p in base.pods}):
            if draw(st.integers(0, 2)) == 0:
                ns_pod[ns] = draw(st.sampled_from(pnl))
        for p in base.pods:
            if draw(st.integers(0, 3)) == 0:
                pod_custom[p.name] = draw(st.sampled_from(pnl))
    # static routes: next hops pinned on pods' attachments (host .200 + n of the VN's /24)
    pinned, by_vn = {}, {}
    for p in base.pods:
        for i, vk in enumerate(p.networks):
            if vk not in [p.networks[j] for j in range(i)]:          # once per VN per pod
                by_vn.setdefault(vk, []).append((p.name, i))
    routes, n = [], 0
    for r in range(draw(st.integers(0, 3))):
        vk = draw(st.sampled_from(keys))
        cands = by_vn.get(vk, [])
        if not cands:
            continue
        hops = []
        for who in draw(st.lists(st.sampled_from(cands), min_size=1, max_size=2, unique=True)):
            if who not in pinned:
                pinned[who] = f"10.{base.vn(vk).index}.0.{200 + len(pinned)}"
            hops.append(pinned[who])
        routes.append((vk, f"172.16.{r}.0/24", hops))
    nad = {k for k in keys if k not in {v for v, _, _ in routes} and draw(st.integers(0, 2)) == 0}
    return Shapes(base, rts, nad, pod_networks, ns_pod, pod_custom, ff, pinned, routes)


# ---------------------------------------------------------------------------------------------- the model

def model_receives(s: Shapes) -> dict:
    """VN -> VNs whose routes it receives: the VNR rules, or an explicit target one exports and the other imports."""
    out = model_routes_into(s.base)
    imp = {k: set(v[0]) | set(v[1]) for k, v in s.rts.items()}
    exp = {k: set(v[0]) | set(v[2]) for k, v in s.rts.items()}
    for a, b in itertools.permutations([v.key for v in s.base.vns], 2):
        if imp.get(a, set()) & exp.get(b, set()):
            out[a].add(b)
    return out


def model_primary(s: Shapes, pod) -> tuple:
    return s.pod_custom.get(pod.name) or s.ns_pod_network.get(pod.namespace) or DEFAULT


class Walk(Fabric):
    """Fabric's walk, with ECMP groups (every member) and plain IP on the fabric (the fabric VRF)."""

    def ends(self, x, addr) -> set:
        here = self.c.nodes[x.node]
        nh = here.nhs.get(self.lpm(x.node, here.vifs[x.vif]["vrf"], addr))
        return self._follow(x.node, nh, addr, 0)

    def _follow(self, node, nh, addr, hops) -> set:
        """Where next hop ``nh`` of ``node`` delivers ``addr``: the (node, vif, MAC) of every interface next
        hop it ends at; a tunnel or the fabric crossed at most twice."""
        if nh is None or hops > 2:
            return set()
        here = self.c.nodes[node]
        if nh["type"] == "ecmp":
            return set().union(*(self._follow(node, here.nhs.get(m), addr, hops) for m in nh["members"]))
        if nh["type"] == "interface" and nh["vif"] == 0:           # plain IP to another node's fabric VRF
            m = next((n for n, f in self.macs.items() if f == nh["dmac"]), None)
            if m is None or m == node:
                return set()
            return self._follow(m, self.c.nodes[m].nhs.get(self.lpm(m, 0, addr)), addr, hops + 1)
        if nh["type"] == "interface":
            return {(node, nh["vif"], nh["dmac"])}
        m = self.by_fabric.get(nh["dst"])
        if m is None or nh["type"] != "tunnel" or nh.get("encap") != self.encap:
            return set()
        there = self.c.nodes[m]
        if self.encap == "vxlan":
            vni = there.vnis.get(nh["vni"])
            last = there.nhs.get(self.lpm(m, vni["vrf"], addr)) if vni else None
        else:
            lab = there.labels.get(nh["label"])
            last = there.nhs.get(lab["nh"]) if lab else None
        return self._follow(m, last, addr, hops + 1)


@FAST
@given(s=shapes())
def test_compiled_tables_give_the_cn2_shapes_reachability(s):
    model = model_receives(s)
    for encap in ENCAPS:
        intent = load(s.yaml())
        c = compile_cluster(intent, encap=encap)
        check_tables_ff(intent, c, encap)
        w = Walk(c, intent, encap)
        w.macs = {n: node.fabric_mac for n, node in intent.nodes.items()}
        ifs = c.interfaces
        for p in s.base.pods:
            mine = [i for i in ifs if i.pod == p.key]
            assert [i.vn for i in mine] == [model_primary(s, p)] + list(p.networks), p
        for (name, i), a in s.pinned.items():
            (itf,) = [x for x in ifs if x.pod[1] == name and x.index == i + 1]
            assert ipaddress.ip_address(a) in itf.addresses
        for x, y in itertools.permutations(ifs, 2):
            want = x.vn == y.vn or y.vn in model.get(x.vn, set())
            for d in y.addresses:
                got = w.ends(x, d)
                assert (got == {(y.node, y.vif, y.mac)}) == want and (want or not got & {(y.node, y.vif, y.mac)}), (
                    f"{encap}: {x.owner} ({x.vn}) -> {y.owner} {d} ({y.vn}): ends {got}, model {want}\n{s.yaml()}")
        for vk, prefix, hops in s.routes:
            holders = {(i.node, i.vif, i.mac) for i in ifs if i.vn == vk and
                       any(ipaddress.ip_address(h) in i.addresses for h in hops)}
            dst = next(ipaddress.ip_network(prefix).hosts())
            for x in ifs:
                # ECMP prefers the members on the sender's node (local preference), else takes them all
                near = {h for h in holders if h[0] == x.node}
                want = (near or holders) if (x.vn == vk or vk in model.get(x.vn, set())) else set()
                assert w.ends(x, dst) == want, (encap, x.owner, x.vn, prefix, hops, s.yaml())


def check_tables_ff(intent, c, encap):
    """check_tables, with the fabric's plain-IP next hops and ECMP groups set aside for it."""
    cc = copy.copy(c)
    cc.nodes = {}
    for name, st_ in c.nodes.items():
        s2 = copy.deepcopy(st_)
        odd = {i for i, nh in s2.nhs.items() if nh["type"] == "ecmp" or (nh["type"] == "interface" and nh["vif"] == 0)}
        for i in odd:
            nh = s2.nhs.pop(i)
            assert all(m in st_.nhs for m in nh.get("members", [])), nh
        s2.routes = {k: {p: n for p, n in t.items() if n not in odd} for k, t in s2.routes.items() if k[0] != 0}
        s2.vrfs.pop(0, None)
        for v in s2.vifs.values():      # RouteTable prefixes routed to a vif are sources it may use
            v["prefixes"] = [p for p in v["prefixes"] if p.endswith(("/32", "/128"))]
        cc.nodes[name] = s2
    check_tables(intent, cc, encap)
