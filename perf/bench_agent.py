"""Agent benchmark (no root, no vrouter): the compiler and the diff on a cluster-sized intent.

  The intent: --nodes nodes, --vns virtual networks (a /22 each) in groups of 5 joined by a mesh VNR, a
  hub VNR of 10 networks with the rest split into 5 spoke VNRs, --pods pods (each on one network, spread
  over the nodes) and a NetworkPolicy per group selecting a tenth of the pods.

  load_s              parse + validate the YAML
  compile_s           compile_cluster from scratch (IPAM, VNIs, routes, tunnels, policies for every node)
  recompile_s         compile_cluster with the previous allocations (the agent's every round)
  diff_same_ms        diff of one node's state with itself (what a quiet round costs per node)
  diff_pod_ms         one pod added: the diff on its node, and how many ops it is (diff_pod_ops)
  digest_ms           the audit's digests of one node's desired state (control/node/state.py), computed
                      once per state the node is given
  wire_ms             one node's state to its wire form and back (what a node agent is sent and checks)
  routes, nexthops    totals over the nodes
Medians of --runs runs.
"""
import argparse
import copy
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from control.agent import intent as I  # noqa: E402
from control.node import state as S  # noqa: E402
from control.node.push import diff  # noqa: E402
from control.agent.compiler import compile_cluster  # noqa: E402


def intent_text(nodes: int, vns: int, pods: int, extra_pod: bool = False) -> str:
    docs = []
    for n in range(nodes):
        docs.append(f"apiVersion: vrouter.io/v1\nkind: Node\nmetadata: {{name: node-{n}}}\n"
                    f"spec: {{fabricAddress: 192.0.{n // 250}.{n % 250 + 1}, control: \"ipc:///x{n}\", "
                    f"fabricMac: \"02:fa:00:00:{n // 256:02x}:{n % 256:02x}\"}}")
    for v in range(vns):
        role = "hub" if v < 10 else f"spoke-{v % 5}"
        docs.append(f"apiVersion: core.contrail.juniper.net/v1\nkind: Subnet\nmetadata: {{name: s{v}, namespace: b}}\n"
                    f"spec: {{cidr: 10.{v // 64}.{(v % 64) * 4}.0/22}}")
        docs.append(f"apiVersion: core.contrail.juniper.net/v1\nkind: VirtualNetwork\n"
                    f"metadata: {{name: vn{v}, namespace: b, labels: {{group: g{v // 5}, role: {role}}}}}\n"
                    f"spec: {{v4SubnetReference: {{name: s{v}}}}}")
    for g in range((vns + 4) // 5):
        docs.append(f"apiVersion: core.contrail.juniper.net/v1\nkind: VirtualNetworkRouter\n"
                    f"metadata: {{name: mesh-{g}, namespace: b}}\n"
                    f"spec: {{type: mesh, virtualNetworkSelector: {{matchLabels: {{group: g{g}}}}}}}")
        docs.append(f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{g}, namespace: b}}\n"
                    f"spec: {{podSelector: {{matchLabels: {{app: a{g}, tier: db}}}}, policyTypes: [Ingress], "
                    f"ingress: [{{from: [{{podSelector: {{matchLabels: {{app: a{g}}}}}}}], ports: [{{port: 5432}}]}}]}}")
    docs.append("apiVersion: core.contrail.juniper.net/v1\nkind: VirtualNetworkRouter\n"
                "metadata: {name: hub, namespace: b, labels: {vnr: hub}}\n"
                "spec: {type: hub, virtualNetworkSelector: {matchLabels: {role: hub}}, import: {virtualNetworkRouters: "
                "[{virtualNetworkRouterSelector: {matchLabels: {vnr: spoke}}}]}}")
    for k in range(5):
        docs.append(f"apiVersion: core.contrail.juniper.net/v1\nkind: VirtualNetworkRouter\n"
                    f"metadata: {{name: spoke-{k}, namespace: b, labels: {{vnr: spoke}}}}\n"
                    f"spec: {{type: spoke, virtualNetworkSelector: {{matchLabels: {{role: spoke-{k}}}}}, import: "
                    f"{{virtualNetworkRouters: [{{virtualNetworkRouterSelector: {{matchLabels: {{vnr: hub}}}}}}]}}}}")
    for p in range(pods + (1 if extra_pod else 0)):
        v = p % vns
        tier = "db" if p % 10 == 0 else "web"
        docs.append(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p{p}, namespace: b, labels: {{app: a{v // 5}, "
                    f"tier: {tier}}}, annotations: {{k8s.v1.cni.cncf.io/networks: vn{v}}}}}\n"
                    f"spec: {{nodeName: node-{p % nodes}}}")
    return "---\n" + "\n---\n".join(docs) + "\n"


def one_run(a) -> dict:
    out = {}
    text = intent_text(a.nodes, a.vns, a.pods)
    t0 = time.perf_counter()
    intent = I.load(("bench.yaml", text))
    out["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = compile_cluster(intent)
    out["compile_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    c2 = compile_cluster(intent, c.alloc)
    out["recompile_s"] = time.perf_counter() - t0
    assert c2.nodes == c.nodes
    st = c.nodes["node-0"]
    same = copy.deepcopy(st)
    t0 = time.perf_counter()
    assert diff(st, same) == []
    out["diff_same_ms"] = (time.perf_counter() - t0) * 1e3
    c3 = compile_cluster(I.load(("bench.yaml", intent_text(a.nodes, a.vns, a.pods, extra_pod=True))), c.alloc)
    node = f"node-{a.pods % a.nodes}"
    t0 = time.perf_counter()
    ops = diff(c.nodes[node], c3.nodes[node])
    out["diff_pod_ms"] = (time.perf_counter() - t0) * 1e3
    out["diff_pod_ops"] = len(ops)
    t0 = time.perf_counter()
    S.digests(st)
    out["digest_ms"] = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    assert S.from_wire(S.to_wire(st), control=st.control) == st
    out["wire_ms"] = (time.perf_counter() - t0) * 1e3
    out["routes"] = sum(len(t) for s in c.nodes.values() for t in s.routes.values())
    out["nexthops"] = sum(len(s.nhs) for s in c.nodes.values())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--vns", type=int, default=100)
    ap.add_argument("--pods", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    runs = [one_run(a) for _ in range(a.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    med.update(nodes=a.nodes, vns=a.vns, pods=a.pods, runs=a.runs)
    if a.json:
        print(json.dumps(med))
    else:
        print(f"agent: {a.nodes} nodes, {a.vns} VNs, {a.pods} pods (medians of {a.runs} runs)")
        for k, v in med.items():
            if k not in ("nodes", "vns", "pods", "runs"):
                print(f"  {k:14} {v:,.3f}" if isinstance(v, float) else f"  {k:14} {v:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
