"""Two nodes, real packets: two `vrouter run` processes in two node namespaces
joined by a veth "fabric" (AF_XDP on both ends, or the AF_PACKET fallback),
a pod on each; the pods talk over VXLAN and over MPLSoUDP, and the node
addresses keep talking plain IP beside the tunnels. Then a Linux kernel vxlan
device as the remote VTEP. Shutdown leaves nothing behind."""
import json

import pytest

from test_node_local import ping, tcp_roundtrip
from vrproc import VrouterProc

F1_MAC, F2_MAC = "02:fa:00:00:00:01", "02:fa:00:00:00:02"
N1, N2 = "192.0.2.1", "192.0.2.2"
ROUTER_MAC = "00:00:5e:00:01:00"


def node_conf(name, iface, me, peer_ip, peer_mac, pod_ip, pod_mac, remote_pod, encap, io, label_out, label_in):
    tun = {"id": 100, "type": "tunnel", "encap": encap, "dst": peer_ip}
    if encap == "vxlan":
        tun["vni"] = 100
    else:
        tun["label"] = label_out
    return {
        "node": {"name": name},
        "fabric": {"interface": iface, "io": io, "ip": me, "gateway_mac": peer_mac},
        "vifs": [{"id": 1, "name": f"tap-{name}", "netns": None, "vrf": 1, "mac": pod_mac,
                  "ip": f"{pod_ip}/24", "gateway": "10.1.0.1"}],
        "nexthops": [tun],
        "routes": [{"vrf": 1, "prefix": f"{remote_pod}/32", "nh": 100}],
        "vnis": [{"vni": 100, "vrf": 1}],
        "labels": [{"label": label_in, "nh": 1}],
    }


def two_nodes(topo, vrouter, encap, io, queues=1):
    n1, n2 = topo.netns("n1"), topo.netns("n2")
    a, b = topo.netns("a"), topo.netns("b")
    topo.veth(n1, "f1", n2, "f2", queues=queues)
    topo.mac(n1, "f1", F1_MAC)
    topo.mac(n2, "f2", F2_MAC)
    topo.addr(n1, "f1", f"{N1}/24")
    topo.addr(n2, "f2", f"{N2}/24")
    c1 = node_conf("n1", "f1", N1, N2, F2_MAC, "10.1.0.2", "02:00:00:00:0a:02", "10.1.0.12", encap, io, 2001, 1001)
    c2 = node_conf("n2", "f2", N2, N1, F1_MAC, "10.1.0.12", "02:00:00:00:0b:02", "10.1.0.2", encap, io, 1001, 2001)
    c1["vifs"][0]["netns"], c2["vifs"][0]["netns"] = a, b
    v1 = vrouter(n1, c1, "n1")
    v2 = vrouter(n2, c2, "n2")
    return (n1, n2, a, b), (v1, v2)


@pytest.mark.parametrize("io", ["xdp", "afpacket"])
@pytest.mark.parametrize("encap", ["vxlan", "mplsoudp"])
def test_pods_on_two_nodes(topo, vrouter, encap, io):
    (n1, n2, a, b), (v1, v2) = two_nodes(topo, vrouter, encap, io)
    want = "xdp" if io == "xdp" else "afpacket"
    assert f"io={want}" in v1.text(), v1.text()
    r = ping(topo, a, "10.1.0.12", 5)
    assert r.returncode == 0, r.stdout + r.stderr + v1.text() + v2.text()
    assert ping(topo, b, "10.1.0.2", 3).returncode == 0
    assert tcp_roundtrip(topo, b, a, "10.1.0.12") == 100006
    # the node addresses: plain IP beside the tunnels (XDP passes it to the kernel)
    assert ping(topo, n1, N2, 3).returncode == 0
    assert tcp_roundtrip(topo, n2, n1, N2, 5003) == 100006
    s1 = v1.stats()
    key = "encap_vxlan" if encap == "vxlan" else "encap_mpls"
    dkey = "decap_vxlan" if encap == "vxlan" else "decap_mpls"
    assert s1["datapath"][key] > 0 and s1["datapath"][dkey] > 0, s1["datapath"]
    assert s1["vifs"]["0"]["tx_packets"] > 0
    for vr in (v1, v2):
        assert vr.stop() == 0, vr.text()
    for ns in (n1, n2):
        links = json.loads(topo.run(ns, "ip", "-j", "link", "show").stdout)
        assert sorted(x["ifname"] for x in links) in (["f1", "lo"], ["f2", "lo"]), links
        assert not any("xdp" in x for x in links), links
    for ns in (a, b):
        links = json.loads(topo.run(ns, "ip", "-j", "link", "show").stdout)
        assert [x["ifname"] for x in links] == ["lo"], links


def test_two_workers_on_a_two_queue_fabric(topo, vrouter):
    """workers: auto on a 2-queue fabric and 2 cores: two workers, each with its own XDP socket, TAP
    queue and frame pool; TCP streams both ways still arrive whole."""
    (n1, n2, a, b), (v1, v2) = two_nodes(topo, vrouter, "vxlan", "xdp", queues=2)
    assert "workers=2" in v1.text() or "workers=1" in v1.text()
    assert ping(topo, a, "10.1.0.12", 3).returncode == 0, v1.text()
    assert tcp_roundtrip(topo, b, a, "10.1.0.12", 5010) == 100006
    assert tcp_roundtrip(topo, a, b, "10.1.0.2", 5011) == 100006
    st = v1.stats()
    assert len(st["workers"]) == min(2, __import__("os").cpu_count())
    assert sum(w["rx_packets"] for w in st["workers"]) > 0
    assert v1.stop() == 0 and v2.stop() == 0


def test_kernel_vxlan_device_as_the_remote_vtep(topo, vrouter):
    """A Linux vxlan device (dstport 4789) in a namespace is the other end: it resolves our pod over
    VXLAN (the vrouter answers ARP inside the tunnel) and traffic flows both ways."""
    n1, kv, a = topo.netns("n1"), topo.netns("kv"), topo.netns("a")
    topo.veth(n1, "f1", kv, "fk")
    topo.mac(n1, "f1", F1_MAC)
    topo.mac(kv, "fk", F2_MAC)
    topo.addr(n1, "f1", f"{N1}/24")
    topo.addr(kv, "fk", f"{N2}/24")
    topo.run(kv, "ip", "link", "add", "vx0", "type", "vxlan", "id", "100", "local", N2, "dstport", "4789",
             "nolearning", "dev", "fk")
    vx_mac = topo.mac(kv, "vx0", "02:00:00:00:0c:02")
    topo.run(kv, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", N1)
    topo.addr(kv, "vx0", "10.1.0.50/24")
    topo.up(kv, "vx0")
    conf = {
        "node": {"name": "n1"},
        "fabric": {"interface": "f1", "io": "xdp", "ip": N1, "gateway_mac": F2_MAC},
        "vifs": [{"id": 1, "name": "tap-a", "netns": a, "vrf": 1, "mac": "02:00:00:00:0a:02",
                  "ip": "10.1.0.2/24", "gateway": "10.1.0.1"}],
        "nexthops": [{"id": 100, "type": "tunnel", "encap": "vxlan", "dst": N2, "vni": 100,
                      "inner_dmac": vx_mac}],
        "routes": [{"vrf": 1, "prefix": "10.1.0.50/32", "nh": 100}],
        "vnis": [{"vni": 100, "vrf": 1}],
    }
    vr = vrouter(n1, conf, "n1")
    r = ping(topo, a, "10.1.0.50", 3)
    assert r.returncode == 0, r.stdout + r.stderr + vr.text()
    r = ping(topo, kv, "10.1.0.2", 3)          # the kernel ARPs for the pod inside VXLAN first
    assert r.returncode == 0, r.stdout + r.stderr
    assert tcp_roundtrip(topo, kv, a, "10.1.0.50") == 100006
    st = vr.stats()
    assert st["datapath"]["reply"]["vxlan_arp_reply"] >= 1
    assert vr.stop() == 0


def test_config_that_cannot_run_is_refused(topo, vrouter):
    n1 = topo.netns("n1")
    conf = {"node": {"name": "n1"}, "fabric": {"interface": "nope0", "io": "xdp", "ip": N1}}
    p = VrouterProc(topo, n1, conf, "bad")
    rc = p.proc.wait(timeout=30)
    assert rc == 2 and "fabric.interface" in p.text(), p.text()

