"""Fabric forwarding in the pipeline: plain IP arriving on the fabric is routed in the fabric vif's VRF
(the "fabric VRF", VRF 0 here: host routes of the local pods whose network forwards on the underlay)
when that VRF has a route for it, and goes to the host otherwise; replies leave as plain IP through an
interface next hop on the fabric vif, with no encapsulation. The node is tests/pl_topo.py's."""
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from pl_topo import FABRIC, FABRIC_MAC, NODE4, NODE6, POD1, POD3, UNDERLAY_MAC, dissect, from_pod, make_node

HOST4, HOST6 = "192.0.2.100", "2001:db8:f::100"
NH_UNDERLAY = 90
FABRIC_VRF = 0


@pytest.fixture
def node():
    dp = make_node()
    dp.nh.set_nh(NH_UNDERLAY, "interface", vif=FABRIC, dmac=UNDERLAY_MAC)
    dp.lpm4.insert(FABRIC_VRF, f"{POD1.ip4}/32", POD1.nh)
    dp.lpm6.insert(FABRIC_VRF, f"{POD1.ip6}/128", POD1.nh)
    dp.lpm4.insert(POD1.vrf, "0.0.0.0/0", NH_UNDERLAY)      # the pod's network: everything else on the underlay
    dp.lpm6.insert(POD1.vrf, "::/0", NH_UNDERLAY)
    return dp


def plain(src, dst, **kw):
    ip = IP(src=src, dst=dst, ttl=30) if ":" not in dst else IPv6(src=src, dst=dst, hlim=30)
    return bytes(Ether(src=UNDERLAY_MAC, dst=FABRIC_MAC) / ip / TCP(**kw))


@pytest.mark.parametrize("family", [4, 6])
def test_plain_ip_from_the_fabric_reaches_a_fabric_forwarding_pod_and_the_reply_leaves_plain(node, family):
    host, pod = (HOST4, POD1.ip4) if family == 4 else (HOST6, POD1.ip6)
    r = node.process([plain(host, pod, sport=40000, dport=80)], FABRIC)[0]
    assert (r.verdict, r.out_vif) == ("forward", POD1.vif)
    out = dissect(r.frame)
    ip = out[IP] if family == 4 else out[IPv6]
    assert out.dst == POD1.mac and (ip.src, ip.dst) == (host, pod) and TCP in out
    back = from_pod(POD1, host, "tcp", family, sport=80, dport=40000, flags="SA")
    st = node.stats()
    r = node.process([back], POD1.vif)[0]
    assert (r.verdict, r.out_vif) == ("forward", FABRIC)
    out = dissect(r.frame)
    ip = out[IP] if family == 4 else out[IPv6]
    assert out.dst == UNDERLAY_MAC and (ip.src, ip.dst) == (pod, host)
    assert len(r.frame) == 14 + len(ip)                    # no outer header
    st2 = node.stats()
    assert st2["flow_hits"] == st["flow_hits"] + 1 and st2["encap_vxlan"] == st["encap_vxlan"]


def test_plain_ip_without_a_fabric_vrf_route_goes_to_the_host(node):
    # POD3 (VRF 2) has POD1's address in another network: not in the fabric VRF, so not reached
    for f in (plain(HOST4, "10.1.0.77", dport=80), plain(HOST4, NODE4, dport=22), plain(HOST6, NODE6, dport=22)):
        r = node.process([f], FABRIC)[0]
        assert r.verdict == "host" and r.frame == f
    assert POD3.ip4 == POD1.ip4


def test_the_nodes_own_address_stays_the_hosts_even_with_a_default_route(node):
    node.lpm4.insert(FABRIC_VRF, "0.0.0.0/0", POD1.nh)
    f = plain(HOST4, NODE4, dport=22)
    r = node.process([f], FABRIC)[0]
    assert r.verdict == "host" and r.frame == f
    assert node.process([plain(HOST4, "198.51.100.1", dport=80)], FABRIC)[0].out_vif == POD1.vif
