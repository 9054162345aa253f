"""CN2's shapes in intent.py: what they parse to, and every refusal naming the file, the document and the
field (valid CN2 the agent does not implement says "not supported")."""
import ipaddress

import pytest

from control.agent.compiler import compile_cluster
from control.agent.intent import IntentError, load

NODE = ("apiVersion: vrouter.io/v1\nkind: Node\nmetadata: {name: n1}\n"
        "spec: {fabricAddress: 192.0.2.1, fabricMac: '02:00:00:00:00:01', control: 'ipc:///x'}\n")
SUB = ("apiVersion: core.contrail.juniper.net/v3\nkind: Subnet\nmetadata: {name: s1, namespace: ns}\n"
       "spec: {cidr: 10.1.0.0/24}\n")


def vn(spec="", name="vn", ann=""):
    meta = f"{{name: {name}, namespace: ns" + (f", annotations: {{{ann}}}" if ann else "") + "}"
    return (f"apiVersion: core.contrail.juniper.net/v3\nkind: VirtualNetwork\nmetadata: {meta}\n"
            f"spec:\n  v4SubnetReference: {{name: s1}}\n" + "".join(f"  {line}\n" for line in spec.splitlines()))


def pod(ann, name="p"):
    return (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: ns\n  annotations:\n"
            + "".join(f"    {line}\n" for line in ann.splitlines()) + "spec: {nodeName: n1}\n")


def nad(net, name="nd"):
    return (f"apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: {name}\n"
            f"  namespace: ns\n  annotations:\n    juniper.net/networks: '{net}'\n")


def docs(*parts):
    return "---\n".join((NODE, SUB) + parts)


def test_v3_nad_custom_pod_network_targets_route_table_display_name():
    it = load([("t.yaml", docs(
        vn("podNetwork: true\nrouteTargetList: ['target:64512:100']\nimportRouteTargetList: ['target:1.2.3.4:7']\n"
           "routeTableReferences: [{kind: RouteTable, name: rt}]", ann="core.juniper.net/display-name: Web"),
        nad('{"ipamV4Subnet": "10.2.0.0/24", "exportRouteTargetList": ["target:64512:100"], "podNetwork": true}'),
        "apiVersion: core.contrail.juniper.net/v3\nkind: RouteTable\nmetadata: {name: rt, namespace: ns}\n"
        "spec: {routes: {route: [{prefix: 172.16.0.0/24, nextHop: 10.1.0.9, nextHopType: ip-address, "
        "communityAttributes: {communityAttribute: [no-export]}}]}}\n",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns, annotations: {net.juniper.contrail.podnetwork: ns/vn}}\n",
        pod('k8s.v1.cni.cncf.io/networks: \'[{"name": "nd", "ips": ["10.2.0.9/24"], "mac": "02:00:00:00:00:09", '
            '"interface": "data0"}]\''),
        pod("net.juniper.contrail.podnetwork: ns/nd\nnet.juniper.contrail.podnetwork.ip: 10.2.0.7", "q")))])
    v = it.virtual_networks[("ns", "vn")]
    assert v.pod_network and v.display_name == "Web" and v.route_tables == [("ns", "rt")]
    assert v.route_targets.import_set == {"target:64512:100", "target:1.2.3.4:7"}
    d = it.virtual_networks[("ns", "nd")]
    assert d.nad is not None and it.subnets[("ns", "nd-v4")].cidr == ipaddress.ip_network("10.2.0.0/24")
    assert it.route_tables[("ns", "rt")].routes[0].communities == ("no-export",)
    p, q = it.pods[("ns", "p")], it.pods[("ns", "q")]
    assert p.pod_network == ("ns", "vn") and p.ifnames == {0: "eth0", 1: "data0"} and p.macs == {1: "02:00:00:00:00:09"}
    assert q.pod_network == ("ns", "nd") and q.iface_ips == {0: [ipaddress.ip_address("10.2.0.7")]}
    c = compile_cluster(it)
    assert c.route_targets[("ns", "nd")][1] == ("target:64512:100", f"target:64512:{8000000 + c.vrf_ids[('ns', 'nd')]}")
    assert ("ns", "nd") in c.leaks[("ns", "vn")] and ("ns", "vn") not in c.leaks[("ns", "nd")]
    itf = [i for i in c.interfaces if i.pod == ("ns", "p") and i.index == 1][0]
    assert itf.ifname == "data0" and itf.mac == "02:00:00:00:00:09" and str(itf.addresses[0]) == "10.2.0.9"
    assert c.nodes["n1"].vrfs[c.vrf_ids[("ns", "vn")]]["name"] == "Web"


NS = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns\n"
BAD = [
    ("vn-fabric-snat", vn("fabricSNAT: true"), "doc 3 (VirtualNetwork ns/vn): spec.fabricSNAT: not supported yet: "
     "fabricSNAT (comes with source NAT)"),
    ("nad-fabric-snat", nad('{"ipamV4Subnet": "10.2.0.0/24", "fabricSNAT": true}'),
     'juniper.net/networks"].fabricSNAT: not supported yet: fabricSNAT'),
    ("ns-fabric-snat", NS + "  annotations: {core.juniper.net/forwarding-mode: fabric-snat}\n",
     "not supported yet: fabricSNAT"),
    ("ns-ff-not-isolated", NS + "  annotations: {core.juniper.net/forwarding-mode: fabric-forwarding}\n",
     'core.juniper.net/forwarding-mode"]: not supported: on a namespace that is not isolated'),
    ("provider", vn("isProviderNetwork: true"), "spec.isProviderNetwork: not supported"),
    ("provider-ref", vn("providerNetworkReference: {name: x}"), "spec.providerNetworkReference: not supported"),
    ("l2", vn("virtualNetworkProperties: {forwardingMode: l2}"),
     "spec.virtualNetworkProperties.forwardingMode: not supported: l2"),
    ("vn-typo", vn("podNetwrok: true"), "spec.podNetwrok: unknown field (did you mean podNetwork?)"),
    ("rt-bad", vn("routeTargetList: ['64512:1']"), "spec.routeTargetList[0]: '64512:1': want target:"),
    ("rt-auto", vn("exportRouteTargetList: ['target:64512:8000001']"), "are the automatic targets"),
    ("rt-4byte", vn("importRouteTargetList: ['target:4200000000:70000']"), "at most 65535"),
    ("route-table-missing", vn("routeTableReferences: [{name: nope}]"),
     "spec.routeTableReferences[0]: no RouteTable ns/nope"),
    ("next-hop-type", "apiVersion: core.contrail.juniper.net/v3\nkind: RouteTable\nmetadata: {name: rt, namespace: "
     "ns}\nspec: {routes: {route: [{prefix: 1.0.0.0/8, nextHop: 10.1.0.9, nextHopType: service-instance}]}}\n",
     "(RouteTable ns/rt): spec.routes.route[0].nextHopType: not supported: 'service-instance'"),
    ("nad-unknown-key", nad('{"ipamV4Subnet": "10.2.0.0/24", "ipamV4Subnett": "x"}'), "did you mean ipamV4Subnet?"),
    ("nad-other-plugin", "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {name: mv, "
     "namespace: ns}\nspec: {config: '{\"type\": \"macvlan\"}'}\n", "spec.config.type: not supported: 'macvlan'"),
    ("nad-without-annotation", "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: "
     "{name: mv, namespace: ns}\n", "not supported: a NetworkAttachmentDefinition without the juniper.net/networks"),
    ("nad-and-vn", vn() + "---\n" + nad('{"ipamV4Subnet": "10.2.0.0/24"}', "vn"), "is declared too"),
    ("multus-default-route", vn() + "---\n" + pod('k8s.v1.cni.cncf.io/networks: \'[{"name": "vn", "default-route": '
     '["10.1.0.1"]}]\''), 'networks"][0].default-route: not supported'),
    ("multus-typo", vn() + "---\n" + pod('k8s.v1.cni.cncf.io/networks: \'[{"name": "vn", "ip": ["10.1.0.5"]}]\''),
     "did you mean ips?"),
    ("multus-ip-outside", vn() + "---\n" + pod('k8s.v1.cni.cncf.io/networks: \'[{"name": "vn", "ips": ["10.9.0.5"]}]\''),
     'networks"][0].ips[0]: 10.9.0.5 is outside the subnets of ns/vn'),
    ("multus-prefixlen", vn() + "---\n" + pod('k8s.v1.cni.cncf.io/networks: \'[{"name": "vn", "ips": ["10.1.0.5/16"]}]\''),
     "10.1.0.5/16: the subnet ns/s1 is 10.1.0.0/24"),
    ("multus-ifname-twice", vn() + "---\n" + pod('k8s.v1.cni.cncf.io/networks: \'[{"name": "vn", "interface": "eth0"}]\''),
     "interface eth0 is given twice"),
    ("multus-mac-twice", vn() + "---\n" + pod('k8s.v1.cni.cncf.io/networks: \'[{"name": "vn", "mac": "02:00:00:00:00:09"},'
     ' {"name": "vn", "mac": "02:00:00:00:00:09"}]\''), "02:00:00:00:00:09 in ns/vn already taken"),
    ("podnetwork-not-pod-network", vn() + "---\n" + pod("net.juniper.contrail.podnetwork: ns/vn"),
     "VirtualNetwork ns/vn is not a pod network (spec.podNetwork: true)"),
    ("podnetwork-missing", pod("net.juniper.contrail.podnetwork: ns/nope"),
     'net.juniper.contrail.podnetwork"]: no VirtualNetwork ns/nope'),
    ("cni-args", pod("net.juniper.contrail.podnetwork.cni-args: '{}'"), "cni-args\"]: not supported"),
]


@pytest.mark.parametrize("doc,text", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_refused_naming_file_document_and_field(doc, text):
    with pytest.raises(IntentError) as ei:
        load([("t.yaml", docs(doc))])
    assert str(ei.value).startswith("t.yaml doc ") and text in str(ei.value), str(ei.value)
