"""The node agent: one per node, the single client that programs its node's vrouter.

    vrouter-agent node --node NAME --cluster ENDPOINT [--vrouter ipc:///run/vrouter/control.sock]
                       [--keys DIR] [--vrouter-keys DIR] [--metrics HOST:PORT] [--audit-interval SECONDS]
    python -m control.node ...          (the same program)

It connects to the cluster agent (``--cluster``, the endpoint its ``--listen`` serves), says hello with
its node's name and long-polls that node's desired state (control/node/channel.py); it pushes every
state it gets to its vrouter with control.node.push.NodePusher (a snapshot first, ordered diffs after,
a snapshot again after a vrouter restart or a failed push, the periodic audit every ``--audit-interval``
seconds) and reports the generation its vrouter holds.

* The cluster agent away (stopped, restarting, unreachable): the vrouter keeps forwarding with what it
  has; the node agent keeps auditing it and resyncing a restarted vrouter with the last state it got,
  and retries the cluster agent with a backoff (0.5 s doubling, up to BACKOFF_MAX s). A cluster agent
  back with another instance id serves the state afresh; the same ids give an empty diff.
* Its own restart changes nothing in the datapath: it starts with no state and pushes nothing until the
  cluster agent answers, then snapshots the same objects with the same ids in place: nothing is swept.
* A state the vrouter's protocol would refuse is refused whole (the error names the field), logged, and
  the state in force stays.

``--keys``: the client's CurveZMQ keys for a tcp:// cluster endpoint (control.keys); ``--vrouter-keys``
likewise for a tcp:// vrouter. ``--metrics``: Prometheus /metrics (control/node/metrics.py). Exit codes:
0 stopped by SIGTERM/SIGINT, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
import uuid

import zmq

from control import client as C
from control import protocol as P
from control.node import channel as CH
from control.node import metrics as M
from control.node import state as S
from control.node.push import AUDIT_INTERVAL, BACKOFF_MAX, NodePusher
from control.version import __version__

log = logging.getLogger("vrouter.node")

DEFAULT_VROUTER = "ipc:///run/vrouter/control.sock"


class NodeAgent:
    """``node``: this node's name in the intent; ``cluster``: the cluster agent's endpoint; ``vrouter``:
    the node's control channel. ``keys`` / ``vrouter_keys``: client CurveZMQ keys (control.client.load_curve)."""

    def __init__(self, node: str, cluster: str, vrouter: str = DEFAULT_VROUTER, *, keys: dict | None = None,
                 vrouter_keys: dict | None = None, audit_interval: float = AUDIT_INTERVAL, heartbeat: float = 1.0,
                 timeout: float = 3.0, hold: float = CH.HOLD):
        self.node, self.timeout, self.hold = node, timeout, hold
        self.session = f"node-agent-{uuid.uuid4().hex[:8]}"
        self.pusher = NodePusher(node, vrouter, agent="vrouter-node-agent", session=self.session, timeout=timeout,
                                 heartbeat=heartbeat, audit_interval=audit_interval, curve=vrouter_keys)
        self.cluster = C.Client(cluster, ops=CH.OPS, session=self.session, timeout=timeout, retries=0, curve=keys)
        self.state: tuple[int, S.NodeState] | None = None   # (generation, the desired state) from the cluster
        self.applied: int | None = None        # the generation the vrouter holds in full (None: not in sync)
        self.instance: str | None = None       # the cluster agent's, from its last answer
        self.state_instance: str | None = None  # the cluster agent's whose generations ``state`` counts in
        self.cluster_error: str | None = None
        self.cluster_failures = 0
        self.connected = False
        self.states = 0                         # states received
        self._pushed = threading.Event()        # a new state to push
        self._wake_r, self._wake_w = os.pipe()  # the applied generation moved: report it
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # -- the cluster side (its own thread) ---------------------------------------------------
    def _report(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _cluster_failed(self, e: Exception) -> float:
        msg = f"{type(e).__name__}: {e}"
        if msg != self.cluster_error:
            log.error("node %s: cluster agent at %s: %s; the vrouter keeps its state, retrying", self.node,
                      self.cluster.endpoint, msg)
        self.cluster_error, self.connected = msg, False
        self.cluster_failures += 1
        self.instance = None
        self.cluster._reset()
        return min(0.25 * 2 ** self.cluster_failures, BACKOFF_MAX)

    def _hello(self) -> None:
        r = self.cluster.call("hello", {"node": self.node})
        self.instance = r["instance"]
        if not r["known"]:
            log.warning("node %s: the cluster agent has no node %s (yet): waiting for its state", self.node,
                        self.node)
        if self.cluster_error is not None or not self.connected:
            log.info("node %s: cluster agent %s (instance %s), generation %s", self.node, self.cluster.endpoint,
                     r["instance"], r["generation"])
        self.cluster_error, self.cluster_failures, self.connected = None, 0, True

    def poll_once(self, stop: threading.Event | None = None) -> None:
        """One state request: returns when a state (or the hold's end) came, or when ``applied`` moved
        (the next request reports it). Raises ControlError (Timeout when the cluster agent is away)."""
        if self.instance is None:
            self._hello()
        since = self.state[0] if self.state else 0
        applied = self.applied
        seq, payload = self.cluster._request("state", {"node": self.node, "since": since, "applied": applied,
                                                      "instance": self.state_instance})
        sock = self.cluster.sock
        sock.send(payload)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        deadline = time.monotonic() + self.hold + self.timeout
        while stop is None or not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                raise C.Timeout(f"state: no answer from {self.cluster.endpoint} in {self.hold + self.timeout:.0f} s")
            events = dict(poller.poll(int(min(left, 0.5) * 1000) + 1))
            if self._wake_r in events:
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
                if self.applied != applied:
                    return              # a new request reports it; the server answers this one at once
            if sock in events:
                rep = P.decode_reply(sock.recv())
                if rep.seq != seq:
                    continue            # the answer to a request superseded or abandoned
                if not rep.ok:
                    C.raise_for(rep.error)
                self._got(rep.body)
                return

    def _got(self, r: dict) -> None:
        if r["instance"] != self.instance:
            log.warning("node %s: the cluster agent restarted (instance %s -> %s)", self.node, self.instance,
                        r["instance"])
            self.instance = r["instance"]
        self.connected = True
        if r["state"] is None:
            return
        gen = r["generation"]
        self.state_instance = r["instance"]      # since and applied count in its generations now
        try:
            st = S.from_wire(r["state"])
            if st.name != self.node:
                raise P.ProtocolError(P.INVALID, "b.state.name", f"the state of node {st.name}, not {self.node}")
        except P.ProtocolError as e:
            log.error("node %s: state generation %s refused (%s); the one in force stays", self.node, gen, e)
            self.state = (gen, self.state[1]) if self.state else None
            return
        self.state = (gen, st)
        self.states += 1
        log.info("node %s: state generation %s: %d vifs, %d next hops, %d routes", self.node, gen, len(st.vifs),
                 len(st.nhs), sum(len(t) for t in st.routes.values()))
        self._pushed.set()

    def poll_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once(stop)
            except C.ControlError as e:
                stop.wait(self._cluster_failed(e))
            except Exception:  # noqa: BLE001 - a bug must not stop the node agent silently
                log.exception("node %s: cluster poll failed", self.node)
                stop.wait(1.0)

    # -- the vrouter side ---------------------------------------------------------------------
    def push_once(self) -> bool:
        """Push the state in force when the pusher has something to do; True when the vrouter holds it."""
        cur = self.state
        if cur is None:
            return False
        gen, want = cur
        now = time.monotonic()
        if now >= self.pusher.retry_at and self.pusher.due(want, now):
            self.pusher.sync(want)
        applied = gen if self.pusher.in_sync(want) and self.pusher.last_error is None else None
        if applied != self.applied:
            self.applied = applied
            self._report()
        return applied is not None

    def push_loop(self, stop: threading.Event, interval: float = 0.1) -> None:
        while not stop.is_set():
            try:
                self.push_once()
            except Exception:  # noqa: BLE001 - a bug must not stop the node agent silently
                log.exception("node %s: push round failed", self.node)
            self._pushed.wait(interval)
            self._pushed.clear()

    def run(self, stop: threading.Event) -> None:
        t = threading.Thread(target=self.poll_loop, args=(stop,), name="cluster", daemon=True)
        t.start()
        try:
            self.push_loop(stop)
        finally:
            stop.set()
            t.join(timeout=self.hold + self.timeout + 1)

    def metrics(self):
        yield M.gauge("vrouter_node_agent_cluster_connected", "1 while the cluster agent answers.",
                      1 if self.connected else 0)
        yield M.gauge("vrouter_node_agent_state_generation", "The generation of the state the node agent holds.",
                      self.state[0] if self.state else 0)

    def close(self) -> None:
        self.pusher.close()
        self.cluster.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


def _endpoint(ap, what: str, v: str, keys: str | None) -> None:
    if not v.startswith(("ipc://", "tcp://")):
        ap.error(f"{what}: must be ipc://PATH or tcp://HOST:PORT, got {v!r}")
    if v.startswith("tcp://") and not keys:
        ap.error(f"{what}: a tcp:// endpoint needs CurveZMQ client keys (a directory made by python -m control.keys)")


def main(argv=None, prog: str = "vrouter-agent node") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", action="version", version=f"{prog} {__version__}")
    ap.add_argument("--node", required=True, help="this node's name (its Node document in the intent)")
    ap.add_argument("--cluster", required=True, help="the cluster agent's endpoint (its --listen)")
    ap.add_argument("--vrouter", default=DEFAULT_VROUTER, help=f"the vrouter's control channel ({DEFAULT_VROUTER})")
    ap.add_argument("--keys", help="CurveZMQ client keys directory for a tcp:// cluster endpoint")
    ap.add_argument("--vrouter-keys", help="CurveZMQ client keys directory for a tcp:// vrouter endpoint")
    ap.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus /metrics there")
    ap.add_argument("--audit-interval", type=float, default=AUDIT_INTERVAL, metavar="SECONDS",
                    help=f"seconds between two audits of the vrouter's tables (default {AUDIT_INTERVAL:g}; 0: none)")
    a = ap.parse_args(argv)
    if not 1 <= len(a.node) <= 253:
        ap.error("--node: 1..253 characters")
    if a.audit_interval < 0:
        ap.error("--audit-interval: 0 (none) or more seconds")
    _endpoint(ap, "--cluster", a.cluster, a.keys)
    _endpoint(ap, "--vrouter", a.vrouter, a.vrouter_keys)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s node-agent %(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        keys = C.load_curve(a.keys) if a.keys else None
        vkeys = C.load_curve(a.vrouter_keys) if a.vrouter_keys else None
    except (OSError, ValueError) as e:
        print(f"{prog}: keys: {e}", file=sys.stderr)
        return 2
    agent = NodeAgent(a.node, a.cluster, a.vrouter, keys=keys, vrouter_keys=vkeys, audit_interval=a.audit_interval)
    http = None
    if a.metrics:
        try:
            http = M.serve(a.metrics, M.PushCollector(lambda: [agent.pusher], agent.metrics))
        except (OSError, ValueError) as e:
            print(f"{prog}: --metrics {a.metrics}: {e}", file=sys.stderr)
            agent.close()
            return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("node %s: node agent %s: cluster %s, vrouter %s, audit every %gs", a.node, agent.session, a.cluster,
             a.vrouter, a.audit_interval)
    try:
        agent.run(stop)
    finally:
        if http is not None:
            http.shutdown()
        agent.close()
    return 0
