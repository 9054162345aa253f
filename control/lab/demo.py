"""`vrouter demo`: a two-node cluster on this machine, driven by the agent, checked with real traffic.

    vrouter demo [--intent FILE] [--encap vxlan|mplsoudp] [--node-agents] [--keep] [--json]

1. Two nodes, node-1 (192.0.2.1) and node-2 (192.0.2.2): network namespaces on one fabric bridge, a
   `vrouter run` process in each (AF_XDP on the fabric, AF_PACKET if XDP is not available), with an
   empty control plane.
2. The intent (control/agent/examples/demo.yaml unless --intent: CN2 Subnets, VirtualNetworks,
   VirtualNetworkRouters, Kubernetes Pods and a NetworkPolicy) goes into an intent directory with the two
   nodes' Node documents in place of its own (which may name node-1 and node-2 only); every pod gets a
   network namespace; the agent compiles the intent and pushes it to both vrouters over their control
   channels (TAP devices moved into the pods, routes, tunnels, policies). With --node-agents the Nodes
   have no control endpoint: a node agent beside each vrouter (`python -m control.node`) long-polls its
   node's state from the cluster agent (listening on an ipc socket in the lab directory) and pushes it.
3. Every pod runs a responder answering TCP port 80 with its name. Every pod connects to every other
   pod's address on its last network (the one its annotation names); a cell is "reached" only when the
   answer comes from that very pod (overlapping subnets give the same address to pods of other networks).
4. The expected matrix comes from the intent alone (control.lab.expect); the observed one from the
   packets. Printed side by side with each node's flow and drop counters; exit status 1 when any cell
   differs, 2 when the cluster could not be built. Everything is removed at the end unless --keep
   (then `vrouter demo --cleanup TAG` removes it).

``DemoCluster`` is the same as a library for the end-to-end tests: ``write(name, text)`` / ``remove(name)``
change the intent at run time (pods get their namespaces first), ``wait_converged()``, ``matrix()``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass

import yaml

from control.agent import intent as I
from control.agent.agent import Agent
from control.agent.compiler import key_str
from control.lab.expect import Expectation, routers
from control.lab.lab import Lab, LabError

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "agent", "examples", "demo.yaml")
NODES = (("node-1", "192.0.2.1"), ("node-2", "192.0.2.2"))
HOST = ("fabric-host", "192.0.2.254")      # a plain host on the fabric: the nodes' underlay gateway
HOST_KEY = "fabric/host"
PORT = 80
NODES_FILE = "00-nodes.yaml"


class DemoError(Exception):
    pass


def node_documents(nodes, gateway_mac: str | None = None) -> str:
    """NODES_FILE's text: a Node document per (name, fabric address, fabric MAC or None, control or None:
    served to its node agent), each with ``gateway_mac`` as its fabricGatewayMac when given."""
    gw = f", fabricGatewayMac: \"{gateway_mac}\"" if gateway_mac else ""
    return "".join(f"---\napiVersion: vrouter.io/v1\nkind: Node\nmetadata: {{name: {name}}}\n"
                   f"spec: {{fabricAddress: {ip}" + (f", fabricMac: \"{mac}\"" if mac else "") + gw +
                   (f", control: \"{control}\"" if control else "") + "}\n" for name, ip, mac, control in nodes)


def fabric_forwarding(intent: I.Intent) -> bool:
    """Does the intent have a network that forwards on the underlay (the fabric host probes it)?"""
    return any(vn.fabric_forwarding for vn in intent.virtual_networks.values())


def without_nodes(name: str, text: str) -> str:
    """The intent text with its Node documents (vrouter.io/v1) blanked: the demo's own nodes stand in for
    them (NODES_FILE: the same names, the lab's fabric and control endpoints). The other documents keep
    their numbers, so the agent's errors still point into the file as written; a text without Nodes, or
    not YAML (the agent says what is wrong with it), is returned as it is. A Node the demo does not run is
    an error: its pods would have no vrouter."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return text
    blanked = False
    for i, d in enumerate(docs):
        if not (isinstance(d, dict) and d.get("apiVersion") == "vrouter.io/v1" and d.get("kind") == "Node"):
            continue
        node = d.get("metadata", {}).get("name") if isinstance(d.get("metadata"), dict) else None
        if node not in dict(NODES):
            raise DemoError(f"{name} doc {i + 1}: Node {node}: the demo runs {' and '.join(dict(NODES))} only")
        docs[i], blanked = None, True
    # safe_load / safe_dump round-trip every value the agent's loader (SafeLoader) reads
    return yaml.safe_dump_all(docs, sort_keys=False) if blanked else text


@dataclass
class Cell:
    src: str
    dst: str
    address: str
    expected: bool
    expected_why: str
    observed: bool
    observed_what: str          # the probe's answer: ok:<who answered> | timeout | refused | unreachable | ...

    @property
    def match(self) -> bool:
        return self.expected == self.observed


class DemoCluster:
    """The lab, the two vrouters and the agent (a thread watching the intent directory). ``node_agents``:
    the nodes are served to node agents instead of pushed directly; ``audit_interval``: the agents'
    (None: their default)."""

    def __init__(self, *, encap: str = "vxlan", keep: bool = False, io: str = "auto", node_agents: bool = False,
                 audit_interval: float | None = None):
        self.encap, self.keep, self.io = encap, keep, io
        self.node_agents, self.audit_interval = node_agents, audit_interval
        self.lab: Lab | None = None
        self.agent: Agent | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.intent_dir = ""
        self._owner = os.getpid()
        self.host: tuple[str, str] | None = None      # (netns, MAC) of the fabric host
        self._host_routes: set[str] = set()
        self._forwarding: set[str] = set()

    # -- building -----------------------------------------------------------------------------------
    def start(self, files: dict[str, str]) -> None:
        """Nodes up, then the intent ``files`` (name -> YAML text) applied and converged."""
        for name in files:
            self._check_name(name)
        files = {name: without_nodes(name, text) for name, text in files.items()}
        self.lab = Lab(keep=self.keep)
        self.intent_dir = os.path.join(self.lab.dir, "intent")
        os.mkdir(self.intent_dir)
        nodes = [self.lab.add_node(n, ip) for n, ip in NODES]
        self.host = self.lab.add_host(*HOST)
        for n in nodes:
            self.lab.start_node(n, io=self.io)
        self._write_nodes()
        self._sync_pods({**self._files(), **files}, before=True)
        for name, text in files.items():
            self._write(name, text)
        self.start_agent()
        if self.node_agents:
            for n in nodes:
                self.lab.start_node_agent(n, audit_interval=self.audit_interval)
        self.wait_converged()
        self._sync_pods(self._files(), before=False)

    def _write_nodes(self) -> None:
        self._write(NODES_FILE, node_documents(((n.name, n.fabric_ip, n.fabric_mac,
                                                 None if self.node_agents else n.control)
                                                for n in self.lab.nodes.values()),
                                               self.host[1] if self.host else None))

    def start_agent(self) -> Agent:
        """A (new) cluster agent on the intent directory and the lab's state file, in a thread."""
        kw = {} if self.audit_interval is None else {"audit_interval": self.audit_interval}
        self.agent = Agent([self.intent_dir], os.path.join(self.lab.dir, "agent-state.json"), encap=self.encap,
                           netns_format=self.lab.netns_format, timeout=5.0,
                           listen=self.lab.cluster_endpoint if self.node_agents else None, **kw)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.agent.run, args=(self._stop, 0.1), name="agent", daemon=True)
        self._thread.start()
        return self.agent

    def stop_agent(self) -> None:
        """Stop the cluster agent (the vrouters and node agents go on)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.agent is not None:
            self.agent.close()

    def use_node_agents(self, timeout: float = 30.0) -> None:
        """Hand the nodes over from the cluster agent to node agents, in place: a new cluster agent that
        listens, the Nodes without their control endpoints, a node agent beside each vrouter."""
        self.stop_agent()
        self.node_agents = True
        self._write_nodes()
        self.start_agent()
        for n in self.lab.nodes.values():
            self.lab.start_node_agent(n, audit_interval=self.audit_interval)
        self.wait_converged(timeout)

    @staticmethod
    def _check_name(name: str) -> None:
        if name == NODES_FILE or "/" in name or not name.endswith((".yaml", ".yml")):
            raise DemoError(f"intent file name {name!r}: a plain *.yaml name other than {NODES_FILE}")

    def _files(self) -> dict[str, str]:
        out = {}
        for f in sorted(os.listdir(self.intent_dir)):
            if f.endswith((".yaml", ".yml")):
                with open(os.path.join(self.intent_dir, f)) as fh:
                    out[f] = fh.read()
        return out

    def _write(self, name: str, text: str) -> None:
        tmp = os.path.join(self.intent_dir, f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(self.intent_dir, name))

    def _sync_pods(self, files: dict[str, str], before: bool) -> None:
        """before: give every pod of ``files`` its namespace and responder (the agent moves its devices
        into the namespace, which must exist first); after: delete the namespaces of pods gone."""
        try:
            intent = I.load(list(files.items()))
        except I.IntentError:
            return                      # the agent refuses it too, and says why (wait_converged)
        want = {f"{p.namespace}/{p.name}" for p in intent.pods.values()}
        if before:
            for p in intent.pods.values():
                key = f"{p.namespace}/{p.name}"
                if key not in self.lab.pods:
                    ns = self.lab.add_pod(p.namespace, p.name)
                    self.lab.start_responder(ns, key, PORT)
        else:
            for key in [k for k in self.lab.pods if k not in want]:
                self.lab.remove_pod(*key.split("/", 1))

    # -- changing -----------------------------------------------------------------------------------
    def write(self, name: str, text: str, timeout: float = 20.0, wait: bool = True) -> None:
        """Add or replace an intent file (its pods get their namespaces first) and, with ``wait``, wait
        until both nodes have it and delete the namespaces of pods gone. Node documents: see without_nodes."""
        self._check_name(name)
        text = without_nodes(name, text)
        files = {**self._files(), name: text}
        self._sync_pods(files, before=True)
        self._write(name, text)
        if wait:
            self.wait_converged(timeout)
            self._sync_pods(files, before=False)

    def remove(self, name: str, timeout: float = 20.0) -> None:
        self._check_name(name)
        os.unlink(os.path.join(self.intent_dir, name))
        self.wait_converged(timeout)
        self._sync_pods(self._files(), before=False)

    def wait_converged(self, timeout: float = 30.0) -> None:
        """Until the agent has compiled the current files and every node holds the result."""
        deadline = time.monotonic() + timeout
        a = self.agent
        while time.monotonic() < deadline:
            stamp = a._stamp_now()
            if a.intent_error and a._stamp == stamp:
                raise DemoError(f"the agent refused the intent: {a.intent_error}")
            if a._stamp == stamp and a.converged():
                return
            if self._thread is not None and not self._thread.is_alive():
                raise DemoError("the agent thread died")
            time.sleep(0.05)
        errors = "; ".join(f"{n.name}: {n.last_error}" for n in a.nodes.values() if n.last_error)
        if a.service is not None:
            errors += "; ".join(f"{n}: node agent connected {c}, vrouter at generation {ap}, serving {g}"
                                for n in sorted(a.cluster.nodes) for c, ap, g in [a.service.status(n)])
        raise DemoError(f"the nodes did not converge in {timeout} s ({errors or 'no error reported'})")

    # -- checking -----------------------------------------------------------------------------------
    def pods(self) -> list[I.Pod]:
        return [self.agent.intent.pods[k] for k in sorted(self.agent.intent.pods)]

    def targets(self, pod: I.Pod) -> dict[int, str]:
        """The addresses probed for ``pod``, by family: those of its last interface (the network its
        annotation names), or of its first when it has only that one."""
        itf = self.agent.cluster.interfaces_of(pod.key)[-1]
        return {a.version: str(a) for a in itf.addresses}

    def _prepare(self) -> None:
        """Router pods (next hops of static routes) forward; the fabric host routes every pod address it
        probes through the pod's node (what BGP will announce; stands in for it here)."""
        for key in sorted(routers(self.agent.intent, self.agent.cluster)):
            ns = self.lab.pods.get(key_str(key))
            if ns is not None and ns not in self._forwarding:
                self.lab.enable_forwarding(ns)
                self._forwarding.add(ns)
        if self.host is None or not fabric_forwarding(self.agent.intent):
            return
        seen: dict[str, int] = {}
        for p in self.pods():
            for fam, addr in self.targets(p).items():
                if fam == 4:
                    seen[addr] = seen.get(addr, 0) + 1
        for p in self.pods():
            addr = self.targets(p).get(4)
            if addr is None or seen[addr] > 1 or addr in self._host_routes:
                continue            # an overlapping address: the host cannot tell the pods apart
            self.lab.route(self.host[0], f"{addr}/32", self.lab.nodes[p.node].fabric_ip)
            self._host_routes.add(addr)

    def matrix(self, timeout: float = 1.5) -> list[Cell]:
        """Every pod to every other pod's address of each family, in one go (a prober per pod); with a
        fabric-forwarding network, the fabric host to every pod's IPv4 address too."""
        self._prepare()
        pods = self.pods()
        exp = Expectation(self.agent.intent, self.agent.cluster)
        plan = [[(q, addr) for q in pods if q.key != p.key for _, addr in sorted(self.targets(q).items())]
                for p in pods]
        probes = [(self.lab.pods[key_str(p.key)], [(addr, PORT) for _, addr in todo]) for p, todo in zip(pods, plan)]
        host_plan = []
        if self.host is not None and fabric_forwarding(self.agent.intent):
            host_plan = [(q, self.targets(q)[4]) for q in pods if self.targets(q).get(4) in self._host_routes]
            probes.append((self.host[0], [(addr, PORT) for _, addr in host_plan]))
        results = self.lab.probe_many(probes, timeout)
        cells = []
        for p, todo, res in zip(pods, plan, results):
            for (q, addr), got in zip(todo, res):
                who, why = exp.connect(p.key, addr, "tcp", PORT)
                cells.append(Cell(key_str(p.key), key_str(q.key), addr, who == q.key,
                                  why if who in (None, q.key) else f"answered by {key_str(who)}: {why}",
                                  got == f"ok:{key_str(q.key)}", got))
        if host_plan:
            for (q, addr), got in zip(host_plan, results[-1]):
                who, why = exp.from_fabric(HOST[1], addr, "tcp", PORT)
                cells.append(Cell(HOST_KEY, key_str(q.key), addr, who == q.key, why, got == f"ok:{key_str(q.key)}",
                                  got))
        return cells

    def counters(self) -> dict[str, dict]:
        out = {}
        for n in self.lab.nodes.values():
            s = self.lab.node_stats(n)
            dp = s["datapath"]
            out[n.name] = {"flows": s["flows"]["entries"], "flow_installs": dp["flow_installs"],
                           "flow_hits": dp["flow_hits"], "forwarded": dp["forwarded"],
                           "encap": dp["encap_vxlan"] + dp["encap_mpls"], "decap": dp["decap_vxlan"] + dp["decap_mpls"],
                           "drops": {k: v for k, v in dp["drops"].items() if v and k != "none"}}
        return out

    def close(self) -> None:
        if os.getpid() != self._owner:
            return      # a child pyroute2 forked, interrupted and unwinding our stack (control/lab/netns.py)
        self.stop_agent()
        if self.lab is not None:
            self.lab.close()


# ---------------------------------------------------------------------------------------------- output

def short(pod: str) -> str:
    return pod.split("/", 1)[1] if pod.startswith("demo/") else pod


def render(cells: list[Cell], pods: list[str], counters: dict, encap: str, seconds: float,
           nets: dict[str, str] | None = None, node_agents: bool = False) -> str:
    """The matrices as text (one per address family); ``nets``: pod -> the network its probed address is
    on (row labels)."""
    if any(c.src == HOST_KEY for c in cells):
        pods = pods + [HOST_KEY]
        nets = {**nets, HOST_KEY: "underlay, plain IP"} if nets else nets
    label = {p: f"{short(p)} ({short(nets[p])})" if nets else short(p) for p in pods}
    w = max(len(x) for x in label.values()) + 1
    cw = max(max(len(short(p)) for p in pods), 5) + 1
    lines = [f"Reachability: TCP port {PORT} from each pod (row) to each pod's network address (column), "
             f"{encap} between the nodes" + (", each node programmed by its node agent." if node_agents else "."),
             "Each cell is expected/observed: Y reached, n not reached; a mismatch is marked with !"]
    for fam in (4, 6):
        by = {(c.src, c.dst): c for c in cells if (":" in c.address) == (fam == 6)}
        cols = [q for q in pods if any(d == q for _, d in by)]
        if not cols:
            continue
        lines += ["", f"IPv{fam}", " " * w + "".join(short(q).rjust(cw) for q in cols)]
        for p in pods:
            row = label[p].ljust(w)
            for q in cols:
                c = by.get((p, q))
                row += ("-" if c is None else f"{'Y' if c.expected else 'n'}/{'Y' if c.observed else 'n'}"
                        + ("" if c.match else "!")).rjust(cw)
            lines.append(row)
    lines.append("")
    lines.append("Why not reached (expected), by kind:")
    kinds: dict[str, list[str]] = {}
    for c in cells:
        if not c.expected:
            why = c.expected_why
            kind = ("policy" if why.startswith("NetworkPolicy") else "overlap" if why.startswith("answered by")
                    else "fabric" if c.src == HOST_KEY else "isolation")
            kinds.setdefault(kind, []).append(f"{short(c.src)}->{short(c.dst)}" + (" (v6)" if ":" in c.address else ""))
    labels = {"isolation": "no route between the networks", "overlap": "the address leads to another pod "
              "(overlapping subnets: it answers, not the one asked for)", "policy": "denied by NetworkPolicy",
              "fabric": "not routed on the underlay (the pod's network does not forward on the fabric)"}
    for k in ("isolation", "overlap", "policy", "fabric"):
        if k in kinds:
            lines.append(f"  {labels[k]}: {len(kinds[k])}: {', '.join(kinds[k][:12])}"
                         + (" ..." if len(kinds[k]) > 12 else ""))
    lines.append("")
    lines.append("Per node:")
    for n, c in counters.items():
        drops = ", ".join(f"{k} {v}" for k, v in sorted(c["drops"].items(), key=lambda x: -x[1])) or "none"
        lines.append(f"  {n}: flows {c['flows']} (installed {c['flow_installs']}, hits {c['flow_hits']}), "
                     f"forwarded {c['forwarded']}, encap {c['encap']}, decap {c['decap']}; drops: {drops}")
    bad = [c for c in cells if not c.match]
    lines.append("")
    if bad:
        lines.append(f"MISMATCH in {len(bad)} of {len(cells)} cells:")
        for c in bad:
            lines.append(f"  {c.src} -> {c.dst} ({c.address}): expected {'reached' if c.expected else 'not'} "
                         f"({c.expected_why}), observed {c.observed_what}")
    else:
        lines.append(f"OK: all {len(cells)} cells as expected ({seconds:.1f} s).")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="vrouter demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--intent", help=f"intent file (default: {EXAMPLE}); pods go on node-1 / node-2")
    ap.add_argument("--encap", choices=("vxlan", "mplsoudp"), default="vxlan")
    ap.add_argument("--io", choices=("auto", "xdp", "afpacket"), default="auto", help="the fabric's I/O")
    ap.add_argument("--node-agents", action="store_true",
                    help="a node agent beside each vrouter programs it (the cluster agent serves their states)")
    ap.add_argument("--keep", action="store_true", help="leave the cluster running (prints its tag)")
    ap.add_argument("--json", action="store_true", help="print the matrix and counters as JSON")
    ap.add_argument("--cleanup", metavar="TAG", help="remove what an earlier --keep left, then exit")
    a = ap.parse_args(argv)
    if a.cleanup:
        try:
            Lab.cleanup(a.cleanup)
        except LabError as e:
            print(f"vrouter demo: {e}", file=sys.stderr)
            return 2
        return 0
    if os.geteuid() != 0:
        print("vrouter demo: needs root (network namespaces, TAP devices, AF_XDP)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    path = a.intent or EXAMPLE
    try:
        with open(path) as f:
            text = f.read()
        intent = I.load([(path, without_nodes(path, text)),
                         (NODES_FILE, node_documents((n, ip, None, "ipc:///nonexistent") for n, ip in NODES))])
    except (OSError, I.IntentError, DemoError) as e:
        print(f"vrouter demo: {e}", file=sys.stderr)
        return 2
    io = a.io
    if fabric_forwarding(intent) and io == "auto":
        # the XDP program steers only tunnels to the vrouter: plain IP for fabric-forwarding pods would go
        # to the node's kernel, so the fabric is read with AF_PACKET here
        print("vrouter demo: fabric forwarding: the nodes read the fabric with AF_PACKET", file=sys.stderr)
        io = "afpacket"
    t0 = time.monotonic()
    demo = DemoCluster(encap=a.encap, keep=a.keep, io=io, node_agents=a.node_agents)
    try:
        demo.start({"demo.yaml": text})
        cells = demo.matrix()
        counters = demo.counters()
        pods = [key_str(p.key) for p in demo.pods()]
        seconds = time.monotonic() - t0
        ok = all(c.match for c in cells)
        if a.json:
            print(json.dumps({"ok": ok, "tag": demo.lab.tag, "encap": a.encap, "node_agents": a.node_agents,
                              "seconds": round(seconds, 2), "pods": pods,
                              "cells": [asdict(c) | {"match": c.match} for c in cells], "nodes": counters,
                              "agent": {n.name: n.history for n in demo.agent.nodes.values()},
                              "warnings": demo.agent.cluster.warnings}, indent=1))
        else:
            vns = demo.agent.intent.virtual_networks
            nets = {key_str(p.key): vns[demo.agent.cluster.interfaces_of(p.key)[-1].vn].display_name or
                    key_str(demo.agent.cluster.interfaces_of(p.key)[-1].vn) for p in demo.pods()}
            print(render(cells, pods, counters, a.encap, seconds, nets, a.node_agents))
        if a.keep:
            d = demo.lab.describe()
            print(f"\nkept: lab {d['tag']} (namespaces {d['tag']}-*, files {d['dir']}); "
                  f"remove with: vrouter demo --cleanup {d['tag']}", file=sys.stderr)
        return 0 if ok else 1
    except (LabError, DemoError, I.IntentError) as e:
        print(f"vrouter demo: {e}", file=sys.stderr)
        return 2
    finally:
        demo.close()


if __name__ == "__main__":
    sys.exit(main())
