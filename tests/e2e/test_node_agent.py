"""The agent split and the periodic audit, end to end on the demo cluster (real vrouters, pods and TCP):

* the audit (direct mode): while pods probe, an operator changes a vrouter behind the agent's back over
  the control channel (a route deleted, a stray route added, a next hop changed, a pod's vif deleted with
  its next hop and routes, a policy changed); the probe shows the damage, and within the audit period the
  agent repairs it with ops (not a snapshot), counts it per kind, and the probe shows the intent again;
* node agents: the same lab handed over from the cluster agent to a node agent beside each vrouter, in
  place: nothing swept, the same matrix; a node agent killed and restarted and the cluster agent stopped
  and restarted while pods ping at 100/s: not one packet lost; a node agent's audit repairs a route;
* `vrouter demo --node-agents`: the whole matrix as the intent defines it."""
import ast
import json
import re
import subprocess
import sys
import time

from control import client as C
from control.agent.compiler import key_str
from control.lab import demo as D

with open(D.EXAMPLE) as _f:
    EXAMPLE = _f.read()

AUDIT = 1.0


def addr(demo, pod, fam=4):
    """The pod's address on its last network (the one the matrix probes) and that interface."""
    itf = demo.agent.cluster.interfaces_of(("demo", pod))[-1]
    return next(str(a) for a in itf.addresses if a.version == fam), itf


def probe(demo, src, dst, timeout=0.7):
    a, _ = addr(demo, dst)
    return demo.lab.probe(demo.lab.pods[f"demo/{src}"], [(a, D.PORT)], timeout)[0]


def until(demo, src, dst, want, timeout):
    """Probe until the answer is ``want`` (True: that pod answers); the seconds it took."""
    t0 = time.monotonic()
    while True:
        got = probe(demo, src, dst)
        if (got == f"ok:demo/{dst}") == want:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, f"{src} -> {dst}: {got} after {timeout} s (want reached={want})"


def operator(demo, node):
    return C.Client(demo.lab.nodes[node].control, timeout=5)


def routes_to(demo, node, nh_ids):
    st = demo.agent.cluster.nodes[node]
    return {(vrf, fam): [p for p, n in t.items() if n in nh_ids] for (vrf, fam), t in st.routes.items()
            if any(n in nh_ids for n in t.values())}


def test_the_audit_repairs_what_an_operator_changed_while_pods_probe():
    demo = D.DemoCluster(audit_interval=AUDIT)
    try:
        demo.start({"demo.yaml": EXAMPLE})
        cl = demo.agent.cluster
        p1, p2 = demo.agent.nodes["node-1"], demo.agent.nodes["node-2"]
        red = cl.vrf_ids[("demo", "red")]
        red2, red2_itf = addr(demo, "red-2")
        assert until(demo, "red-1", "red-2", True, 5) < 1

        def damage(pusher, node, ops, kinds, src, dst, reached_after_damage):
            """Audits off, the operator's ops, the probe shows the damage; audits on: repaired."""
            pusher.audit_interval = 0
            before = dict(pusher.repairs)
            snapshots = pusher.counters["snapshot"]
            with operator(demo, node) as c:
                for op, body in ops:
                    if op == "route_del":
                        c.del_routes(body["vrf"], body["prefixes"])
                    elif op == "route_add":
                        c.add_routes(body["vrf"], body["prefixes"], body["nhs"])
                    else:
                        c.call(op, body)
            if reached_after_damage is not None:
                until(demo, src, dst, reached_after_damage, 5)
            pusher.audit_interval = AUDIT
            took = until(demo, src, dst, not reached_after_damage, 3 * AUDIT + 3) if reached_after_damage \
                is not None else None
            deadline = time.monotonic() + 3 * AUDIT + 3
            while {k: pusher.repairs[k] - before.get(k, 0) for k in kinds} != kinds:
                assert time.monotonic() < deadline, (dict(pusher.repairs), before, kinds)
                time.sleep(0.05)
            assert pusher.history[-1]["kind"] == "audit" and pusher.history[-1]["unrepaired"] == []
            assert pusher.counters["snapshot"] == snapshots          # repaired with ops, not a snapshot
            return took

        # a route deleted: red-1 no longer reaches red-2 until the audit puts it back
        took = damage(p1, "node-1", [("route_del", {"vrf": red, "prefixes": [f"{red2}/32"]})], {"route": 1},
                      "red-1", "red-2", False)
        assert took <= 2 * AUDIT + 2, took
        # a stray route (in red, to a next hop of node-1's): removed
        nh = sorted(cl.nodes["node-1"].nhs)[0]
        damage(p1, "node-1", [("route_add", {"vrf": red, "prefixes": ["10.99.0.0/16"], "nhs": [nh]})],
               {"route": 1}, "red-1", "red-2", None)
        with operator(demo, "node-1") as c:
            assert "10.99.0.0/16" not in {r["prefix"] for r in c.dump("route", vrf=red)}
        # the tunnel to red-2 pointed elsewhere: repaired
        tun = cl.nodes["node-1"].routes[(red, 4)][f"{red2}/32"]
        body = dict(cl.nodes["node-1"].nhs[tun], dst="192.0.2.99")
        damage(p1, "node-1", [("nh_update", body)], {"nh": 1}, "red-1", "red-2", False)
        # red-2's vif deleted with its next hop and routes (its device goes): all of it back, device included
        nhs = {i for i, b in cl.nodes["node-2"].nhs.items() if b.get("vif") == red2_itf.vif}
        ops = [("route_del", {"vrf": v, "prefixes": ps}) for (v, _), ps in routes_to(demo, "node-2", nhs).items()]
        n_routes = sum(len(b["prefixes"]) for _, b in ops)
        ops += [("nh_del", {"id": i}) for i in sorted(nhs)] + [("vif_del", {"id": red2_itf.vif})]
        damage(p2, "node-2", ops, {"vif": 1, "nh": len(nhs), "route": n_routes}, "red-1", "red-2", False)
        # shared-1's policy opened to everyone: team-b-1 gets in until the audit closes it again
        shared = demo.agent.cluster.interfaces_of(("demo", "shared-1"))[-1]
        damage(p2, "node-2", [("policy_set", {"kind": "vif", "id": shared.vif, "rules": []})], {"policy": 1},
               "team-b-1", "shared-1", True)
        assert probe(demo, "team-a-1", "shared-1") == "ok:demo/shared-1"
        assert p1.counters["audit"] > 0 and p2.counters["audit"] > 0
    finally:
        demo.close()


def pushes(log: str) -> list[tuple[str, dict]]:
    """(kind, swept) of every push a node agent logged."""
    return [(m.group(1), ast.literal_eval(m.group(2)) if m.group(2) else {})
            for m in re.finditer(r"node \S+: (snapshot|diff) pushed .*?(?:, swept (\{.*\}))?$", log, re.M)]


def test_node_agents_take_over_in_place_and_lose_nothing():
    demo = D.DemoCluster(audit_interval=AUDIT)
    try:
        demo.start({"demo.yaml": EXAMPLE})
        direct = {(c.src, c.dst, c.address): c.observed_what for c in demo.matrix()}
        demo.use_node_agents()
        assert not demo.agent.nodes and demo.agent.unserved() == []
        for n in demo.lab.nodes.values():
            got = pushes(n.agent_log())
            assert got and got[0][0] == "snapshot" and not any(got[0][1].values()), got   # nothing swept
        cells = demo.matrix()
        assert all(c.match for c in cells), [c for c in cells if not c.match]
        assert {(c.src, c.dst, c.address): c.observed_what for c in cells} == direct

        # pods ping at 100/s while node-1's agent is killed and restarted and the cluster agent goes away
        lab = demo.lab
        red2, _ = addr(demo, "red-2")
        pinger = lab.topo.popen(lab.pods["demo/red-1"], "ping", "-i", "0.01", "-c", "800", "-W", "1", red2,
                                stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        n1 = lab.nodes["node-1"]
        lab.restart_node_agent(n1, kill=True)
        deadline = time.monotonic() + 10
        while not pushes(n1.agent_log()):
            assert time.monotonic() < deadline, n1.agent_log()
            time.sleep(0.05)
        kind, swept = pushes(n1.agent_log())[0]
        assert kind == "snapshot" and not any(swept.values()), (kind, swept)
        demo.stop_agent()                          # the cluster agent away: the node agents carry on
        time.sleep(2)
        assert lab.nodes["node-2"].agent_proc.poll() is None
        demo.start_agent()                         # another instance, the same allocations
        demo.wait_converged()
        out, _ = pinger.communicate(timeout=60)
        assert "800 packets transmitted, 800 received" in out, out
        for n in lab.nodes.values():               # the new cluster agent changed nothing
            assert [k for k, _ in pushes(n.agent_log())] in (["snapshot"], ["snapshot", "snapshot"]), n.agent_log()

        # a node agent's audit repairs a route deleted behind its back
        red = demo.agent.cluster.vrf_ids[("demo", "red")]
        with operator(demo, "node-1") as c:
            c.del_routes(red, [f"{red2}/32"])
        until(demo, "red-1", "red-2", True, 3 * AUDIT + 3)
        assert re.search(r"audit: route \S+ in VRF \d+ missing .*; repairing", n1.agent_log()), n1.agent_log()
    finally:
        demo.close()


def test_vrouter_demo_with_node_agents():
    r = subprocess.run([sys.executable, "-m", "vrouter", "demo", "--json", "--node-agents"], capture_output=True,
                       text=True, timeout=120)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"exit {r.returncode}: {r.stdout[-3000:]}{r.stderr[-3000:]}") from None
    bad = [c for c in out["cells"] if not c["match"]]
    assert r.returncode == 0 and not bad and out["node_agents"], (r.returncode, bad, r.stderr[-3000:])
    assert len(out["cells"]) == 56 + 35 and out["agent"] == {}
    assert all(n["encap"] > 0 and n["decap"] > 0 for n in out["nodes"].values()), out["nodes"]
    assert key_str(("demo", "x")) == "demo/x"
