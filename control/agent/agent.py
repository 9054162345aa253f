"""The cluster agent: intent files -> compiled desired state -> every node, directly or through its node agent.

    vrouter-agent --intent DIR_OR_FILE ... --state /var/lib/vrouter-agent/state.json [--listen ENDPOINT]
    vrouter-agent node --node NAME --cluster ENDPOINT ...     (the node agent: control/node/agent.py)

A round: read the intent (a file or every ``*.yaml``/``*.yml`` of a directory, sorted), validate and
compile it (control.agent.compiler), save the allocations, then bring every node to its desired state:

* a Node with ``spec.control`` is **pushed directly** by this process over that control channel, with
  control.node.push.NodePusher: a snapshot to a node seen first, restarted or failed, ordered diffs
  otherwise, the periodic audit (``--audit-interval``, default 10 s) that repairs what changed behind
  the agent's back;
* a Node without it is **served to its node agent** over the cluster<->node channel (``--listen``,
  control/node/channel.py): the node agent long-polls its state and pushes it with the same NodePusher.
  Without ``--listen``, or while no node agent is connected, such a node is reported (a warning), not an
  error: its state waits.

Rounds run when an intent file changes and, for each directly pushed node, when its ``hello`` (every
``heartbeat`` seconds) shows a restart. Bad intent keeps the last good one in force and logs the error
naming the file, document and field. Nodes are pushed in parallel: one that does not answer (``hello``
times out after HELLO_TIMEOUT s) holds up no other, and is retried with a backoff (up to BACKOFF_MAX s).

Exit codes. ``--check`` (the same loading as a round, so it refuses exactly what the agent would): 0 the
intent is valid (documents the agent does not read are listed, ``ignored: ...``); 2 it is refused, like
``vrouter run --check``: the error names the file, document and field, or says it is not intent at all
(intent.IntentFormatError: no YAML document or no file, a file unreadable or not YAML, a document that is
not an object, a kind or apiVersion that is a typo of one the agent reads, e.g. ``kind: Subnett``). The
agent itself (and ``--once``) exits 2 for the latter at startup; once running, any refused intent, an
emptied directory included, leaves the last good one in force. ``--once`` exits 1 when a directly pushed
node is not in sync after its round (nodes served to node agents are not waited for).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import zmq

from control import client as C
from control import keys as K
from control.version import __version__
from control.agent import intent as I
from control.agent.compiler import Allocations, Cluster, compile_cluster
from control.node import metrics as M
from control.node.channel import ClusterService
from control.node.push import AUDIT_INTERVAL, BACKOFF_MAX, HELLO_TIMEOUT, NodePusher, apply_ops, diff  # noqa: F401

log = logging.getLogger("vrouter.agent")

UNSERVED_AFTER = 5.0        # a node served to node agents with none connected this long is reported


class Agent:
    """Compile, then push or serve. ``sources``: intent files or directories. ``state_path``: the
    allocations (JSON; None keeps them in memory only). ``curve``: a client's CurveZMQ keys
    (control.client.load_curve) for tcp:// vrouter endpoints. ``listen``: serve node agents there
    (control/node/channel.py; ``listen_keys``: control.keys.load_server's, for tcp://). ``audit_interval``:
    seconds between audits of a directly pushed node (0: none)."""

    def __init__(self, sources, state_path: str | None = None, *, encap: str = "vxlan",
                 netns_format: str | None = "{namespace}-{name}", name: str = "vrouter-agent",
                 timeout: float = 3.0, heartbeat: float = 1.0, curve: dict | None = None,
                 listen: str | None = None, listen_keys: dict | None = None,
                 audit_interval: float = AUDIT_INTERVAL, hold: float | None = None):
        self.sources = [pathlib.Path(s) for s in ([sources] if isinstance(sources, (str, os.PathLike))
                                                  else sources)]
        self.state_path = state_path
        self.encap, self.netns_format, self.name = encap, netns_format, name
        self.timeout, self.heartbeat, self.curve = timeout, heartbeat, curve
        self.audit_interval = audit_interval
        self.session = f"{name}-{uuid.uuid4().hex[:8]}"
        self.alloc = self._load_alloc()
        self.intent: I.Intent | None = None
        self.cluster: Cluster | None = None
        self.intent_error: str | None = None
        self.nodes: dict[str, NodePusher] = {}          # the nodes pushed directly (spec.control)
        self.service: ClusterService | None = None      # the node agents' channel (--listen)
        if listen:
            self.service = ClusterService(listen, keys=listen_keys, **({} if hold is None else {"hold": hold}))
            self.service.start()
        self._unserved: dict[str, float] = {}            # served node -> since when no node agent is connected
        self._reported: set[str] = set()
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
                self.nodes.pop(name).close()
        for name, st in cluster.nodes.items():
            if st.control is not None and name not in self.nodes:
                self.nodes[name] = NodePusher(name, st.control, agent=self.name, session=self.session,
                                              timeout=self.timeout, heartbeat=self.heartbeat,
                                              audit_interval=self.audit_interval, curve=self.curve)
        served = {n: st for n, st in cluster.nodes.items() if st.control is None}
        if self.service is not None:
            self.service.publish(served, {n for n, st in cluster.nodes.items() if st.control is not None})
        else:
            for n in sorted(set(served) - self._reported):
                log.warning("node %s: no spec.control and the agent serves no node agents (no --listen): "
                            "nothing pushes its state", n)
            self._reported = set(served)
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
    def sync_node(self, ns: NodePusher) -> bool:
        """Bring one directly pushed node to its desired state; False (and ``last_error``) when it failed."""
        return ns.sync(self.cluster.nodes[ns.name])

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
            if changed or ns.due(self.cluster.nodes[ns.name], now):
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
        self._report_unserved(now)
        return all(results) and not waiting

    def _report_unserved(self, now: float) -> None:
        """A node served to node agents with none connected for UNSERVED_AFTER s: a warning, once until
        one connects."""
        if self.service is None or self.cluster is None:
            return
        for name, st in self.cluster.nodes.items():
            if st.control is not None:
                continue
            if self.service.status(name)[0]:
                if name in self._reported:
                    log.info("node %s: its node agent is connected", name)
                self._unserved.pop(name, None)
                self._reported.discard(name)
            elif now - self._unserved.setdefault(name, now) >= UNSERVED_AFTER and name not in self._reported:
                log.warning("node %s: no spec.control and no node agent connected: its state waits for one", name)
                self._reported.add(name)

    def unserved(self) -> list[str]:
        """The nodes nothing brings to their state now: no spec.control and no node agent connected."""
        cl = self.cluster
        if cl is None:
            return []
        return sorted(n for n, st in cl.nodes.items() if st.control is None and
                      (self.service is None or not self.service.status(n)[0]))

    def run(self, stop: threading.Event, interval: float = 0.25) -> None:
        while not stop.is_set():
            try:
                self.round()
            except Exception:  # noqa: BLE001 - a bug must not stop the agent silently
                log.exception("agent round failed")
            stop.wait(interval)

    def node_in_sync(self, name: str) -> bool:
        """The node's vrouter holds its current desired state (pushed directly, or reported by its node
        agent for the generation now served)."""
        want = self.cluster.nodes[name]
        if want.control is not None:
            return name in self.nodes and self.nodes[name].pushed == want
        return self.service is not None and self.service.in_sync(name)

    def converged(self) -> bool:
        """Every node of the compiled cluster holds what the agent wants it to."""
        cl = self.cluster
        return cl is not None and all(self.node_in_sync(name) for name in cl.nodes)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for ns in self.nodes.values():
            ns.close()
        self.nodes.clear()
        if self.service is not None:
            self.service.stop()
            self.service = None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["node"]:              # vrouter-agent node ...: the node agent
        from control.node.agent import main as node_main
        return node_main(argv[1:], prog="vrouter-agent node")
    ap = argparse.ArgumentParser(prog="vrouter-agent", description=__doc__.split("\n\n")[0],
                                 epilog="exit codes: 0 ok; 2 intent refused (--check), or not intent at all "
                                        "(no document, unreadable, bad YAML, a typo'd kind or apiVersion), or "
                                        "bad arguments; 1 --once: a node not in sync. The node agent: "
                                        "vrouter-agent node --help")
    ap.add_argument("--version", action="version", version=f"vrouter-agent {__version__}")
    ap.add_argument("--intent", action="append", required=True, help="an intent file or directory (repeatable)")
    ap.add_argument("--state", help="allocation state file (JSON), kept across restarts")
    ap.add_argument("--encap", choices=("vxlan", "mplsoudp"), default="vxlan")
    ap.add_argument("--netns-format", default="{namespace}-{name}",
                    help="a pod's network namespace name, from {namespace} and {name}")
    ap.add_argument("--keys", help="CurveZMQ client keys directory (tcp:// endpoints)")
    ap.add_argument("--listen", metavar="ENDPOINT",
                    help="serve node agents there (ipc://PATH, or tcp://HOST:PORT with --listen-keys)")
    ap.add_argument("--listen-keys", metavar="DIR", help="CurveZMQ server keys directory for a tcp:// --listen")
    ap.add_argument("--audit-interval", type=float, default=AUDIT_INTERVAL, metavar="SECONDS",
                    help=f"seconds between two audits of a directly pushed node (default {AUDIT_INTERVAL:g}; 0: none)")
    ap.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus /metrics there (directly pushed nodes)")
    ap.add_argument("--once", action="store_true", help="one round, then exit (0: every node in sync)")
    ap.add_argument("--check", action="store_true", help="validate and compile the intent, print a summary")
    a = ap.parse_args(argv)
    if a.listen and not a.listen.startswith(("ipc://", "tcp://")):
        ap.error(f"--listen: must be ipc://PATH or tcp://HOST:PORT, got {a.listen!r}")
    if a.listen and a.listen.startswith("tcp://") and not a.listen_keys:
        ap.error("--listen: a tcp:// endpoint needs CurveZMQ keys (--listen-keys, a directory made by "
                 "python -m control.keys)")
    if a.audit_interval < 0:
        ap.error("--audit-interval: 0 (none) or more seconds")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(levelname)s %(message)s", stream=sys.stderr)
    try:
        curve = C.load_curve(a.keys) if a.keys else None
        listen_keys = K.load_server(a.listen_keys) if a.listen_keys and not a.check else None
    except (OSError, ValueError) as e:
        print(f"vrouter-agent: keys: {e}", file=sys.stderr)
        return 2
    try:
        agent = Agent(a.intent, a.state, encap=a.encap, netns_format=a.netns_format, curve=curve,
                      listen=None if a.check else a.listen, listen_keys=listen_keys,
                      audit_interval=a.audit_interval)
    except (OSError, ValueError, zmq.ZMQError) as e:
        print(f"vrouter-agent: --listen {a.listen}: {e}", file=sys.stderr)
        return 2
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
                  f"{sum(len(t) for t in st.routes.values())} routes, {len(st.policies)} policies; "
                  + (f"pushed to {st.control}" if st.control else "served to its node agent"))
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
        for n in agent.unserved():
            print(f"vrouter-agent: node {n}: no spec.control: not pushed by --once (its node agent does it)",
                  file=sys.stderr)
        agent.close()
        return 0 if ok else 1
    http = None
    if a.metrics:
        try:
            http = M.serve(a.metrics, M.PushCollector(lambda: list(agent.nodes.values())))
        except (OSError, ValueError) as e:
            print(f"vrouter-agent: --metrics {a.metrics}: {e}", file=sys.stderr)
            agent.close()
            return 2
    stop = threading.Event()
    import signal
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        agent.run(stop)
    finally:
        if http is not None:
            http.shutdown()
        agent.close()
    return 0
