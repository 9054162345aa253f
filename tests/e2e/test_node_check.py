"""`vrouter run --check` validates exactly what start-up applies: the static tables compile to
control-protocol operations checked by the protocol's schema and applied by the control backend on
in-memory tables. Each bad configuration is refused with rc 2 naming the field, and the real `vrouter
run` refuses the same configuration with the same message. A node whose control endpoint cannot
start stops cleanly: its TAPs and its XDP program are gone."""
import os
import sys

import pytest
import yaml

from control.keys import make as make_keys

BASE = """\
node: {name: chk, control: "off", metrics: "off", stats_interval: 0}
fabric: {interface: fab0, io: afpacket, ip: 192.0.2.1, gateway_mac: "02:fa:00:00:00:fe"}
vifs:
  - {id: 1, name: tap-a, vrf: 1, mac: "02:00:00:00:01:02", ip: 10.1.0.2/24, gateway: 10.1.0.1}
"""

GOOD = BASE + """\
nexthops:
  - {id: 100, type: tunnel, encap: vxlan, dst: 192.0.2.2, vni: 100}
  - {id: 101, type: tunnel, encap: mplsoudp, dst: 192.0.2.3, label: 5000}
  - {id: 102, type: ecmp, members: [100, null, 101]}
  - {id: 103, type: discard}
routes:
  - {vrf: 1, prefix: 10.2.0.0/16, nh: 102}
  - {vrf: 1, prefix: "fd00:2::/64", nh: 103}
labels: [{label: 6001, nh: 1}]
vnis: [{vni: 100, vrf: 1}]
"""

# (what, configuration text, the field the refusal must name)
BAD = [
    ("route to an undefined next hop", BASE + "routes: [{vrf: 1, prefix: 10.2.0.0/16, nh: 99}]\n", "routes[0].nh"),
    ("misspelt next-hop type", BASE + "nexthops: [{id: 5, type: tunel, dst: 192.0.2.2, vni: 5}]\n",
     "nexthops[0].type"),
    ("unknown next-hop field", BASE + "nexthops: [{id: 5, type: tunnel, dst: 192.0.2.2, vni: 5, colour: red}]\n",
     "nexthops[0].colour"),
    ("tunnel without dst", BASE + "nexthops: [{id: 5, type: tunnel, vni: 5}]\n", "nexthops[0].dst"),
    ("label to a missing next hop", BASE + "labels: [{label: 100, nh: 42}]\n", "labels[0].nh"),
    ("control_keys naming a missing directory",
     BASE.replace('control: "off"', 'control: "tcp://127.0.0.1:7999", control_keys: /nonexistent/keys'),
     "node.control_keys"),
    ("a key given twice", BASE + "routes: []\nroutes: []\n", "line 6"),
    ("second route's next hop missing",
     BASE + "routes: [{vrf: 1, prefix: 10.2.0.0/16, nh: 1}, {vrf: 1, prefix: 10.3.0.0/16, nh: 7}]\n",
     "routes[1].nh"),
    ("next-hop id taken by a vif", BASE + "nexthops: [{id: 1, type: discard}]\n", "nexthops[0].id"),
    ("VNI to a VRF out of range", BASE + "vnis: [{vni: 5, vrf: 99999}]\n", "vnis[0].vrf"),
    ("route with host bits", BASE + "routes: [{vrf: 1, prefix: 10.2.0.1/16, nh: 1}]\n", "routes[0].prefix"),
    ("ECMP member missing", BASE + "nexthops: [{id: 5, type: ecmp, members: [1, 77]}]\n", "nexthops[0]"),
    ("pod namespace missing", BASE.replace("name: tap-a,", "name: tap-a, netns: no-such-ns-x,"), "vifs[0].netns"),
    ("fabric interface missing", BASE.replace("interface: fab0", "interface: nosuch0"), "fabric.interface"),
]


@pytest.fixture
def node_ns(topo):
    """A namespace with a fabric-like veth (fab0) for the configurations above."""
    ns = topo.netns("chk")
    peer = topo.netns("chkpeer")
    topo.veth(ns, "fab0", peer, "fab1")
    topo.up(ns, "fab0")
    return ns


def write(tmp_path, text):
    p = tmp_path / "node.yaml"
    p.write_text(text)
    return str(p)


def vrouter_run(topo, ns, path, *extra, timeout=60):
    return topo.run(ns, sys.executable, "-m", "vrouter", "run", "--config", path, *extra, check=False,
                    timeout=timeout)


def test_check_accepts_a_good_configuration(topo, node_ns, tmp_path):
    r = vrouter_run(topo, node_ns, write(tmp_path, GOOD), "--check")
    assert r.returncode == 0, r.stderr
    assert "ok (1 vifs, 4 next hops, 2 routes, 1 labels, 1 VNIs)" in r.stdout
    # nothing was created: --check looks at devices, never makes one
    assert "tap-a" not in topo.run(node_ns, "ip", "link").stdout


@pytest.mark.parametrize("what,text,field", BAD, ids=[b[0] for b in BAD])
def test_check_refuses_what_start_up_refuses(topo, node_ns, tmp_path, what, text, field):
    path = write(tmp_path, text)
    chk = vrouter_run(topo, node_ns, path, "--check")
    assert chk.returncode == 2, (what, chk.stdout, chk.stderr)
    msg = chk.stderr.strip().split(f"{path}: ", 1)[1]
    assert msg.startswith(field), (what, msg)
    for leak in ("got an unexpected keyword", "Traceback", "object has no attribute", "KeyError"):
        assert leak not in chk.stderr
    # the real run refuses the same configuration, with the same words
    run = vrouter_run(topo, node_ns, path)
    assert run.returncode == 2, (what, run.stdout, run.stderr)
    assert msg in run.stderr or msg in run.stdout, (what, msg, run.stderr)
    assert "tap-a" not in topo.run(node_ns, "ip", "link").stdout


def xdp_attached(topo, ns, dev) -> bool:
    out = topo.run(ns, "ip", "-d", "link", "show", dev).stdout
    return "prog/xdp" in out or " xdp" in out.split("\n", 1)[0]


def test_control_endpoint_failure_stops_the_node_cleanly(topo, node_ns, tmp_path):
    """The control endpoint cannot bind (an address this host does not have): the node stops with
    rc 2, and its pod's TAP and the fabric's XDP program are gone."""
    keys = str(tmp_path / "keys")
    make_keys(keys, ["agent"])
    pod = topo.netns("pod")
    conf = yaml.safe_load(BASE)
    conf["node"].update(control="tcp://198.51.100.77:7999", control_keys=keys, stats_interval=0)
    conf["fabric"]["io"] = "xdp"
    conf["fabric"]["xdp_mode"] = "skb"
    conf["vifs"][0]["netns"] = pod
    path = write(tmp_path, yaml.safe_dump(conf))
    r = vrouter_run(topo, node_ns, path)
    assert r.returncode == 2, r.stderr
    assert "node.control: cannot listen on tcp://198.51.100.77:7999" in r.stderr
    assert "vif device added" in r.stderr and "fabric up" in r.stderr     # it got that far
    assert "tap-a" not in topo.run(pod, "ip", "link").stdout
    assert not [ln for ln in topo.run(node_ns, "ip", "link").stdout.splitlines() if "vrtap" in ln]
    assert not xdp_attached(topo, node_ns, "fab0")
    assert os.path.exists(path)


def test_check_of_the_readme_example(topo, tmp_path):
    """The node.yaml of the README's "node process" section passes --check where its devices exist."""
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    block = readme.split("```yaml\nnode:", 1)[1].split("```", 1)[0]
    conf = yaml.safe_load("node:" + block)
    ns = topo.netns("rd")
    peer = topo.netns("rdpeer")
    topo.veth(ns, conf["fabric"]["interface"], peer, "peer0")
    for v in conf["vifs"]:
        v["netns"] = topo.netns(v["netns"])
    conf["node"]["run_dir"] = str(tmp_path)
    path = write(tmp_path, yaml.safe_dump(conf))
    r = vrouter_run(topo, ns, path, "--check")
    assert r.returncode == 0, r.stderr
