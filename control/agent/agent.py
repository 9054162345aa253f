"""The agent: intent files -> compiled desired state -> every node's vrouter, over the control channel.

    python -m control.agent --intent DIR_OR_FILE ... --state /var/lib/vrouter-agent/state.json

A round: read the intent (a file or every ``*.yaml``/``*.yml`` of a directory, sorted), validate and
compile it (control.agent.compiler), save the allocations, then bring every node to its desired state:

* a node seen for the first time, or whose vrouter restarted (``hello`` answers another instance id), or
  whose last push failed, gets a **snapshot**: ``snapshot_begin(g)``, everything, ``snapshot_end(g)``;
  the vrouter sweeps what the snapshot did not re-push (objects left by an earlier agent included);
* otherwise it gets the **diff** between what the agent last pushed and what it wants now, in an order
  that never leaves a dangling reference: additions and updates first (VRFs, vifs, next hops, labels,
  VNIs, routes, policies), then removals in reverse (policies, routes, VNIs, labels, next hops, vifs,
  VRFs). A pod interface keeps its vif id for life: when its network or address changes, vif_update
  names the new device and the vrouter replaces the old one.

Rounds run when an intent file changes and, for each node, when its ``hello`` (every ``heartbeat``
seconds) shows a restart. Bad intent keeps the last good one in force and logs the error naming the file,
document and field. Nodes are pushed in parallel: one that does not answer (``hello`` times out after
HELLO_TIMEOUT s) holds up no other, and is retried with a backoff (up to BACKOFF_MAX s).

Exit codes. ``--check`` (the same loading as a round, so it refuses exactly what the agent would): 0 the
intent is valid (documents the agent does not read are listed, ``ignored: ...``); 2 it is refused, like
``vrouter run --check``: the error names the file, document and field, or says it is not intent at all
(intent.IntentFormatError: no YAML document or no file, a file unreadable or not YAML, a document that is
not an object, a kind or apiVersion that is a typo of one the agent reads, e.g. ``kind: Subnett``). The
agent itself (and ``--once``) exits 2 for the latter at startup; once running, any refused intent, an
emptied directory included, leaves the last good one in force. ``--once`` exits 1 when a node is not in
sync after its round.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import pathlib
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from control import client as C
from control.version import __version__
from control.agent import intent as I
from control.agent.compiler import Allocations, Cluster, NodeState, compile_cluster

log = logging.getLogger("vrouter.agent")

HELLO_TIMEOUT = 1.0         # a node that does not answer hello in this long (twice) is down
BACKOFF_MAX = 5.0


# ---------------------------------------------------------------------------------------------- diff

def _route_ops(vrf: int, fam: int, prefixes: dict[str, int], delete: bool) -> list[tuple[str, dict]]:
    if not prefixes:
        return []
    items = sorted(prefixes.items())
    return [("route_del" if delete else "route_add",
             {"vrf": vrf, "family": fam, "prefixes": [p for p, _ in items],
              **({} if delete else {"nhs": [n for _, n in items]})})]


def diff(old: NodeState | None, new: NodeState) -> list[tuple[str, dict]]:
    """The control ops that turn a node holding ``old`` (None: nothing) into one holding ``new``.
    Route ops carry ``prefixes`` (and ``nhs``) lists: the caller packs them (Client.add_routes)."""
    old = old if old is not None else NodeState(new.name, new.control)
    ops: list[tuple[str, dict]] = []
    for vrf, b in sorted(new.vrfs.items()):
        if old.vrfs.get(vrf) != b:
            ops.append(("vrf_add", b))
    for vid, b in sorted(new.vifs.items()):
        if vid not in old.vifs:
            ops.append(("vif_add", b))
        elif old.vifs[vid] != b:
            ops.append(("vif_update", b))
    for i, b in sorted(new.nhs.items(), key=lambda x: (x[1]["type"] == "ecmp", x[0])):   # groups after members
        if i not in old.nhs:
            ops.append(("nh_add", b))
        elif old.nhs[i] != b:
            ops.append(("nh_update", b))
    for table, op in (("labels", "label_add"), ("vnis", "vni_add")):
        for k, b in sorted(getattr(new, table).items()):
            if getattr(old, table).get(k) != b:
                ops.append((op, b))
    for (vrf, fam), table in sorted(new.routes.items()):
        have = old.routes.get((vrf, fam), {})
        ops += _route_ops(vrf, fam, {p: n for p, n in table.items() if have.get(p) != n}, False)
    for vid, b in sorted(new.policies.items()):
        if old.policies.get(vid) != b:
            ops.append(("policy_set", b))
    # removals, dependents first
    for vid in sorted(set(old.policies) - set(new.policies)):
        ops.append(("policy_del", {"kind": "vif", "id": vid}))
    for (vrf, fam), table in sorted(old.routes.items()):
        want = new.routes.get((vrf, fam), {})
        ops += _route_ops(vrf, fam, {p: n for p, n in table.items() if p not in want}, True)
    for lab in sorted(set(old.vnis) - set(new.vnis)):
        ops.append(("vni_del", {"vni": lab}))
    for lab in sorted(set(old.labels) - set(new.labels)):
        ops.append(("label_del", {"label": lab}))
    for i in sorted(set(old.nhs) - set(new.nhs), key=lambda i: (old.nhs[i]["type"] != "ecmp", i)):
        ops.append(("nh_del", {"id": i}))
    for vid in sorted(set(old.vifs) - set(new.vifs)):
        ops.append(("vif_del", {"id": vid}))
    for vrf in sorted(set(old.vrfs) - set(new.vrfs)):
        ops.append(("vrf_del", {"vrf": vrf}))
    return ops


def apply_ops(c: C.Client, ops: list[tuple[str, dict]]) -> dict[str, int]:
    """Send ``ops`` in order; returns how many of each op were sent (routes: how many routes)."""
    done: dict[str, int] = {}
    for op, b in ops:
        if op == "route_add":
            c.add_routes(b["vrf"], b["prefixes"], b["nhs"])
            n = len(b["prefixes"])
        elif op == "route_del":
            c.del_routes(b["vrf"], b["prefixes"])
            n = len(b["prefixes"])
        else:
            c.call(op, b)
            n = 1
        done[op] = done.get(op, 0) + n
    return done


# ---------------------------------------------------------------------------------------------- nodes

@dataclass
class NodeSync:
    """What the agent knows of one node."""
    name: str
    endpoint: str
    client: C.Client
    instance: str | None = None         # the vrouter process last seen
    pushed: NodeState | None = None     # what it holds from us (None: unknown -> snapshot)
    generation: int = 0
    last_error: str | None = None
    last_hello: float = 0.0
    failures: int = 0                   # pushes failed in a row
    retry_at: float = 0.0               # after a failure: not before (backoff up to BACKOFF_MAX s)
    history: list[dict] = field(default_factory=list)   # one entry per push: kind, ops, seconds


class Agent:
    """Compile and push. ``sources``: intent files or directories. ``state_path``: the allocations (JSON;
    None keeps them in memory only). ``curve``: a client's CurveZMQ keys (control.client.load_curve) for
    tcp:// endpoints."""

    def __init__(self, sources, state_path: str | None = None, *, encap: str = "vxlan",
                 netns_format: str | None = "{namespace}-{name}", name: str = "vrouter-agent",
                 timeout: float = 3.0, heartbeat: float = 1.0, curve: dict | None = None):
        self.sources = [pathlib.Path(s) for s in ([sources] if isinstance(sources, (str, os.PathLike))
                                                  else sources)]
        self.state_path = state_path
        self.encap, self.netns_format, self.name = encap, netns_format, name
        self.timeout, self.heartbeat, self.curve = timeout, heartbeat, curve
        self.session = f"{name}-{uuid.uuid4().hex[:8]}"
        self.alloc = self._load_alloc()
        self.intent: I.Intent | None = None
        self.cluster: Cluster | None = None
        self.intent_error: str | None = None
        self.nodes: dict[str, NodeSync] = {}
        self._stamp: tuple | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.rounds = 0

    # -- intent ------------------------------------------------------------
    def files(self) -> list[pathlib.Path]:
        out = []
        for s in self.sources:
            if s.is_dir():
                out += sorted(p for p in s.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            else:
                out.append(s)
        return out

    def load_intent(self) -> I.Intent:
        """The intent files, loaded and validated (intent.load); what both a round and ``--check`` read.
        No *.yaml / *.yml file at all is refused like files without a document (IntentFormatError)."""
        files = self.files()
        if not files:
            raise I.IntentFormatError("no intent: no *.yaml or *.yml file in "
                                      + ", ".join(str(s) for s in self.sources))
        return I.load(files)

    def _stamp_now(self) -> tuple:
        st = []
        for p in self.files():
            try:
                m = p.stat()
                st.append((str(p), m.st_mtime_ns, m.st_size))
            except OSError:
                st.append((str(p), None, None))
        return tuple(st)

    def _load_alloc(self) -> Allocations:
        if not self.state_path or not os.path.exists(self.state_path):
            return Allocations()
        try:
            with open(self.state_path) as f:
                return Allocations.from_json(json.load(f))
        except (OSError, ValueError) as e:
            raise SystemExit(f"agent state {self.state_path}: {e}") from None

    def _save_alloc(self) -> None:
        if not self.state_path:
            return
        tmp = f"{self.state_path}.tmp"
        os.makedirs(os.path.dirname(os.path.abspath(self.state_path)), exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(self.alloc.to_json(), f, indent=1)
        os.replace(tmp, self.state_path)

    def compile(self) -> bool:
        """Read and compile the intent; on an error keep the previous cluster and return False."""
        stamp = self._stamp_now()
        try:
            intent = self.load_intent()
            cluster = compile_cluster(intent, self.alloc, encap=self.encap, netns_format=self.netns_format)
        except I.IntentError as e:
            if str(e) != self.intent_error:
                log.error("intent refused, the previous one stays in force: %s", e)
            self.intent_error, self._stamp = str(e), stamp
            return False
        for name in list(self.nodes):
            if name not in cluster.nodes or cluster.nodes[name].control != self.nodes[name].endpoint:
                self.nodes.pop(name).client.close()
        for name, st in cluster.nodes.items():
            if name not in self.nodes:
                self.nodes[name] = NodeSync(name, st.control, C.Client(st.control, session=self.session,
                                                                          timeout=self.timeout, retries=1,
                                                                          curve=self.curve))
        self.alloc = cluster.alloc
        self._save_alloc()
        for w in cluster.warnings:
            log.warning("%s", w)
        for ig in intent.ignored:
            log.info("%s", ig)
        # last: another thread takes "stamp current and converged()" to mean this intent is in place
        self.intent, self.cluster = intent, cluster
        self.intent_error, self._stamp = None, stamp
        return True

    # -- pushing -----------------------------------------------------------
    def _hello(self, ns: NodeSync) -> None:
        info = ns.client.call("hello", {"agent": self.name, "session": self.session,
                                        "generation": ns.client.generation},
                              timeout=min(self.timeout, HELLO_TIMEOUT))
        ns.last_hello = time.monotonic()
        if info["instance"] != ns.instance:
            if ns.instance is not None:
                log.warning("node %s: vrouter restarted (instance %s -> %s): resync", ns.name, ns.instance,
                            info["instance"])
            ns.instance, ns.pushed = info["instance"], None
        ns.generation = max(ns.generation, int(info.get("generation") or 0))

    def sync_node(self, ns: NodeSync) -> bool:
        """Bring one node to its desired state; False (and ``last_error``) when it failed."""
        want = self.cluster.nodes[ns.name]
        t0 = time.monotonic()
        try:
            self._hello(ns)
            if ns.pushed is None:
                g = ns.generation + 1
                ns.client.generation = g
                ns.client.hello(self.name)
                ns.client.call("snapshot_begin", {"generation": g})
                done = apply_ops(ns.client, diff(None, want))
                swept = ns.client.call("snapshot_end", {"generation": g}).get("swept", {})
                ns.generation, kind = g, "snapshot"
            else:
                done, swept, kind = apply_ops(ns.client, diff(ns.pushed, want)), {}, "diff"
        except C.ControlError as e:
            msg = f"{type(e).__name__}: {e}"
            if msg != ns.last_error:
                log.error("node %s: push failed (%s); it gets a snapshot next round", ns.name, msg)
            ns.last_error, ns.pushed = msg, None
            ns.failures += 1
            ns.retry_at = time.monotonic() + min(0.25 * 2 ** ns.failures, BACKOFF_MAX)
            if isinstance(e, C.Timeout):
                ns.instance = None
            return False
        ns.pushed, ns.last_error, ns.failures = copy.deepcopy(want), None, 0
        if done or swept or kind == "snapshot":
            entry = {"kind": kind, "ops": done, "swept": swept, "seconds": round(time.monotonic() - t0, 3)}
            ns.history.append(entry)
            log.info("node %s: %s pushed %s%s", ns.name, kind, done or "nothing",
                     f", swept {swept}" if swept else "")
        return True

    def round(self, force: bool = False) -> bool:
        """One pass: recompile if the intent changed (or ``force``), then sync every node that needs it.
        True when every node is in its desired state."""
        self.rounds += 1
        if force or self.cluster is None or self._stamp_now() != self._stamp:
            if not self.compile() and self.cluster is None:
                return False
            changed = True
        else:
            changed = False
        now = time.monotonic()
        due, waiting = [], False
        for ns in self.nodes.values():
            if changed or ns.pushed is None or ns.pushed != self.cluster.nodes[ns.name] or \
                    now - ns.last_hello >= self.heartbeat:
                if now < ns.retry_at:
                    waiting = True        # failing: its backoff has not run out
                else:
                    due.append(ns)
        if len(due) > 1:                  # in parallel: a node that does not answer holds up no other
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="agent-push")
            results = list(self._pool.map(self.sync_node, due))
        else:
            results = [self.sync_node(ns) for ns in due]
        return all(results) and not waiting

    def run(self, stop: threading.Event, interval: float = 0.25) -> None:
        while not stop.is_set():
            try:
                self.round()
            except Exception:  # noqa: BLE001 - a bug must not stop the agent silently
                log.exception("agent round failed")
            stop.wait(interval)

    def converged(self) -> bool:
        """Every node of the compiled cluster holds what the agent wants it to."""
        cl = self.cluster
        return cl is not None and all(
            name in self.nodes and self.nodes[name].pushed == want for name, want in cl.nodes.items())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for ns in self.nodes.values():
            ns.client.close()
        self.nodes.clear()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="vrouter-agent", description=__doc__.split("\n\n")[0],
                                 epilog="exit codes: 0 ok; 2 intent refused (--check), or not intent at all "
                                        "(no document, unreadable, bad YAML, a typo'd kind or apiVersion); "
                                        "1 --once: a node not in sync")
    ap.add_argument("--version", action="version", version=f"vrouter-agent {__version__}")
    ap.add_argument("--intent", action="append", required=True, help="an intent file or directory (repeatable)")
    ap.add_argument("--state", help="allocation state file (JSON), kept across restarts")
    ap.add_argument("--encap", choices=("vxlan", "mplsoudp"), default="vxlan")
    ap.add_argument("--netns-format", default="{namespace}-{name}",
                    help="a pod's network namespace name, from {namespace} and {name}")
    ap.add_argument("--keys", help="CurveZMQ client keys directory (tcp:// endpoints)")
    ap.add_argument("--once", action="store_true", help="one round, then exit (0: every node in sync)")
    ap.add_argument("--check", action="store_true", help="validate and compile the intent, print a summary")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(levelname)s %(message)s", stream=sys.stderr)
    curve = C.load_curve(a.keys) if a.keys else None
    agent = Agent(a.intent, a.state, encap=a.encap, netns_format=a.netns_format, curve=curve)
    if a.check:
        try:
            intent = agent.load_intent()
            cl = compile_cluster(intent, agent.alloc, encap=a.encap, netns_format=a.netns_format)
        except I.IntentError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for ig in intent.ignored:
            print(f"ignored: {ig}")
        for n, st in cl.nodes.items():
            print(f"{n}: {len(st.vrfs)} VRFs, {len(st.vifs)} vifs, {len(st.nhs)} next hops, "
                  f"{sum(len(t) for t in st.routes.values())} routes, {len(st.policies)} policies")
        for w in cl.warnings:
            print(f"warning: {w}")
        print(f"ok: {len(cl.nodes)} nodes, {len(intent.virtual_networks)} virtual networks, {len(intent.pods)} pods")
        return 0
    try:
        agent.load_intent()
    except I.IntentFormatError as e:      # not intent at all (none, unreadable, a typo'd kind): stop now
        print(f"error: {e}", file=sys.stderr)
        return 2
    except I.IntentError:
        pass                              # refused: the rounds log why and wait for a fix
    if a.once:
        ok = agent.round(force=True)
        agent.close()
        return 0 if ok else 1
    stop = threading.Event()
    import signal
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        agent.run(stop)
    finally:
        agent.close()
    return 0
