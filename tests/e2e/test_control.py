"""The ZeroMQ control channel against a real `vrouter run` process: a node
configured only through the channel forwards real packets; errors name the
field; dumps page; a snapshot re-push sweeps what was not re-pushed; an agent
killed mid-snapshot changes nothing it did not push; a restarted vrouter is
recognised; tcp:// needs a known CurveZMQ key; random and mutated messages
leave the process up and its state unchanged."""
import os
import random
import signal
import stat
import subprocess
import sys

import pytest
import zmq

from control import client as C
from control import protocol as P
from test_node_local import ping

ROUTER_MAC = "00:00:5e:00:01:00"


def endpoint(vr):
    return f"ipc://{vr.dir}/control.sock"


def pod_vif(vid, ns, ip, mac, vrf=1):
    return {"id": vid, "kind": "virtual", "vrf": vrf, "mac": ROUTER_MAC, "gw4": "10.1.0.1",
            "prefixes": [f"{ip}/32"],
            "tap": {"name": f"tap-c{vid}", "netns": ns, "pod_mac": mac, "ip": f"{ip}/24"}}


@pytest.fixture
def node(topo, vrouter):
    n = topo.netns("node")
    vr = vrouter(n, {"node": {"name": "cn"}}, "cn")
    return vr


def test_a_node_configured_only_through_the_channel_forwards(topo, node):
    a, b = topo.netns("a"), topo.netns("b")
    with C.Client(endpoint(node)) as c:
        hello = c.hello("test-agent")
        assert hello["node"] == "cn" and len(hello["instance"]) >= 32
        mode = stat.S_IMODE(os.stat(f"{node.dir}/control.sock").st_mode)
        assert mode == 0o600
        c.call("vrf_add", {"vrf": 1, "name": "red"})
        c.call("vif_add", pod_vif(1, a, "10.1.0.2", "02:00:00:00:0a:02"))
        c.call("vif_add", pod_vif(2, b, "10.1.0.3", "02:00:00:00:0b:02"))
        c.call("nh_add", {"id": 1, "type": "interface", "vif": 1, "dmac": "02:00:00:00:0a:02"})
        c.call("nh_add", {"id": 2, "type": "interface", "vif": 2, "dmac": "02:00:00:00:0b:02"})
        assert c.add_routes(1, ["10.1.0.2/32", "10.1.0.3/32"], [1, 2]) == 2
        r = ping(topo, a, "10.1.0.3", 3)
        assert r.returncode == 0, r.stdout + node.text()
        st = c.call("stats")
        assert st["datapath"]["forwarded"] > 0 and st["control"]["ok"] >= 7
        # capture on pod 2's vif: the echo requests it is sent and the replies it sends back
        c.call("capture_start", {"vif": 2, "snaplen": 96})
        assert ping(topo, a, "10.1.0.3", 3).returncode == 0
        cap = c.call("capture_read")
        c.call("capture_stop")
        from scapy.layers.inet import ICMP
        from scapy.layers.l2 import Ether
        pk = [(f["dir"], Ether(f["frame"])) for f in cap["frames"]]
        assert sum(d == "tx" and p.haslayer(ICMP) and p[ICMP].type == 8 for d, p in pk) == 3, pk
        assert sum(d == "rx" and p.haslayer(ICMP) and p[ICMP].type == 0 for d, p in pk) == 3, pk
        assert all(len(f["frame"]) <= 96 and f["len"] >= len(f["frame"]) for f in cap["frames"])
        assert cap["dropped"] == 0
        hit = c.call("route_lookup", {"vrf": 1, "address": "10.1.0.3"})
        assert (hit["prefix"], hit["nh"], hit["next_hop"]["type"]) == ("10.1.0.3/32", 2, "interface")
        with pytest.raises(C.NotFoundError):
            c.call("route_lookup", {"vrf": 1, "address": "10.77.0.1"})
        # errors name the field, and change nothing
        with pytest.raises(C.NotFoundError) as e:
            c.add_routes(1, ["10.9.0.0/16", "10.8.0.0/16"], [2, 77])
        assert e.value.field == "b.nhs[1]"
        assert [x["prefix"] for x in c.dump("route", vrf=1, family=4)] == ["10.1.0.2/32", "10.1.0.3/32"]
        with pytest.raises(C.InUseError, match="route"):
            c.call("nh_del", {"id": 2})
        with pytest.raises(C.InUseError):
            c.call("vrf_del", {"vrf": 1})
        with pytest.raises(C.NotFoundError, match="VRF 9"):
            c.call("route_add", dict(P.pack_routes(4, ["10.7.0.0/16"], [1]), vrf=9))
        with pytest.raises(C.InvalidError) as e:
            c.call("nh_add", {"id": 3, "type": "tunnel", "vif": 1})
        assert e.value.field and e.value.field.startswith("b")
        # flows: dumped in pages; a policy applies to new flows, so flush the old ones
        flows = list(c.dump("flow", limit=2))
        assert any(f["proto"] == 1 and f["src"] == "10.1.0.2" and f["dst"] == "10.1.0.3" for f in flows), flows
        c.call("vif_update", dict(pod_vif(1, a, "10.1.0.2", "02:00:00:00:0a:02"), policy=True, tap=None))
        c.call("policy_set", {"kind": "vif", "id": 1, "rules": [{"id": 9, "proto": "icmp", "action": "deny"}]})
        assert c.call("get", {"table": "policy", "kind": "vif", "id": 1})["item"]["rules"][0]["id"] == 9
        assert [p["id"] for p in c.dump("policy")] == [1]
        assert c.call("flow_delete", {"all": True})["deleted"] >= 1
        assert list(c.dump("flow")) == []
        assert ping(topo, a, "10.1.0.3", 2).returncode != 0
        assert c.call("drop_stats")["reasons"]["policy_deny"] >= 2
        c.call("policy_del", {"kind": "vif", "id": 1})
        c.call("flow_delete", {"all": True})
        assert ping(topo, a, "10.1.0.3", 2).returncode == 0
        # deleting the vif's device takes the TAP away
        c.call("route_del", dict(P.pack_routes(4, ["10.1.0.3/32"]), vrf=1))
        c.call("nh_del", {"id": 2})
        c.call("vif_del", {"id": 2})
        assert topo.run(b, "ip", "link", "show", "tap-c2", check=False).returncode != 0
    assert node.stop() == 0


def test_batches_paged_dumps_and_snapshot_sweep(node):
    with C.Client(endpoint(node), generation=1) as c:
        c.hello("agent")
        c.call("vrf_add", {"vrf": 5})
        c.call("nh_add", {"id": 10, "type": "discard"})
        c.call("nh_add", {"id": 11, "type": "receive"})
        prefixes = [f"10.{i >> 8}.{i & 255}.0/24" for i in range(25_000)]
        assert c.add_routes(5, prefixes, [10] * len(prefixes)) == 25_000
        got = list(c.dump("route", vrf=5, family=4, limit=1000))
        assert len(got) == 25_000 and got[0] == {"prefix": "10.0.0.0/24", "nh": 10}
        assert [x["id"] for x in c.dump("nh", limit=1)] == [10, 11]
        # a new generation re-pushes half the routes and only nh 10: the rest is swept at the end
        c.generation = 2
        c.hello("agent")
        c.call("snapshot_begin", {"generation": 2})
        c.call("vrf_add", {"vrf": 5})
        c.call("nh_add", {"id": 10, "type": "discard"})
        c.add_routes(5, prefixes[:12_500], [10] * 12_500)
        assert len(list(c.dump("route", vrf=5, family=4, limit=5000))) == 25_000   # nothing swept yet
        swept = c.call("snapshot_end", {"generation": 2})["swept"]
        assert swept["routes"] == 12_500 and swept.get("nh") == 1
        assert len(list(c.dump("route", vrf=5, family=4, limit=5000))) == 12_500
        assert [x["id"] for x in c.dump("nh")] == [10]
        assert c.hello("agent")["generation"] == 2
        # an older generation is refused
        c.generation = 1
        with pytest.raises(C.StaleError):
            c.call("ping")


AGENT = r"""
import sys, time
from control import client as C
c = C.Client(sys.argv[1], generation=3)
c.hello("dying-agent")
c.call("snapshot_begin", {"generation": 3})
c.call("nh_add", {"id": 20, "type": "discard"})
c.add_routes(5, ["10.200.0.0/16"], [20])
print("pushed", flush=True)
time.sleep(60)
"""


def test_agent_killed_mid_snapshot_changes_nothing_else(node, topo):
    with C.Client(endpoint(node), generation=1) as c:
        c.hello("agent")
        c.call("vrf_add", {"vrf": 5})
        c.call("nh_add", {"id": 10, "type": "discard"})
        c.add_routes(5, ["10.1.0.0/16", "10.2.0.0/16"], [10, 10])
    p = subprocess.Popen([sys.executable, "-c", AGENT, endpoint(node)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "pushed"
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
    with C.Client(endpoint(node), generation=4) as c:
        assert c.hello("agent-2")["generation"] == 0        # no snapshot ever completed
        routes = {x["prefix"] for x in c.dump("route", vrf=5, family=4)}
        assert routes == {"10.1.0.0/16", "10.2.0.0/16", "10.200.0.0/16"}   # nothing swept, nothing lost
        c.call("snapshot_begin", {"generation": 4})
        c.call("vrf_add", {"vrf": 5})
        c.call("nh_add", {"id": 10, "type": "discard"})
        c.add_routes(5, ["10.1.0.0/16"], [10])
        swept = c.call("snapshot_end", {"generation": 4})["swept"]
        assert swept["routes"] == 2 and swept.get("nh") == 1
        assert {x["prefix"] for x in c.dump("route", vrf=5, family=4)} == {"10.1.0.0/16"}


def test_restarted_vrouter_has_a_new_instance(topo, vrouter):
    n = topo.netns("node")
    vr = vrouter(n, {"node": {"name": "r1"}}, "r1")
    with C.Client(endpoint(vr)) as c:
        first = c.hello("a")["instance"]
    assert vr.stop() == 0
    vr2 = vrouter(n, {"node": {"name": "r1"}}, "r1b")
    with C.Client(endpoint(vr2)) as c:
        assert c.hello("a")["instance"] != first


def test_tcp_needs_a_known_curve_key(topo, vrouter, tmp_path):
    from control.keys import make
    keys = tmp_path / "keys"
    make(str(keys), ["agent"])
    other = tmp_path / "other"
    make(str(other), ["stranger"])
    n = topo.netns("node")
    port = random.randint(20000, 40000)
    vr = vrouter(n, {"node": {"name": "t1", "control": f"tcp://127.0.0.1:{port}", "control_keys": str(keys)}},
                 "t1")
    ep = f"tcp://127.0.0.1:{port}"
    # the client runs inside the node's namespace (its loopback)
    script = r"""
import sys, json
from control import client as C
ep, keys, name = sys.argv[1:4]
c = C.Client(ep, timeout=1.0, retries=0, curve=C.load_curve(keys, name))
try:
    print(json.dumps({"ok": c.hello("x")["node"]}))
except C.Timeout:
    print(json.dumps({"ok": None}))
"""
    good = topo.run(n, sys.executable, "-c", script, ep, str(keys), "agent", timeout=30)
    assert '"ok": "t1"' in good.stdout, good.stdout + good.stderr + vr.text()
    # a key the vrouter does not know: its server key is right, its own key is not allowed
    import shutil
    shutil.copy(keys / "server.key", other / "server.key")
    bad = topo.run(n, sys.executable, "-c", script, ep, str(other), "stranger", timeout=30)
    assert '"ok": null' in bad.stdout, bad.stdout + bad.stderr


def test_random_and_mutated_messages_change_nothing(node):
    rng = random.Random(6635)
    with C.Client(endpoint(node)) as c:
        c.hello("agent")
        c.call("vrf_add", {"vrf": 1})
        c.call("nh_add", {"id": 1, "type": "discard"})
        c.add_routes(1, ["10.0.0.0/8"], [1])
        before = (list(c.dump("route", vrf=1)), list(c.dump("nh")), [v["vrf"] for v in c.dump("vrf")])
    valid = [P.encode_request(op, body, session="s", generation=0, sequence=7) for op, body in (
        ("route_add", dict(P.pack_routes(4, ["10.9.0.0/16"], [1]), vrf=1)),
        ("nh_add", {"id": 5, "type": "tunnel", "vif": 0, "dmac": "02:00:00:00:00:01", "encap": "vxlan",
                    "src": "192.0.2.1", "dst": "192.0.2.2", "vni": 7}),
        ("vif_add", {"id": 3, "kind": "virtual", "vrf": 1, "mac": ROUTER_MAC}),
        ("vrf_del", {"vrf": 1}), ("ping", {}))]
    with C.Client(endpoint(node)) as c:
        counted = c.call("stats")["control"]
    log_lines = len(node.text().splitlines())
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint(node))
    sent = answered = 0
    for i in range(10_000):
        if i % 3 == 0:
            msg = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        else:
            b = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 4)):
                k = rng.randrange(len(b))
                b[k] = rng.randrange(256)
            if rng.random() < 0.3:
                del b[rng.randrange(len(b)):]
            msg = bytes(b)
        s.send(msg)
        sent += 1
        if sent % 500 == 0 or sent == 10_000:   # a client that reads its answers gets every one
            while answered < sent and s.poll(5000):
                rep = P.decode_reply(s.recv())
                assert rep.ok or rep.error.code in P.ERROR_CODES
                answered += 1
    s.close()
    assert answered >= sent * 0.99, (answered, sent)
    with C.Client(endpoint(node)) as c:
        now = c.call("stats")["control"]
        c.hello("agent")
        after = (list(c.dump("route", vrf=1)), list(c.dump("nh")), [v["vrf"] for v in c.dump("vrf")])
    # every message counted once, ok, refused or busy (plus the first stats call: a stats reply does not
    # count itself), and the refusals' log lines are rate-limited: a few per error code, not 10,000
    moved = {k: now.get(k, 0) - counted.get(k, 0) for k in ("ok", "errors", "busy")}
    assert moved["ok"] + moved["errors"] + moved["busy"] == sent + 1, (moved, sent)
    assert len(node.text().splitlines()) - log_lines < 200, node.text()[-3000:]
    # a mutation may by chance be a wholly valid request (and then applies: it added something), but
    # nothing that was there is gone or changed
    for b, a in zip(before, after):
        assert all(x in a for x in b), (b, a)
    assert node.proc.poll() is None and node.stop() == 0


ZERO_LOSS_AGENT = r"""
import sys, time
from control import client as C
ep, gen, stop_after, me, peer, pod, pod_mac, remote_pod, peer_mac = sys.argv[1:10]
gen, stop_after = int(gen), int(stop_after)
c = C.Client(ep, generation=gen, timeout=10)
c.hello("agent")
steps = [
    ("snapshot_begin", {"generation": gen}),
    ("vrf_add", {"vrf": 1}),
    ("vif_add", {"id": 1, "kind": "virtual", "vrf": 1, "mac": "00:00:5e:00:01:00", "mtu": 1500,
                 "gw4": "10.1.0.1", "prefixes": [pod + "/32"]}),
    ("nh_add", {"id": 1, "type": "interface", "vif": 1, "dmac": pod_mac}),
    ("nh_add", {"id": 100, "type": "tunnel", "vif": 0, "dmac": peer_mac, "encap": "vxlan", "src": me,
                "dst": peer, "vni": 100, "inner_dmac": "00:00:5e:00:01:00"}),
    ("vni_add", {"vni": 100, "vrf": 1}),
    ("routes", None),
    ("snapshot_end", {"generation": gen}),
]
for i, (op, body) in enumerate(steps):
    if i == stop_after:
        print("stopping", flush=True)
        time.sleep(60)
    if op == "routes":
        c.add_routes(1, [pod + "/32", remote_pod + "/32"], [1, 100])
    else:
        c.call(op, body)
print("done", flush=True)
"""


def test_zero_loss_while_the_agent_dies_and_resyncs(topo, vrouter):
    """Pods on two nodes ping at 100/s while an agent snapshots both vrouters, is killed in the
    middle of a second snapshot, comes back and snapshots again: not one packet is lost."""
    from test_node_fabric import F1_MAC, F2_MAC, N1, N2, two_nodes
    (n1, n2, a, b), (v1, v2) = two_nodes(topo, vrouter, "vxlan", "xdp")
    assert ping(topo, a, "10.1.0.12", 2).returncode == 0
    pinger = topo.popen(a, "ping", "-i", "0.01", "-c", "600", "-W", "1", "10.1.0.12", stdout=subprocess.PIPE,
                        text=True)
    nodes = [(v1, N1, N2, "10.1.0.2", "02:00:00:00:0a:02", "10.1.0.12", F2_MAC),
             (v2, N2, N1, "10.1.0.12", "02:00:00:00:0b:02", "10.1.0.2", F1_MAC)]
    for gen, stop_after in ((1, 99), (2, 5), (3, 99)):
        procs = []
        for vr, me, peer, pod, mac, remote, peer_mac in nodes:
            procs.append(subprocess.Popen([sys.executable, "-c", ZERO_LOSS_AGENT, endpoint(vr), str(gen),
                                           str(stop_after), me, peer, pod, mac, remote, peer_mac],
                                          stdout=subprocess.PIPE, text=True))
        for p in procs:
            line = p.stdout.readline().strip()
            if stop_after < 99:
                assert line == "stopping"
                os.kill(p.pid, signal.SIGKILL)       # the agent dies mid-snapshot
            else:
                assert line == "done", line
            p.wait(timeout=30)
    out, _ = pinger.communicate(timeout=60)
    assert "600 packets transmitted, 600 received" in out, out
    for vr in (v1, v2):
        with C.Client(endpoint(vr)) as c:
            assert c.hello("check")["generation"] == 3


BEYOND = [   # (op, body, field): next-hop id 70,000 (the protocol allows it; a default node holds 0..65,535)
    ("nh_add", {"id": 70_000, "type": "discard"}, "b.id"),
    ("nh_update", {"id": 70_000, "type": "discard"}, "b.id"),
    ("nh_del", {"id": 70_000}, "b.id"),
    ("nh_add", {"id": 9, "type": "ecmp", "members": [1, 70_000]}, "b.members[1]"),
    ("route_add", dict(P.pack_routes(4, ["10.9.0.0/16", "10.8.0.0/16"], [1, 70_000]), vrf=1), "b.nhs[1]"),
    ("label_add", {"label": 100, "nh": 70_000}, "b.nh"),
    ("get", {"table": "nh", "id": 70_000}, "b.id"),
]
DANGLING = [   # (op, body, field): a reference to something absent
    ("nh_add", {"id": 9, "type": "interface", "vif": 7, "dmac": "02:00:00:00:00:01"}, "b.vif"),
    ("nh_add", {"id": 9, "type": "ecmp", "members": [1, 3]}, "b.members[1]"),
    ("nh_add", {"id": 9, "type": "vrf", "vrf": 8}, "b.vrf"),
    ("label_add", {"label": 100, "nh": 3}, "b.nh"),
    ("vni_add", {"vni": 100, "vrf": 8}, "b.vrf"),
    ("policy_set", {"kind": "vif", "id": 7, "rules": []}, "b.id"),
]


def test_next_hop_ids_beyond_the_table_and_dangling_references_name_their_field(topo, vrouter):
    n = topo.netns("node")
    vr = vrouter(n, {"node": {"name": "big"}}, "big")
    with C.Client(endpoint(vr)) as c:
        assert c.hello("agent")["limits"] == {"nexthops": 65536}
        c.call("vrf_add", {"vrf": 1})
        c.call("nh_add", {"id": 1, "type": "discard"})
        for code, cases in (("invalid", BEYOND), ("not_found", DANGLING)):
            for op, body, field in cases:
                with pytest.raises(C.ControlError) as e:
                    c.call(op, body)
                assert (e.value.code, e.value.field) == (code, field), (op, str(e.value))
        assert [x["id"] for x in c.dump("nh")] == [1] and list(c.dump("route", vrf=1)) == []
        assert c.call("stats")["control"].get("error_internal", 0) == 0
    assert "internal error" not in vr.text() and vr.stop() == 0
    # a node configured for more next hops takes the same ids
    vr = vrouter(n, {"node": {"name": "bigger", "nexthops": 1 << 17}}, "bigger")
    with C.Client(endpoint(vr)) as c:
        assert c.hello("agent")["limits"] == {"nexthops": 1 << 17}
        c.call("vrf_add", {"vrf": 1})
        c.call("nh_add", {"id": 70_000, "type": "discard"})
        assert c.add_routes(1, ["10.9.0.0/16"], [70_000]) == 1
        assert c.call("route_lookup", {"vrf": 1, "address": "10.9.1.1"})["nh"] == 70_000
    assert vr.stop() == 0
