"""The compiler's details: IPAM (fixed, stable, released, ranges, exhaustion), VNIs, warnings, the pods'
own routes, NetworkPolicy -> vif rule lists (checked by evaluating them with the vrouter's reference
policy evaluator), errors; and control.lab.expect on the same intents."""
import ipaddress

import numpy as np
import pytest

from control.agent import intent as I
from control.agent.compiler import Allocations, compile_cluster
from control.lab.expect import Expectation
from policy_ref import ListRef
from vrouter.flow import make_key
from vrouter.policy import DIRECTIONS

NODES = """
apiVersion: vrouter.io/v1
kind: Node
metadata: {name: n1}
spec: {fabricAddress: 192.0.2.1, control: "ipc:///x1", fabricMac: "02:fa:00:00:00:01"}
---
apiVersion: vrouter.io/v1
kind: Node
metadata: {name: n2}
spec: {fabricAddress: 192.0.2.2, control: "ipc:///x2", fabricMac: "02:fa:00:00:00:02"}
"""


def vn(name, cidr, labels=None, ns="default", vni=None, ranges=None):
    lab = f"labels: {labels}" if labels else ""
    rng = f"\n  ranges: [{{ipRanges: [{ranges}]}}]" if ranges else ""
    return f"""
---
apiVersion: core.contrail.juniper.net/v1alpha1
kind: Subnet
metadata: {{name: {name}-v4, namespace: {ns}}}
spec:
  cidr: {cidr}{rng}
---
apiVersion: core.contrail.juniper.net/v1alpha1
kind: VirtualNetwork
metadata: {{name: {name}, namespace: {ns}, {lab}}}
spec: {{v4SubnetReference: {{name: {name}-v4}}{f', vxlanNetworkIdentifier: {vni}' if vni else ''}}}
"""


def vnr(name, type_, select, labels="{}", imports=()):
    imp = ", ".join(f"{{virtualNetworkRouterSelector: {{matchLabels: {i}}}}}" for i in imports)
    return f"""
---
apiVersion: core.contrail.juniper.net/v1alpha1
kind: VirtualNetworkRouter
metadata: {{name: {name}, namespace: default, labels: {labels}}}
spec:
  type: {type_}
  virtualNetworkSelector: {{matchLabels: {select}}}
  import: {{virtualNetworkRouters: [{imp}]}}
"""


def pod(name, node, net=None, labels=None, ns="default", ip=None):
    ann = {}
    if net:
        ann["k8s.v1.cni.cncf.io/networks"] = net
    if ip:
        ann["vrouter.io/ip"] = ip
    return f"""
---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}, labels: {labels or {}}, annotations: {ann}}}
spec: {{nodeName: {node}}}
"""


def build(*parts, alloc=None, **kw):
    it = I.load(("t.yaml", NODES + "".join(parts)))
    return it, compile_cluster(it, alloc, **kw)


def addr(cl, podname, index=1):
    return str([i for i in cl.interfaces if i.pod[1] == podname and i.index == index][0].addresses[0])


# ------------------------------------------------------------------ IPAM

def test_ipam_fixed_stable_released():
    base = vn("red", "10.1.0.0/29")
    it, c1 = build(base, pod("a", "n1", "red"), pod("b", "n2", "red"), pod("c", "n1", "red", ip="10.1.0.2"))
    assert (addr(c1, "c"), addr(c1, "a"), addr(c1, "b")) == ("10.1.0.2", "10.1.0.3", "10.1.0.4")
    # b goes, d comes: a keeps its address, d takes the lowest free one (b's)
    _, c2 = build(base, pod("a", "n1", "red"), pod("c", "n1", "red", ip="10.1.0.2"), pod("d", "n2", "red"),
                  alloc=c1.alloc)
    assert (addr(c2, "a"), addr(c2, "d")) == ("10.1.0.3", "10.1.0.4")
    assert "default/b#1" not in c2.alloc.addresses["default/red-v4"]
    # the state file round trip gives the same result (an agent restart)
    again = Allocations.from_json(c2.alloc.to_json())
    _, c3 = build(base, pod("a", "n1", "red"), pod("c", "n1", "red", ip="10.1.0.2"), pod("d", "n2", "red"),
                  alloc=again)
    assert c3.nodes == c2.nodes
    # a fixed address wins over an earlier allocation: a moves
    _, c4 = build(base, pod("a", "n1", "red"), pod("c", "n1", "red", ip="10.1.0.2"),
                  pod("d", "n2", "red", ip="10.1.0.3"), alloc=c3.alloc)
    assert addr(c4, "d") == "10.1.0.3" and addr(c4, "a") not in ("10.1.0.2", "10.1.0.3")


def test_ipam_ranges_and_exhaustion():
    base = vn("red", "10.1.0.0/24", ranges="{from: 10.1.0.100, to: 10.1.0.101}")
    _, c = build(base, pod("a", "n1", "red"), pod("b", "n1", "red"))
    assert {addr(c, "a"), addr(c, "b")} == {"10.1.0.100", "10.1.0.101"}
    with pytest.raises(I.IntentError, match=r"t.yaml doc \d+ \(Pod default/c\).*red-v4 \(10.1.0.0/24\) has no free"):
        build(base, pod("a", "n1", "red"), pod("b", "n1", "red"), pod("c", "n1", "red"))


def test_vnis_explicit_and_allocated_and_vrfs_stable():
    _, c = build(vn("red", "10.1.0.0/24", vni=65536), vn("blue", "10.2.0.0/24"), pod("a", "n1", "red"))
    vnis = {k[1]: v for k, v in c.vnis.items()}
    assert vnis["red"] == 65536 and vnis["blue"] != 65536 and len(set(c.vnis.values())) == len(c.vnis)
    _, c2 = build(vn("blue", "10.2.0.0/24"), vn("red", "10.1.0.0/24", vni=65536), pod("a", "n1", "red"),
                  alloc=c.alloc)
    assert c2.vrf_ids == c.vrf_ids and c2.vnis == c.vnis


# ------------------------------------------------------------------ routes, warnings, errors

def test_pod_routes_follow_the_leaks_and_a_hub_imports_spokes_only():
    vnrs = (vnr("hub", "hub", "{role: hub}", "{r: hub}", ["{r: spoke}", "{r: hub2}"]) +
            vnr("hub2", "hub", "{role: hub2}", "{r: hub2}") + vnr("spoke", "spoke", "{role: spoke}", "{r: spoke}", ["{r: hub}"]))
    _, c = build(vn("h", "10.1.0.0/24", "{role: hub}"), vn("h2", "10.4.0.0/24", "{role: hub2}"),
                 vn("s1", "10.2.0.0/24", "{role: spoke}"), vn("s2", "10.3.0.0/24", "{role: spoke}"),
                 vnrs, pod("ph", "n1", "h"), pod("p1", "n1", "s1"), pod("p2", "n2", "s2"))
    assert any("hub) imports default/hub2 (hub): ignored" in w for w in c.warnings)
    taps = {(i.pod[1], i.index): c.nodes[i.node].vifs[i.vif]["tap"] for i in c.interfaces}
    assert taps[("ph", 1)]["routes"] == ["10.2.0.0/24", "10.3.0.0/24"] and not taps[("ph", 1)]["default_route"]
    assert taps[("p1", 1)]["routes"] == ["10.1.0.0/24"]
    assert taps[("p1", 0)]["default_route"] and taps[("p1", 0)]["routes"] == []
    # the spokes' VRFs on n1 hold no route to the other spoke
    vrf_s1 = c.vrf_ids[("default", "s1")]
    assert set(c.nodes["n1"].routes[(vrf_s1, 4)]) == {addr(c, "p1") + "/32", addr(c, "ph") + "/32"}


def test_overlapping_leaked_address_keeps_the_own_network_and_warns():
    mesh = vnr("m", "mesh", '{m: "1"}')
    _, c = build(vn("red", "10.1.0.0/24", '{m: "1"}'), vn("blue", "10.1.0.0/24", '{m: "1"}'), mesh,
                 pod("r", "n1", "red"), pod("b", "n2", "blue"))
    assert addr(c, "r") == addr(c, "b") == "10.1.0.2"
    red = c.vrf_ids[("default", "red")]
    nh = c.nodes["n1"].routes[(red, 4)]["10.1.0.2/32"]
    assert c.nodes["n1"].nhs[nh]["type"] == "interface"          # its own pod, not blue's through a tunnel
    assert any("10.1.0.2/32 of default/blue is not leaked into default/red" in w for w in c.warnings)


def test_tunnels_need_the_remote_fabric_mac():
    nodes = NODES.replace(', fabricMac: "02:fa:00:00:00:02"', "")
    it = I.load(("t.yaml", nodes + vn("red", "10.1.0.0/24") + pod("a", "n1", "red") + pod("b", "n2", "red")))
    with pytest.raises(I.IntentError, match=r"\(Node n2\): spec.fabricMac: needed: node n1 has tunnels"):
        compile_cluster(it)


def test_mplsoudp_labels_map_to_interface_next_hops():
    _, c = build(vn("red", "10.1.0.0/24"), pod("a", "n1", "red"), pod("b", "n2", "red"), encap="mplsoudp")
    n1, n2 = c.nodes["n1"], c.nodes["n2"]
    red = c.vrf_ids[("default", "red")]
    tun = n1.nhs[n1.routes[(red, 4)][addr(c, "b") + "/32"]]
    assert tun["encap"] == "mplsoudp" and tun["dst"] == "192.0.2.2"
    b_vif = [i for i in c.interfaces if i.pod[1] == "b" and i.index == 1][0].vif
    assert n2.nhs[n2.labels[tun["label"]]["nh"]] == {"id": n2.labels[tun["label"]]["nh"], "type": "interface",
                                                      "vif": b_vif, "dmac": n2.vifs[b_vif]["tap"]["pod_mac"]}


# ------------------------------------------------------------------ NetworkPolicy

POLICY = """
---
apiVersion: v1
kind: Namespace
metadata: {name: other, labels: {team: x}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: default}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress, Egress]
  ingress:
    - from: [{podSelector: {matchLabels: {app: web}}}]
      ports: [{protocol: TCP, port: 5432}, {protocol: UDP, port: 1000, endPort: 1010}]
    - from: [{namespaceSelector: {matchLabels: {team: x}}}]
    - from: [{ipBlock: {cidr: 10.9.0.0/16, except: [10.9.1.0/24]}}]
  egress:
    - to: [{podSelector: {matchLabels: {app: web}}}]
"""


def _verdict(rules, src, dst, proto, dport, direction):
    key = make_key(0, proto, src, dst, 40000, dport)
    action, _ = ListRef(rules, "pass").eval(np.atleast_1d(key)[0], DIRECTIONS[direction])
    return "pass" if action == 0 else "deny"


def test_network_policy_rules_behave_like_kubernetes():
    it, c = build(POLICY, vn("red", "10.1.0.0/24"),
                  pod("db", "n1", "red", {"app": "db"}), pod("web", "n2", "red", {"app": "web"}),
                  pod("other", "n2", "default/red", {"app": "web"}, ns="other"), pod("x", "n2", "red"))
    db = [i for i in c.interfaces if i.pod[1] == "db"]
    pol = c.nodes["n1"].policies
    assert set(pol) == {i.vif for i in db} and all(c.nodes["n1"].vifs[i.vif]["policy"] for i in db)
    rules = pol[db[1].vif]["rules"]
    me, web, other, x = (addr(c, n) for n in ("db", "web", "other", "x"))
    to_me = "egress"   # the vrouter's direction towards the vif: the pod's ingress
    assert _verdict(rules, web, me, "tcp", 5432, to_me) == "pass"
    assert _verdict(rules, web, me, "tcp", 22, to_me) == "deny"
    assert _verdict(rules, web, me, "udp", 1005, to_me) == "pass"
    assert _verdict(rules, web, me, "udp", 1011, to_me) == "deny"
    assert _verdict(rules, x, me, "tcp", 5432, to_me) == "deny"           # not app=web
    assert _verdict(rules, other, me, "tcp", 22, to_me) == "pass"         # namespace team=x: any port
    assert _verdict(rules, "10.9.2.1", me, "icmp", 0, to_me) == "pass"    # ipBlock
    assert _verdict(rules, "10.9.1.1", me, "icmp", 0, to_me) == "deny"    # ... except
    assert _verdict(rules, me, web, "tcp", 80, "ingress") == "pass"       # egress to web
    assert _verdict(rules, me, x, "tcp", 80, "ingress") == "deny"
    # pods no policy selects have no list
    assert not c.nodes["n2"].policies
    # expect.py agrees on the same questions
    e = Expectation(it, c)
    key = ("default", "db")
    assert e.connect(("default", "web"), me, "tcp", 5432)[0] == key
    assert e.connect(("default", "web"), me, "tcp", 22)[0] is None
    assert e.connect(("other", "other"), me, "tcp", 22)[0] == key
    assert e.connect(("default", "x"), me, "tcp", 5432)[1].startswith("NetworkPolicy default/db (ingress")
    assert e.connect(key, x, "tcp", 80)[1].startswith("NetworkPolicy default/db (egress")
    assert e.connect(key, web, "tcp", 80)[0] == ("default", "web")


def test_expect_follows_overlap_and_one_way_imports():
    vnrs = vnr("a", "mesh", "{n: a}", "{r: a}", ["{r: b}"]) + vnr("b", "mesh", "{n: b}", "{r: b}")
    it, c = build(vn("va", "10.1.0.0/24", "{n: a}"), vn("vb", "10.2.0.0/24", "{n: b}"),
                  vn("vc", "10.1.0.0/24"), vnrs, pod("pa", "n1", "va"), pod("pb", "n2", "vb"),
                  pod("pc", "n2", "vc"), pod("pa2", "n2", "va"))
    e = Expectation(it, c)
    # a imports b, b does not import a: a's VRF has b's routes, the reply has no way back
    assert ("default", "vb") in c.leaks[("default", "va")] and not c.leaks[("default", "vb")]
    who, why = e.connect(("default", "pa"), addr(c, "pb"))
    assert who is None and "no route back" in why
    # pc's address is pa's in va (overlap): from pa2 it reaches pa
    assert addr(c, "pc") == addr(c, "pa")
    assert e.connect(("default", "pa2"), addr(c, "pc"))[0] == ("default", "pa")
    assert ipaddress.ip_address(addr(c, "pa2")) in ipaddress.ip_network("10.1.0.0/24")
