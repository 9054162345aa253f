"""One node, real packets: `vrouter run` in a node namespace owns three pods'
TAP devices (each moved into the pod's own namespace); pods 1 and 2 share VRF
1 and reach each other (ping, TCP, IPv6), pod 3 sits in VRF 2 with an
overlapping subnet (the same address as pod 1) and reaches neither."""
import json
import subprocess
import sys

POD_PY = """
import socket, sys
mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
if mode == "server":
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(1); s.settimeout(15)
    c, _ = s.accept(); c.settimeout(10)
    data = b""
    while not data.endswith(b"\\n"):
        chunk = c.recv(65536)
        if not chunk: break
        data += chunk
    c.sendall(b"echo:" + data); c.close()
else:
    s = socket.create_connection((addr, port), timeout=10)
    payload = b"x" * 100000 + b"\\n"
    s.sendall(payload)
    got = b""
    while len(got) < len(payload) + 5:
        chunk = s.recv(65536)
        if not chunk: break
        got += chunk
    print(len(got))
"""


def pods_conf():
    return {
        "node": {"name": "n1"},
        "vifs": [
            {"id": 1, "name": "tap-p1", "netns": None, "vrf": 1, "mac": "02:00:00:00:01:02",
             "ip": "10.1.0.2/24", "gateway": "10.1.0.1", "ip6": "fd00:1::2/64", "gateway6": "fd00:1::1"},
            {"id": 2, "name": "tap-p2", "netns": None, "vrf": 1, "mac": "02:00:00:00:01:03",
             "ip": "10.1.0.3/24", "gateway": "10.1.0.1", "ip6": "fd00:1::3/64", "gateway6": "fd00:1::1"},
            {"id": 3, "name": "tap-p3", "netns": None, "vrf": 2, "mac": "02:00:00:00:02:02",
             "ip": "10.1.0.2/24", "gateway": "10.1.0.1"},
        ],
    }


def tcp_roundtrip(topo, server_ns, client_ns, addr, port=5001):
    srv = topo.popen(server_ns, sys.executable, "-c", POD_PY, "server", addr, port)
    try:
        for _ in range(50):   # wait for the listener
            r = topo.run(server_ns, "ss", "-ltn", check=False)
            if f":{port}" in r.stdout:
                break
            subprocess.run(["sleep", "0.05"])
        out = topo.run(client_ns, sys.executable, "-c", POD_PY, "client", addr, port, timeout=30)
        return int(out.stdout.strip())
    finally:
        srv.wait(timeout=20)


def ping(topo, ns, addr, count=3):
    return topo.run(ns, "ping", "-c", count, "-i", "0.2", "-W", "2", addr, check=False, timeout=30)


def test_two_pods_one_vrf_and_an_isolated_third(topo, vrouter):
    node = topo.netns("node")
    p1, p2, p3 = topo.netns("p1"), topo.netns("p2"), topo.netns("p3")
    conf = pods_conf()
    for v, ns in zip(conf["vifs"], (p1, p2, p3)):
        v["netns"] = ns
    vr = vrouter(node, conf)

    r = ping(topo, p1, "10.1.0.3")
    assert r.returncode == 0, r.stdout + r.stderr + vr.text()
    assert ping(topo, p2, "10.1.0.2").returncode == 0
    assert ping(topo, p1, "10.1.0.1", 1).returncode == 0            # the gateway answers echo
    assert ping(topo, p1, "fd00:1::3").returncode == 0               # IPv6 through ND proxy
    assert tcp_roundtrip(topo, p2, p1, "10.1.0.3") == 100006
    assert tcp_roundtrip(topo, p1, p2, "fd00:1::2", 5002) == 100006

    # pod 3: the same address as pod 1, in VRF 2, where nothing else exists
    before = vr.stats()["vifs"]["1"]["tx_packets"]
    assert ping(topo, p3, "10.1.0.3", 2).returncode != 0
    assert ping(topo, p3, "10.1.0.1", 1).returncode == 0            # its own gateway answers
    assert vr.stats()["vifs"]["1"]["tx_packets"] == before          # nothing of pod 3 reached pod 1

    st = vr.stats()
    drops = st["datapath"]["drops"]
    assert drops["arp_not_for_us"] >= 2, drops     # pod 3 never even resolves 10.1.0.3
    assert st["vifs"]["1"]["rx_packets"] > 0 and st["vifs"]["2"]["tx_packets"] > 0
    assert st["datapath"]["flow_installs"] > 0

    rc = vr.stop()
    assert rc == 0, vr.text()
    # nothing left behind: the TAP devices went with the process
    for ns in (node, p1, p2, p3):
        links = json.loads(topo.run(ns, "ip", "-j", "link", "show").stdout)
        assert [x["ifname"] for x in links] == ["lo"], links


def test_bad_config_is_refused_naming_the_field(topo, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("node: {workers: 0}\n")
    r = subprocess.run([sys.executable, "-m", "vrouter", "run", "--config", str(bad)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "node.workers" in r.stderr
    bad.write_text("vifs: [{id: 1, name: tap-x, vrf: 1, mac: '02:00:00:00:00:01', ip: 10.0.0.2/24, "
                   "gateway: 10.9.0.1}]\n")
    r = subprocess.run([sys.executable, "-m", "vrouter", "run", "--config", str(bad)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "vifs[0].gateway" in r.stderr and "outside" in r.stderr
