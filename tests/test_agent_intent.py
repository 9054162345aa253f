"""control.agent.intent: CN2-style intent parsing and validation (pure Python)."""
import ipaddress
import textwrap

import pytest
import yaml
from hypothesis import given, strategies as st

from control.agent.intent import (DEFAULT_POD_NETWORK, Intent, IntentError, IntentFormatError, LabelSelector, load,
                                  match_labels)

ip = ipaddress.ip_address
net = ipaddress.ip_network

NETWORKS = textwrap.dedent("""\
    apiVersion: v1
    kind: Namespace
    metadata: {name: team-a, labels: {role: spoke-ns}}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: team-b, labels: {role: spoke-ns}}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: shared, labels: {role: hub-ns}}
    ---
    apiVersion: v1
    kind: Namespace
    metadata:
      name: secure
      labels: {core.juniper.net/isolated-namespace: "true"}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: prod}
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: Subnet
    metadata: {name: red-v4, namespace: prod}
    spec:
      cidr: 10.1.0.0/24
      defaultGateway: 10.1.0.1
      ranges:
      - key: pods
        ipRanges: [{from: 10.1.0.10, to: 10.1.0.100}]
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: Subnet
    metadata: {name: red-v6, namespace: prod}
    spec: {cidr: "fd00:1::/64", defaultGateway: "fd00:1::1"}
    ---
    apiVersion: core.contrail.juniper.net/v1
    kind: Subnet
    metadata: {name: blue-v4, namespace: prod}
    spec: {cidr: 10.1.0.0/24, defaultGateway: 10.1.0.1}
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: Subnet
    metadata: {name: green-v4, namespace: prod}
    spec: {cidr: 10.3.0.0/24, defaultGateway: 10.3.0.254}
    status: {state: Success}
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: VirtualNetwork
    metadata: {name: red, namespace: prod, labels: {vn: red, web: "yes"}}
    spec:
      v4SubnetReference: {name: red-v4}
      v6SubnetReference: {name: red-v6, namespace: prod}
      vxlanNetworkIdentifier: 1001
      fabricSNAT: false
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: VirtualNetwork
    metadata: {name: blue, namespace: prod, labels: {vn: blue}}
    spec: {v4SubnetReference: {name: blue-v4}, vxlanNetworkIdentifier: 1002}
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: VirtualNetwork
    metadata: {name: green, namespace: prod, labels: {vn: green, web: "yes"}}
    spec: {v4SubnetReference: {name: green-v4}}
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: VirtualNetworkRouter
    metadata: {name: web-mesh, namespace: prod, labels: {vnr: web}}
    spec:
      type: mesh
      virtualNetworkSelector: {matchLabels: {web: "yes"}}
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: Subnet
    metadata: {name: svc-v4, namespace: shared}
    spec: {cidr: 10.50.0.0/24}
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: VirtualNetwork
    metadata: {name: services, namespace: shared, labels: {tier: shared}}
    spec: {v4SubnetReference: {name: svc-v4}}
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: VirtualNetworkRouter
    metadata: {name: hub, namespace: shared, labels: {vnr: hub}}
    spec:
      type: hub
      virtualNetworkSelector: {matchLabels: {tier: shared}}
      import:
        virtualNetworkRouters:
        - virtualNetworkRouterSelector: {matchLabels: {vnr: spoke}}
          namespaceSelector: {matchLabels: {role: spoke-ns}}
""")

TEAMS = "".join(textwrap.dedent(f"""\
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: Subnet
    metadata: {{name: {t}-v4, namespace: team-{t}}}
    spec: {{cidr: 10.{n}.0.0/16}}
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: VirtualNetwork
    metadata: {{name: {t}-net, namespace: team-{t}, labels: {{team: "{t}"}}}}
    spec: {{v4SubnetReference: {{name: {t}-v4}}}}
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: VirtualNetworkRouter
    metadata: {{name: spoke, namespace: team-{t}, labels: {{vnr: spoke}}}}
    spec:
      type: spoke
      virtualNetworkSelector: {{matchLabels: {{team: "{t}"}}}}
      import:
        virtualNetworkRouters:
        - virtualNetworkRouterSelector: {{matchLabels: {{vnr: hub}}}}
          namespaceSelector: {{matchLabels: {{role: hub-ns}}}}
    """) for t, n in (("a", 20), ("b", 21)))

WORKLOADS = textwrap.dedent("""\
    apiVersion: vrouter.io/v1
    kind: Node
    metadata: {name: node-1}
    spec: {fabricAddress: 192.0.2.1, control: "tcp://192.0.2.1:7000", fabricMac: "02:00:00:00:00:01"}
    ---
    apiVersion: vrouter.io/v1
    kind: Node
    metadata: {name: node-2}
    spec: {fabricAddress: "2001:db8::2", control: "tcp://[2001:db8::2]:7000"}
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: web-1
      namespace: prod
      labels: {app: web}
      annotations:
        k8s.v1.cni.cncf.io/networks: prod/red, blue@net2
        vrouter.io/ip: "10.1.0.5"
    spec: {nodeName: node-1, containers: [{name: c, image: nginx}]}
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: web-2
      namespace: prod
      labels: {app: web}
      annotations:
        k8s.v1.cni.cncf.io/networks: '[{"name": "green", "namespace": "prod", "interface": "net1"}]'
    spec: {nodeName: node-2}
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: db
      namespace: prod
      labels: {app: db}
      annotations: {k8s.v1.cni.cncf.io/networks: blue, vrouter.io/ip: "10.1.0.5, 10.244.7.7"}
    spec: {nodeName: node-2}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: vault, namespace: secure}
    spec: {nodeName: node-1}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: plain}
    spec: {nodeName: node-1}
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: db-allow-web, namespace: prod}
    spec:
      podSelector: {matchLabels: {app: db}}
      policyTypes: [Ingress, Egress]
      ingress:
      - from:
        - podSelector: {matchLabels: {app: web}}
        - namespaceSelector: {matchLabels: {role: hub-ns}}
          podSelector: {}
        - ipBlock: {cidr: 172.16.0.0/16, except: [172.16.1.0/24]}
        ports:
        - {protocol: TCP, port: 5432}
        - {protocol: UDP, port: 30000, endPort: 30100}
        - {port: 80}
      egress:
      - to: [{ipBlock: {cidr: 0.0.0.0/0}}]
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: ignored-deploy, namespace: prod}
    spec: {replicas: 3}
""")


@pytest.fixture(scope="module")
def intent():
    return load([("networks.yaml", NETWORKS), ("teams.yaml", TEAMS), ("pods.yaml", WORKLOADS)])


def names(objs):
    return sorted(f"{o.namespace}/{o.name}" for o in objs)


def test_realistic_example_loads(intent):
    red, blue = intent.virtual_networks[("prod", "red")], intent.virtual_networks[("prod", "blue")]
    assert red.v4_subnet == ("prod", "red-v4") and red.v6_subnet == ("prod", "red-v6") and red.vni == 1001
    assert [s.cidr for s in intent.vn_subnets(red)] == [net("10.1.0.0/24"), net("fd00:1::/64")]
    assert intent.vn_subnets(blue)[0].cidr == net("10.1.0.0/24")       # overlaps red: other VN, allowed
    assert intent.virtual_networks[("prod", "green")].vni is None
    assert intent.subnets[("prod", "red-v4")].ranges[0].key == "pods"
    assert intent.subnets[("prod", "red-v4")].ranges[0].ip_ranges[0].last == ip("10.1.0.100")
    assert intent.subnets[("shared", "svc-v4")].default_gateway == ip("10.50.0.1")   # defaulted
    assert intent.nodes["node-1"].fabric_mac == "02:00:00:00:00:01"
    assert intent.nodes["node-2"].fabric_address == ip("2001:db8::2")
    (ig,) = intent.ignored
    assert (ig.file, ig.doc, ig.api_version, ig.kind, ig.namespace, ig.name) == (
        "pods.yaml", 9, "apps/v1", "Deployment", "prod", "ignored-deploy")
    assert str(ig) == "pods.yaml doc 9: apps/v1 Deployment prod/ignored-deploy ignored (not a kind the agent reads)"


def test_vnr_selection(intent):
    mesh = intent.virtual_network_routers[("prod", "web-mesh")]
    assert mesh.type == "mesh" and names(intent.vnr_members(mesh)) == ["prod/green", "prod/red"]
    hub = intent.virtual_network_routers[("shared", "hub")]
    assert names(intent.vnr_members(hub)) == ["shared/services"]
    assert names(intent.vnr_imports(hub)) == ["team-a/spoke", "team-b/spoke"]
    spoke_a = intent.virtual_network_routers[("team-a", "spoke")]
    assert names(intent.vnr_imports(spoke_a)) == ["shared/hub"]
    assert names(intent.vnr_members(spoke_a)) == ["team-a/a-net"]
    # without a namespace selector only the own namespace is searched
    assert names(intent.select_vnrs({"vnr": "hub"}, None, "team-a")) == []
    assert names(intent.select_vnrs({"vnr": "spoke"}, {}, "prod")) == ["team-a/spoke", "team-b/spoke"]
    assert names(intent.select_vnrs({}, {"kubernetes.io/metadata.name": "team-b"})) == ["team-b/spoke"]
    assert intent.select_namespaces({"role": "spoke-ns"}) == ["team-a", "team-b"]


def test_pods_and_pod_networks(intent):
    web1 = intent.pods[("prod", "web-1")]
    assert web1.node == "node-1" and web1.pod_network == DEFAULT_POD_NETWORK
    assert web1.interfaces == [DEFAULT_POD_NETWORK, ("prod", "red"), ("prod", "blue")]
    # 10.1.0.5 is in both red and blue: the first annotation network holding it gets it
    assert web1.fixed_ips == {("prod", "red"): [ip("10.1.0.5")]}
    db = intent.pods[("prod", "db")]     # same address in another VN is fine; the 2nd is on the pod network
    assert db.fixed_ips == {("prod", "blue"): [ip("10.1.0.5")], DEFAULT_POD_NETWORK: [ip("10.244.7.7")]}
    assert intent.pods[("prod", "web-2")].networks == [("prod", "green")]
    assert intent.pods[("default", "plain")].interfaces == [DEFAULT_POD_NETWORK]
    vault = intent.pods[("secure", "vault")]
    assert vault.pod_network == ("secure", "secure-podnetwork")
    sec = intent.vn_subnets(intent.virtual_networks[("secure", "secure-podnetwork")])
    assert sec[0].cidr == net("10.245.0.0/24") and sec[0].default_gateway == ip("10.245.0.1")
    assert intent.vn_subnets(intent.virtual_networks[DEFAULT_POD_NETWORK])[0].cidr == net("10.244.0.0/16")


def test_network_policy(intent):
    np_ = intent.network_policies[("prod", "db-allow-web")]
    assert np_.pod_selector == LabelSelector.of({"app": "db"}) and np_.policy_types == ["Ingress", "Egress"]
    peers = np_.ingress[0].peers
    assert peers[0].pod_selector.labels == {"app": "web"} and peers[0].namespace_selector is None
    assert peers[1].namespace_selector.labels == {"role": "hub-ns"} and peers[1].pod_selector.empty
    assert peers[2].ip_block.cidr == net("172.16.0.0/16") and peers[2].ip_block.excepts == [net("172.16.1.0/24")]
    ports = np_.ingress[0].ports
    assert [(p.protocol, p.port, p.end_port) for p in ports] == [
        ("TCP", 5432, None), ("UDP", 30000, 30100), ("TCP", 80, None)]
    assert np_.egress[0].peers[0].ip_block.cidr == net("0.0.0.0/0") and np_.egress[0].ports == []


# ---------------------------------------------------------------------------------------------- errors

BASE = textwrap.dedent("""\
    apiVersion: vrouter.io/v1
    kind: Node
    metadata: {name: n1}
    spec: {fabricAddress: 192.0.2.1, control: "tcp://192.0.2.1:7000"}
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: Subnet
    metadata: {name: s4, namespace: ns}
    spec: {cidr: 10.0.0.0/24, defaultGateway: 10.0.0.1}
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: Subnet
    metadata: {name: s6, namespace: ns}
    spec: {cidr: "fd00::/64"}
    ---
    apiVersion: core.contrail.juniper.net/v1alpha1
    kind: VirtualNetwork
    metadata: {name: vn, namespace: ns}
    spec: {v4SubnetReference: {name: s4}, vxlanNetworkIdentifier: 5}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: p0, namespace: ns, annotations: {k8s.v1.cni.cncf.io/networks: vn, vrouter.io/ip: 10.0.0.9}}
    spec: {nodeName: n1}
""")  # 5 documents: the broken one is doc 6

SUB = "apiVersion: core.contrail.juniper.net/v1alpha1\nkind: Subnet\nmetadata: {name: x, namespace: ns}\n"
VN = "apiVersion: core.contrail.juniper.net/v1alpha1\nkind: VirtualNetwork\nmetadata: {name: x, namespace: ns}\n"
VNR = "apiVersion: core.contrail.juniper.net/v1\nkind: VirtualNetworkRouter\nmetadata: {name: x, namespace: ns}\n"
POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  namespace: ns\n"
NODE = "apiVersion: vrouter.io/v1\nkind: Node\nmetadata: {name: x}\n"
NP = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: ns}\n"
      "spec:\n  podSelector: {}\n")

BROKEN = [
    # (id, document, expected text in the error, expected field)
    ("not-a-mapping", "- a\n- b\n", "document must be a mapping", None),
    ("no-kind", "apiVersion: v1\nmetadata: {name: x}\n", "kind: missing", "kind"),
    ("no-metadata", "apiVersion: v1\nkind: Pod\nspec: {nodeName: n1}\n", "metadata: missing", "metadata"),
    ("no-name", "apiVersion: core.contrail.juniper.net/v1\nkind: Subnet\nmetadata: {namespace: ns}\n"
     "spec: {cidr: 10.9.0.0/24}\n", "t.yaml doc 6 (Subnet ?): metadata.name: missing", "metadata.name"),
    ("label-bool", "apiVersion: v1\nkind: Namespace\n"
     "metadata: {name: q, labels: {core.juniper.net/isolated-namespace: true}}\n",
     "metadata.labels.core.juniper.net/isolated-namespace: label keys and values must be strings", None),
    ("spec-wrong-type", SUB + "spec: [1]\n", "spec: must be a mapping", "spec"),
    ("duplicate", "apiVersion: core.contrail.juniper.net/v1\nkind: Subnet\nmetadata: {name: s4, namespace: ns}\n"
     "spec: {cidr: 10.9.0.0/24}\n", "duplicate Subnet (first in t.yaml doc 2)", "metadata.name"),
    ("cidr-missing", SUB + "spec: {}\n", "spec.cidr: missing", "spec.cidr"),
    ("cidr-host-bits", SUB + "spec: {cidr: 10.9.0.1/24}\n", "host bits set", "spec.cidr"),
    ("cidr-garbage", SUB + "spec: {cidr: 10.9.0.0/33}\n", "invalid prefix", "spec.cidr"),
    ("gw-outside", SUB + "spec: {cidr: 10.9.0.0/24, defaultGateway: 10.9.1.1}\n", "outside the subnet 10.9.0.0/24",
     "spec.defaultGateway"),
    ("gw-family", SUB + "spec: {cidr: 10.9.0.0/24, defaultGateway: 'fd00::1'}\n", "outside the subnet",
     "spec.defaultGateway"),
    ("gw-network", SUB + "spec: {cidr: 10.9.0.0/24, defaultGateway: 10.9.0.0}\n", "network address",
     "spec.defaultGateway"),
    ("gw-broadcast", SUB + "spec: {cidr: 10.9.0.0/24, defaultGateway: 10.9.0.255}\n", "broadcast address",
     "spec.defaultGateway"),
    ("range-outside", SUB + "spec: {cidr: 10.9.0.0/24, ranges: [{ipRanges: [{from: 10.9.0.5, to: 10.9.1.5}]}]}\n",
     "10.9.1.5 is outside", "spec.ranges[0].ipRanges[0].to"),
    ("range-reversed", SUB + "spec: {cidr: 10.9.0.0/24, ranges: [{ipRanges: [{from: 10.9.0.9, to: 10.9.0.5}]}]}\n",
     "is after", "spec.ranges[0].ipRanges[0]"),
    ("range-overlap", SUB + "spec: {cidr: 10.9.0.0/24, ranges: [{ipRanges: [{from: 10.9.0.1, to: 10.9.0.9}]},"
     " {ipRanges: [{from: 10.9.0.9, to: 10.9.0.20}]}]}\n", "overlaps spec.ranges[0].ipRanges[0]",
     "spec.ranges[1].ipRanges[0]"),
    ("vn-no-subnet", VN + "spec: {}\n", "needs spec.v4SubnetReference", "spec"),
    ("vn-unknown-subnet", VN + "spec: {v4SubnetReference: {name: nope}}\n", "no subnet ns/nope",
     "spec.v4SubnetReference"),
    ("vn-unknown-subnet-ns", VN + "spec: {v4SubnetReference: {name: s4, namespace: other}}\n",
     "no subnet other/s4", "spec.v4SubnetReference"),
    ("vn-wrong-family", VN + "spec: {v4SubnetReference: {name: s6}}\n", "is IPv6 (fd00::/64), not IPv4",
     "spec.v4SubnetReference"),
    ("vn-two-v4", VN + "spec: {v4SubnetReference: {name: s4}, v6SubnetReference: {name: s4}}\n",
     "not IPv6", "spec.v6SubnetReference"),
    ("vni-clash", VN + "spec: {v4SubnetReference: {name: s4}, vxlanNetworkIdentifier: 5}\n",
     "VNI 5 already used by VirtualNetwork ns/vn", "spec.vxlanNetworkIdentifier"),
    ("vni-range", VN + "spec: {v4SubnetReference: {name: s4}, vxlanNetworkIdentifier: 16777216}\n",
     "must be 1..16777215", "spec.vxlanNetworkIdentifier"),
    ("vni-string", VN + "spec: {v4SubnetReference: {name: s4}, vxlanNetworkIdentifier: '7'}\n",
     "must be an integer", "spec.vxlanNetworkIdentifier"),
    ("vnr-no-type", VNR + "spec: {virtualNetworkSelector: {matchLabels: {a: b}}}\n", "spec.type: missing",
     "spec.type"),
    ("vnr-bad-type", VNR + "spec: {type: star}\n", "unknown type 'star'", "spec.type"),
    ("vnr-import-no-selector", VNR + "spec: {type: hub, virtualNetworkSelector: {}, import: {virtualNetworkRouters:"
     " [{namespaceSelector: {}}]}}\n", "missing (use {} for every VirtualNetworkRouter",
     "spec.import.virtualNetworkRouters[0].virtualNetworkRouterSelector"),
    ("pod-no-node-name", POD + "spec: {}\n", "spec.nodeName: missing", "spec.nodeName"),
    ("pod-unknown-node", POD + "spec: {nodeName: node-9}\n", "t.yaml doc 6 (Pod ns/x): spec.nodeName: no node node-9",
     "spec.nodeName"),
    ("pod-unknown-vn", POD + "  annotations: {k8s.v1.cni.cncf.io/networks: 'ns/vn, other/red'}\nspec: {nodeName: n1}\n",
     "no VirtualNetwork other/red", 'metadata.annotations["k8s.v1.cni.cncf.io/networks"][1]'),
    ("pod-unknown-vn-json", POD + "  annotations: {k8s.v1.cni.cncf.io/networks: '[{\"name\": \"blue\"}]'}\n"
     "spec: {nodeName: n1}\n", "no VirtualNetwork ns/blue", 'metadata.annotations["k8s.v1.cni.cncf.io/networks"][0]'),
    ("pod-bad-json", POD + "  annotations: {k8s.v1.cni.cncf.io/networks: '[{\"name\": '}\nspec: {nodeName: n1}\n",
     "bad JSON", 'metadata.annotations["k8s.v1.cni.cncf.io/networks"]'),
    ("pod-bad-network", POD + "  annotations: {k8s.v1.cni.cncf.io/networks: 'a/b/c'}\nspec: {nodeName: n1}\n",
     "bad network 'a/b/c'", 'metadata.annotations["k8s.v1.cni.cncf.io/networks"][0]'),
    ("pod-ip-outside", POD + "  annotations: {k8s.v1.cni.cncf.io/networks: vn, vrouter.io/ip: 10.7.0.5}\n"
     "spec: {nodeName: n1}\n", "10.7.0.5 is outside the subnets of the pod's networks",
     'metadata.annotations["vrouter.io/ip"]'),
    ("pod-ip-dup", POD + "  annotations: {k8s.v1.cni.cncf.io/networks: vn, vrouter.io/ip: 10.0.0.9}\n"
     "spec: {nodeName: n1}\n", "10.0.0.9 in ns/vn already taken by Pod ns/p0", 'metadata.annotations["vrouter.io/ip"]'),
    ("pod-ip-gateway", POD + "  annotations: {k8s.v1.cni.cncf.io/networks: vn, vrouter.io/ip: 10.0.0.1}\n"
     "spec: {nodeName: n1}\n", "is the gateway", 'metadata.annotations["vrouter.io/ip"]'),
    ("pod-ip-garbage", POD + "  annotations: {vrouter.io/ip: 10.0.0}\nspec: {nodeName: n1}\n",
     "not an IP address", 'metadata.annotations["vrouter.io/ip"]'),
    ("np-protocol", NP + "  ingress: [{ports: [{protocol: ICMP, port: 1}]}]\n", "unknown protocol 'ICMP'",
     "spec.ingress[0].ports[0].protocol"),
    ("np-endport", NP + "  egress: [{ports: [{port: 100, endPort: 99}]}]\n", "99 is below port 100",
     "spec.egress[0].ports[0].endPort"),
    ("np-named-port", NP + "  ingress: [{ports: [{port: http}]}]\n", "named port 'http' is not supported",
     "spec.ingress[0].ports[0].port"),
    ("np-port-range", NP + "  ingress: [{ports: [{port: 70000}]}]\n", "must be 1..65535",
     "spec.ingress[0].ports[0].port"),
    ("np-no-selector", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: ns}\n"
     "spec: {ingress: []}\n", "missing", "spec.podSelector"),
    ("np-policy-type", NP + "  policyTypes: [Both]\n", "unknown policy type", "spec.policyTypes[0]"),
    ("np-except-outside", NP + "  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/8]}}]}]\n",
     "is not inside 10.0.0.0/8", "spec.ingress[0].from[0].ipBlock.except[0]"),
    ("np-empty-peer", NP + "  ingress: [{from: [{}]}]\n", "needs podSelector", "spec.ingress[0].from[0]"),
    ("node-fabric-dup", NODE + "spec: {fabricAddress: 192.0.2.1, control: x}\n",
     "192.0.2.1 already used by Node n1", "spec.fabricAddress"),
    ("node-control-not-text", NODE + "spec: {fabricAddress: 192.0.2.9, control: 5}\n", "must be a non-empty string",
     "spec.control"),
    ("node-bad-address", NODE + "spec: {fabricAddress: 192.0.2, control: x}\n", "not an IP address", "spec.fabricAddress"),
    ("node-bad-mac", NODE + "spec: {fabricAddress: 192.0.2.9, control: x, fabricMac: 02:00}\n", "must be a MAC like",
     "spec.fabricMac"),
]


@pytest.mark.parametrize("doc,text,fld", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_manifests(doc, text, fld):
    with pytest.raises(IntentError) as ei:
        load([("t.yaml", BASE + "---\n" + doc)])
    err = ei.value
    assert text in str(err), str(err)
    assert err.file == "t.yaml" and err.doc == 6, str(err)
    if fld is not None:
        assert err.field == fld and f": {fld}: " in str(err), str(err)


def test_base_is_valid():
    it = load([("t.yaml", BASE)])
    assert it.pods[("ns", "p0")].fixed_ips == {("ns", "vn"): [ip("10.0.0.9")]}


def test_a_node_without_control_is_served_to_its_node_agent():
    """spec.control is optional: without it the cluster agent serves the node's state to its node agent."""
    it = load([("t.yaml", BASE + "---\n" + NODE + "spec: {fabricAddress: 192.0.2.9}\n")])
    assert it.nodes["x"].control is None
    from control.agent.compiler import compile_cluster
    assert compile_cluster(it).nodes["x"].control is None


def test_bad_yaml_names_file_and_line():
    with pytest.raises(IntentError, match=r"^bad.yaml: line 2: bad YAML"):
        load([("bad.yaml", "a: 1\n  b: [\n")])


# ---------------------------------------------------------------------------------------------- leniency

@pytest.mark.parametrize("version", ["v1alpha1", "v1", "v3"])
def test_cn2_versions_and_unknown_fields(version):
    text = textwrap.dedent(f"""\
        apiVersion: core.contrail.juniper.net/{version}
        kind: Subnet
        metadata: {{name: s, namespace: ns, uid: 1234, annotations: {{x: y}}, resourceVersion: "9"}}
        spec: {{cidr: 10.9.0.0/24, podSubnet: false, disableBGPaaS: true}}
        status: {{state: Success, observation: ""}}
        ---
        apiVersion: core.contrail.juniper.net/{version}
        kind: VirtualNetwork
        metadata: {{name: v, namespace: ns}}
        spec:
          v4SubnetReference: {{apiVersion: core.contrail.juniper.net/v1alpha1, kind: Subnet, name: s}}
          fabricSNAT: false
          fabricForwarding: false
        ---
        apiVersion: core.contrail.juniper.net/{version}
        kind: RoutingInstance
        metadata: {{name: ri, namespace: ns}}
        ---
        apiVersion: core.contrail.juniper.net/v2
        kind: Subnet
        metadata: {{name: future, namespace: ns}}
        spec: {{cidr: bogus}}
        ---
        apiVersion: v1
        kind: Node
        metadata: {{name: k8s-node}}
    """)
    it = load(text)
    assert it.virtual_networks[("ns", "v")].v4_subnet == ("ns", "s")
    assert it.subnets[("ns", "s")].default_gateway == ip("10.9.0.1")
    assert [str(i).split(":")[0] for i in it.ignored] == ["<text 1> doc 3", "<text 1> doc 4", "<text 1> doc 5"]
    assert str(it.ignored[1]) == ("<text 1> doc 4: core.contrail.juniper.net/v2 Subnet ns/future ignored (the agent "
                                  "reads Subnet as core.contrail.juniper.net/v1alpha1 or core.contrail.juniper.net/v1 "
                                  "or core.contrail.juniper.net/v3)")
    assert it.ignored[2].why == "not a kind the agent reads; it reads Node as vrouter.io/v1"


def test_files_and_default_pod_network_override(tmp_path):
    f = tmp_path / "net.yaml"
    f.write_text(textwrap.dedent("""\
        apiVersion: core.contrail.juniper.net/v1
        kind: Subnet
        metadata: {name: pods-v4}
        spec: {cidr: 10.200.0.0/16}
        ---
        apiVersion: core.contrail.juniper.net/v1
        kind: VirtualNetwork
        metadata: {name: default-podnetwork}
        spec: {v4SubnetReference: {name: pods-v4}}
        ---
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: b, labels: {core.juniper.net/isolated-namespace: "true"}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: a, labels: {core.juniper.net/isolated-namespace: "true"}}
    """))
    it = load(f, isolated_pool="10.128.0.0/15", isolated_prefixlen=23)
    assert it.virtual_networks[DEFAULT_POD_NETWORK].source is not None
    assert ("default", "default-podnetwork-v4") not in it.subnets
    assert it.subnets[("a", "a-podnetwork-v4")].cidr == net("10.128.0.0/23")
    assert it.subnets[("b", "b-podnetwork-v4")].cidr == net("10.128.2.0/23")
    assert load(str(f)).subnets[("a", "a-podnetwork-v4")].cidr == net("10.245.0.0/24")
    with pytest.raises(IntentError, match="isolated pod network pool 10.0.0.0/24 is exhausted"):
        load(f, isolated_pool="10.0.0.0/24", isolated_prefixlen=24)
    with pytest.raises(IntentError, match="cannot read"):
        load(tmp_path / "missing.yaml")
    assert load("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", default_pod_cidr="10.9.0.0/16") \
        .subnets[("default", "default-podnetwork-v4")].cidr == net("10.9.0.0/16")


# ---------------------------------------------------------------------------------------------- selectors

LABEL_KEYS = st.sampled_from(["app", "tier", "env", "core.juniper.net/x"])
LABEL_VALS = st.sampled_from(["a", "b", "c"])
LABELS = st.dictionaries(LABEL_KEYS, LABEL_VALS, max_size=3)
NSS = ["n0", "n1", "n2"]


@given(vns=st.lists(st.tuples(st.sampled_from(NSS), LABELS), max_size=8),
       vnrs=st.lists(st.tuples(st.sampled_from(NSS), LABELS), max_size=8),
       ns_labels=st.fixed_dictionaries({n: LABELS for n in NSS}),
       sel=LABELS, ns_sel=st.one_of(st.none(), LABELS), scope=st.sampled_from(NSS))
def test_selectors_match_brute_force(vns, vnrs, ns_labels, sel, ns_sel, scope):
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": ns_labels[n]}} for n in NSS]
    docs += [{"apiVersion": "core.contrail.juniper.net/v1", "kind": "Subnet",
                         "metadata": {"name": "s", "namespace": n}, "spec": {"cidr": "10.0.0.0/24"}} for n in NSS]
    for i, (n, lab) in enumerate(vns):
        docs.append({"apiVersion": "core.contrail.juniper.net/v1alpha1", "kind": "VirtualNetwork",
                     "metadata": {"name": f"vn{i}", "namespace": n, "labels": lab},
                     "spec": {"v4SubnetReference": {"name": "s"}}})
    for i, (n, lab) in enumerate(vnrs):
        docs.append({"apiVersion": "core.contrail.juniper.net/v1", "kind": "VirtualNetworkRouter",
                     "metadata": {"name": f"r{i}", "namespace": n, "labels": lab},
                     "spec": {"type": "mesh", "virtualNetworkSelector": {}}})
    it = load(yaml.safe_dump_all(docs))

    def brute(selector, labels):
        return all(k in labels and labels[k] == v for k, v in selector.items())

    want_vns = [f"vn{i}" for i, (n, lab) in enumerate(vns) if n == scope and brute(sel, lab)]
    assert [v.name for v in it.select_vns(sel, scope)] == want_vns
    assert [v.name for v in it.select_vns({}, scope) if v.source] == [f"vn{i}" for i, (n, _) in enumerate(vns)
                                                                        if n == scope]
    if ns_sel is None:
        want = [f"r{i}" for i, (n, lab) in enumerate(vnrs) if n == scope and brute(sel, lab)]
    else:
        want = [f"r{i}" for i, (n, lab) in enumerate(vnrs)
                if brute(ns_sel, {**ns_labels[n], "kubernetes.io/metadata.name": n}) and brute(sel, lab)]
    assert [r.name for r in it.select_vnrs(sel, ns_sel, scope)] == want


def test_match_labels_basics():
    assert match_labels(None, {}) and match_labels({}, {"a": "b"})
    assert match_labels({"a": "b"}, {"a": "b", "c": "d"})
    assert not match_labels({"a": "b"}, {"a": "c"}) and not match_labels({"a": "b"}, {})
    assert Intent().select_vns({}, "default") == [] and Intent().select_vnrs({}, {}) == []


def test_single_pair_and_tuple_of_paths(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
    b.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n")
    assert sorted(load((str(a), str(b))).namespaces) == ["a", "b"]
    with pytest.raises(IntentError, match=r"^x.yaml doc 1 \(Namespace a\): metadata.name: duplicate"):
        load([a, ("x.yaml", a.read_text())])


# ---------------------------------------------------------------------------------------------- kinds

def _doc(api, kind, name="x", ns="ns"):
    return f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{}}\n"


@pytest.mark.parametrize("api,kind,fld,text", [
    ("core.contrail.juniper.net/v1", "Subnett", "kind",
     "no kind Subnett in core.contrail.juniper.net/v1 (did you mean Subnet?)"),
    ("core.contrail.juniper.net/v1alpha1", "virtualnetwork", "kind", "(did you mean VirtualNetwork?)"),
    ("core.contrail.juniper.net/v1", "VirtualNetworkRouters", "kind", "(did you mean VirtualNetworkRouter?)"),
    ("core.contrail.juniper.net/v1", "VirtualNetwrok", "kind", "(did you mean VirtualNetwork?)"),
    ("v1", "Pods", "kind", "no kind Pods in v1 (did you mean Pod?)"),
    ("v1", "namespace", "kind", "(did you mean Namespace?)"),
    ("networking.k8s.io/v1", "NetworkPolicies", "kind", "(did you mean NetworkPolicy?)"),
    ("vrouter.io/v1", "Nodes", "kind", "(did you mean Node?)"),
    ("vrouter.io/v1", "Config", "kind", "no kind Config in vrouter.io/v1 (the agent reads Node)"),
    ("vrouter.io/v2", "Node", "apiVersion", "Node is read as apiVersion vrouter.io/v1, not vrouter.io/v2"),
    ("V1", "Pod", "apiVersion", "Pod is read as apiVersion v1, not V1"),
    ("v1", "NetworkPolicy", "apiVersion",
     "no kind NetworkPolicy in v1 (did you mean apiVersion networking.k8s.io/v1?)"),
    ("core.contrail.juniper.net/v1", "Pod", "apiVersion", "(did you mean apiVersion v1?)"),
    ("networking.k8s.oi/v1", "NetworkPolicy", "apiVersion",
     "unknown group networking.k8s.oi (did you mean apiVersion networking.k8s.io/v1?)"),
    ("core.contrail.juniper.com/v1", "Subnet", "apiVersion", "did you mean apiVersion core.contrail.juniper.net/"),
])
def test_a_typo_of_a_kind_or_group_the_agent_reads_is_refused(api, kind, fld, text):
    with pytest.raises(IntentFormatError) as ei:
        load([("t.yaml", BASE + "---\n" + _doc(api, kind))])
    e = ei.value
    assert (e.file, e.doc, e.kind, e.namespace, e.name, e.field) == ("t.yaml", 6, kind, "ns", "x", fld), str(e)
    assert text in e.msg, str(e)
    assert str(e).startswith(f"t.yaml doc 6 ({kind} ns/x): {fld}: ")


@pytest.mark.parametrize("api,kind,why", [
    ("apps/v1", "Deployment", "not a kind the agent reads"),
    ("core.contrail.juniper.net/v1", "RoutingInstance", "not a kind the agent reads"),
    ("core.contrail.juniper.net/v1", "VirtualRouter", "not a kind the agent reads"),
    ("core.contrail.juniper.net/v1", "SomethingNew", "not a kind the agent reads"),
    ("v1", "Service", "not a kind the agent reads"),
    ("v1", "Node", "not a kind the agent reads; it reads Node as vrouter.io/v1"),
    ("networking.k8s.io/v1", "Ingress", "not a kind the agent reads"),
    ("networking.k8s.io/v1beta1", "NetworkPolicy", "the agent reads NetworkPolicy as networking.k8s.io/v1"),
    ("kubeovn.io/v1", "Subnet", "not a kind the agent reads; it reads Subnet as core.contrail.juniper.net/v1alpha1 "
                                "or core.contrail.juniper.net/v1"),
    ("crd.projectcalico.org/v1", "NetworkPolicy", "it reads NetworkPolicy as networking.k8s.io/v1"),
    ("apps/v1", "Pods", "not a kind the agent reads; did you mean v1 Pod?"),
])
def test_other_kinds_are_reported_not_refused(api, kind, why):
    it = load([("t.yaml", BASE + "---\n" + _doc(api, kind))])
    (ig,) = it.ignored
    assert (ig.file, ig.doc, ig.api_version, ig.kind, ig.namespace, ig.name) == ("t.yaml", 6, api, kind, "ns", "x")
    assert why in ig.why and str(ig) == f"t.yaml doc 6: {api} {kind} ns/x ignored ({ig.why})"


def test_no_intent_and_unreadable_input_are_format_errors(tmp_path):
    for sources, text in [([("e.yaml", "")], "no intent: no YAML document in e.yaml"),
                          ([("e.yaml", "# nothing\n---\n---\n"), ("f.yaml", "\n")],
                           "no intent: no YAML document in e.yaml, f.yaml"),
                          ([], "no intent: no YAML document in no file"),
                          ([("e.yaml", _doc("apps/v1", "Deployment") + "---\n" + _doc("v1", "Service", "s"))],
                           "no intent: none of the 2 documents is of a kind the agent reads (ignored: e.yaml doc 1: "
                           "apps/v1 Deployment ns/x ignored"),
                          ([("b.yaml", "a: [\n")], "bad YAML"),
                          ([tmp_path / "missing.yaml"], "cannot read"),
                          ([("d.yaml", "- 1\n")], "document must be a mapping"),
                          ([("d.yaml", "kind: Pod\n")], "apiVersion: missing"),
                          ([("d.yaml", "apiVersion: v1\nkind: 3\n")], "kind: must be a non-empty string")]:
        with pytest.raises(IntentFormatError) as ei:
            load(sources)
        assert text in str(ei.value), str(ei.value)
    # a field the agent reads, wrong: refused, but not a format error
    with pytest.raises(IntentError) as ei:
        load([("t.yaml", BASE + "---\n" + POD + "spec: {nodeName: node-9}\n")])
    assert not isinstance(ei.value, IntentFormatError)


def test_a_key_given_twice_is_refused_naming_its_line():
    """PyYAML would keep the last of two keys silently; the intent is read by control.fields' strict reader."""
    with pytest.raises(IntentFormatError, match=r"^d\.yaml: line 4: bad YAML: duplicate key 'metadata' "
                                                r"\(first at line 3\)"):
        load([("d.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nmetadata: {name: b}\n")])
