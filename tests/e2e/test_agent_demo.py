"""The agent end to end: `vrouter demo` itself, then the demo cluster changed at run time (a VNR, a policy,
pods), a vrouter restarted and the agent restarted; after each step the whole reachability matrix, probed
with real TCP connections, equals the one the intent defines."""
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from control.lab import demo as D
from control.agent.agent import Agent
from control.lab.lab import Lab

with open(D.EXAMPLE) as _f:
    EXAMPLE = _f.read()

JOIN_TEAMS = """
apiVersion: core.contrail.juniper.net/v1
kind: VirtualNetworkRouter
metadata: {name: teams, namespace: demo}
spec:
  type: mesh
  virtualNetworkSelector: {matchLabels: {role: spoke}}
"""

GREEN_2 = """
apiVersion: v1
kind: Pod
metadata:
  name: green-2
  namespace: demo
  annotations: {k8s.v1.cni.cncf.io/networks: demo/green}
spec: {nodeName: node-1}
"""


def without(text: str, kind: str = None, name: str = None) -> str:
    docs = [d for d in yaml.safe_load_all(text) if d]
    keep = [d for d in docs if not (d["kind"] == kind and (name is None or d["metadata"]["name"] == name))]
    assert len(keep) < len(docs)
    return yaml.safe_dump_all(keep)


def cells(demo):
    got = demo.matrix()
    bad = [c for c in got if not c.match]
    assert not bad, "\n".join(f"{c.src}->{c.dst} {c.address}: expected {c.expected} ({c.expected_why}), "
                              f"observed {c.observed_what}" for c in bad)
    # (src, dst): the IPv4 cell; (src, dst, 6): the IPv6 one (dual-stack networks only)
    return {(c.src.split("/")[1], c.dst.split("/")[1]) + ((6,) if ":" in c.address else ()): c for c in got}


@pytest.mark.parametrize("encap", ["vxlan", "mplsoudp"])
def test_vrouter_demo_matrix(encap):
    r = subprocess.run([sys.executable, "-m", "vrouter", "demo", "--json", "--encap", encap], capture_output=True,
                       text=True, timeout=120)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"exit {r.returncode}: {r.stdout[-3000:]}{r.stderr[-3000:]}") from None
    bad = [c for c in out["cells"] if not c["match"]]
    assert r.returncode == 0 and not bad, (r.returncode, bad, out["nodes"], r.stderr[-3000:])
    assert out["ok"] and len(out["pods"]) == 8 and len(out["cells"]) == 56 + 35   # IPv4, IPv6 (5 dual-stack)
    c = {(x["src"], x["dst"]): x for x in out["cells"] if ":" not in x["address"]}
    c6 = {(x["src"], x["dst"]): x for x in out["cells"] if ":" in x["address"]}
    assert c6[("demo/red-1", "demo/green-1")]["observed"] and c6[("demo/red-1", "demo/red-2")]["observed"]
    assert c6[("demo/blue-1", "demo/red-2")]["observed_what"] == "ok:demo/blue-2"
    assert not c6[("demo/green-1", "demo/blue-1")]["observed"]
    assert c[("demo/red-1", "demo/green-1")]["observed"]                   # mesh
    assert c[("demo/red-1", "demo/red-2")]["observed"]                     # one network, two nodes
    assert not c[("demo/red-1", "demo/blue-1")]["observed"]                # isolated
    assert c[("demo/blue-1", "demo/red-2")]["observed_what"] == "ok:demo/blue-2"   # same address, own network
    assert c[("demo/team-a-1", "demo/shared-1")]["observed"]               # spoke -> hub
    assert c[("demo/shared-1", "demo/team-b-1")]["observed"]               # hub -> spoke (one node, two VRFs)
    assert not c[("demo/team-a-1", "demo/team-b-1")]["observed"]           # spoke -/-> spoke
    assert not c[("demo/team-b-1", "demo/shared-1")]["observed"]           # the NetworkPolicy
    assert c[("demo/team-b-1", "demo/shared-1")]["expected_why"].startswith("NetworkPolicy")
    assert all(n["encap"] > 0 and n["decap"] > 0 for n in out["nodes"].values()), out["nodes"]
    assert out["nodes"]["node-2"]["drops"].get("policy_deny", 0) > 0
    assert all(h[0]["kind"] == "snapshot" for h in out["agent"].values())
    # nothing left behind
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert out["tag"].startswith("vrdemo-") and out["tag"] not in left
    assert not os.path.exists(os.path.join("/tmp", out["tag"]))


def test_intent_changes_at_run_time_converge():
    demo = D.DemoCluster()
    try:
        demo.start({"demo.yaml": EXAMPLE})
        m = cells(demo)
        assert not m[("team-a-1", "team-b-1")].observed and not m[("team-b-1", "shared-1")].observed
        n2 = demo.agent.nodes["node-2"]
        snapshots = len(n2.history)

        demo.write("teams.yaml", JOIN_TEAMS)                # a mesh VNR joins the two spokes
        m = cells(demo)
        assert m[("team-a-1", "team-b-1")].observed and m[("team-b-1", "team-a-1")].observed
        assert m[("team-a-1", "shared-1")].observed         # the hub still reached
        assert n2.history[-1]["kind"] == "diff" and len(n2.history) == snapshots + 1

        demo.write("demo.yaml", without(EXAMPLE, "NetworkPolicy"))   # the policy goes
        m = cells(demo)
        assert m[("team-b-1", "shared-1")].observed
        assert n2.history[-1]["ops"] == {"policy_del": 2, "vif_update": 2}

        demo.write("green-2.yaml", GREEN_2)                 # a pod comes
        m = cells(demo)
        assert m[("red-1", "green-2")].observed and m[("green-2", "red-2")].observed
        assert m[("red-1", "green-2", 6)].observed and m[("green-2", "red-2", 6)].observed
        assert not m[("green-2", "blue-2")].observed

        demo.write("green-2.yaml", GREEN_2.replace("demo/green", "demo/red"))   # its eth1 moves to red
        m = cells(demo)
        assert m[("green-2", "red-1")].observed and m[("green-2", "green-1")].observed
        assert m[("red-2", "green-2")].observed_what == "ok:demo/green-2"
        assert n2.history[-1]["kind"] == "diff"

        demo.remove("teams.yaml")                           # the VNR goes
        demo.write("demo.yaml", without(without(EXAMPLE, "NetworkPolicy"), "Pod", "blue-2"))   # a pod goes
        m = cells(demo)
        assert not m[("team-a-1", "team-b-1")].observed
        assert not any("blue-2" in k for k in m)
        assert m[("blue-1", "red-2")].observed_what == "timeout"     # blue-2 answered for 10.10.0.3 before
        assert "demo/blue-2" not in demo.lab.pods
        vifs = {v["id"] for v in demo.agent.nodes["node-2"].client.dump("vif")}
        assert vifs == {0} | set(demo.agent.cluster.nodes["node-2"].vifs)
        assert all(h["kind"] == "diff" for h in n2.history[snapshots:])
    finally:
        demo.close()


def test_bad_intent_keeps_the_last_good_one():
    demo = D.DemoCluster()
    try:
        demo.start({"demo.yaml": EXAMPLE})
        before = demo.agent.cluster
        bad = EXAMPLE.replace("cidr: 10.20.0.0/24", "cidr: 10.20.0.0/33")
        with pytest.raises(D.DemoError, match=r"demo.yaml doc \d+ \(Subnet demo/green-v4\): spec.cidr"):
            demo.write("demo.yaml", bad, timeout=10)
        assert demo.agent.cluster is before and demo.agent.converged()
        cells(demo)
        demo.write("demo.yaml", EXAMPLE)
        assert demo.agent.intent_error is None
    finally:
        demo.close()


def test_vrouter_restart_and_agent_restart_resync():
    demo = D.DemoCluster()
    try:
        demo.start({"demo.yaml": EXAMPLE})
        node2 = demo.lab.nodes["node-2"]
        old = demo.agent.nodes["node-2"].instance
        demo.lab.restart_node(node2)          # its TAPs went with the old process: the pods lost eth0/eth1
        n2 = demo.agent.nodes["node-2"]
        deadline = time.monotonic() + 10      # the agent's hello (every second) sees a new instance
        while n2.instance in (old, None) and time.monotonic() < deadline:
            time.sleep(0.05)
        demo.wait_converged()
        assert n2.instance not in (old, None) and n2.history[-1]["kind"] == "snapshot"
        cells(demo)

        # node-2 down: a change still reaches node-1 at once; node-2 gets it when it is back
        demo.lab.stop_node(node2)
        t0 = time.monotonic()
        demo.write("green-3.yaml", GREEN_2.replace("name: green-2", "name: green-3"), wait=False)
        n1, t_n1 = demo.agent.nodes["node-1"], None
        while time.monotonic() - t0 < 10 and (t_n1 is None or not n2.last_error):
            if t_n1 is None and ("demo", "green-3") in demo.agent.intent.pods and \
                    n1.pushed == demo.agent.cluster.nodes["node-1"]:
                t_n1 = time.monotonic() - t0
            time.sleep(0.05)
        assert t_n1 is not None and t_n1 < 3, (t_n1, n1.last_error)
        assert n2.last_error and n2.failures >= 1
        demo.lab.restart_node(node2)
        demo.wait_converged()
        assert n2.history[-1]["kind"] == "snapshot"
        cells(demo)

        # a new agent (another session) with the same allocation state: the same ids, nothing to sweep
        demo._stop.set()
        demo._thread.join(timeout=10)
        demo.agent.close()
        agent = Agent([demo.intent_dir], os.path.join(demo.lab.dir, "agent-state.json"),
                      netns_format=demo.lab.netns_format)
        demo.agent = agent
        assert agent.round()
        for ns in agent.nodes.values():
            assert ns.history[-1]["kind"] == "snapshot"
            assert not any(ns.history[-1]["swept"].values()), ns.history
        cells(demo)
    finally:
        demo.close()


def test_agent_process_once_and_check(tmp_path):
    with Lab() as lab:
        n = lab.add_node("node-1", "192.0.2.1")
        lab.start_node(n)
        pod = lab.add_pod("default", "web")
        intent = tmp_path / "intent.yaml"
        intent.write_text(f"""
apiVersion: vrouter.io/v1
kind: Node
metadata: {{name: node-1}}
spec: {{fabricAddress: 192.0.2.1, control: "{n.control}"}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: default}}
spec: {{nodeName: node-1}}
""")
        state = tmp_path / "state.json"
        base = [sys.executable, "-m", "control.agent", "--intent", str(tmp_path), "--state", str(state),
                "--netns-format", lab.netns_format]
        r = subprocess.run(base + ["--check"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "node-1: 1 VRFs, 1 vifs, 1 next hops, 1 routes, 0 policies" in r.stdout, r
        r = subprocess.run(base + ["--once"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert json.loads(state.read_text())["addresses"]["default/default-podnetwork-v4"] == \
            {"default/web#0": "10.244.0.2"}
        got = lab.topo.run(pod, "ip", "-j", "addr", "show", "eth0").stdout
        assert "10.244.0.2" in got
        assert lab.ping(pod, "10.244.0.1")                # the gateway answers through the vrouter
        bad = tmp_path / "bad.yaml"
        bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {nodeName: node-9}\n")
        r = subprocess.run(base + ["--check"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and "bad.yaml doc 1 (Pod default/x): spec.nodeName: no node node-9" in r.stderr


def test_vrouter_demo_cn2_shapes():
    """The second example: only CN2 shapes (v3, a NAD network, custom pod networks, a route-target leak, static
    routes through a router pod, fabric forwarding reached from a host on the fabric as plain IP)."""
    path = os.path.join(os.path.dirname(D.EXAMPLE), "cn2-shapes.yaml")
    r = subprocess.run([sys.executable, "-m", "vrouter", "demo", "--json", "--intent", path], capture_output=True,
                       text=True, timeout=180)
    out = json.loads(r.stdout)
    bad = [c for c in out["cells"] if not c["match"]]
    assert r.returncode == 0 and out["ok"] and not bad, (r.stderr, bad)
    got = {(c["src"], c["dst"]): c for c in out["cells"]}
    reached = {k for k, c in got.items() if c["observed"]}
    assert {("cn2/frontend-1", "cn2/backend-1"), ("cn2/backend-1", "cn2/frontend-1")} <= reached   # one target
    assert {("cn2/edge-client", "cn2/lab-server"), ("cn2/lab-server", "cn2/edge-client")} <= reached  # via router
    assert {("fabric/host", "cn2/routable-1"), ("fabric/host", "cn2/routable-2")} <= reached          # plain IP
    assert ("fabric/host", "cn2/frontend-1") not in reached and ("cn2/edge-client", "cn2/frontend-1") not in reached
    # the host's traffic reached the pods without a tunnel: node-1 decapsulated nothing from the host, and the
    # pods of routable are not in any tunnel's VNI route (no encap needed between routable-1 and routable-2)
    assert got[("fabric/host", "cn2/routable-1")]["observed_what"] == "ok:cn2/routable-1"


def test_cn2_shapes_example_passes_check():
    path = os.path.join(os.path.dirname(D.EXAMPLE), "cn2-shapes.yaml")
    r = subprocess.run([sys.executable, "-m", "control.agent", "--intent", path, "--check"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1].startswith("ok:"), (r.stdout, r.stderr)
