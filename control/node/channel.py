"""The cluster<->node channel: the cluster agent serves every node's desired state to that node's agent.

Transport: control.server.Server in the cluster agent (ZeroMQ ROUTER; ``ipc://`` mode 0600, ``tcp://``
only with CurveZMQ keys) and a DEALER client in each node agent, on control.protocol's envelope, codec,
limits and error codes, with this module's op table ``OPS`` (its own schema, checked at both ends):

    hello   node str 1..253
            reply {"instance": the cluster agent's instance (a uuid, another after its restart),
                   "generation": the node's state generation (0: none yet), "known": the intent has the node}
            refused ``in_use`` (field b.node) for a node the cluster agent pushes itself (its Node has
            spec.control): its vrouter would have two writers
    state   node, since int 0..2**63-1 (the generation the node agent holds; 0: none), applied? int|null
            (the generation its vrouter holds in full; null: not in sync), instance? str|null (the cluster
            agent's instance the node agent last saw)
            reply {"instance": ..., "generation": g, "state": the NodeState in the wire form of
            control/node/state.py} at once when g > since or the instance is not the one given; else held
            until it is (a long poll), at most ``hold`` seconds (HOLD), then {"instance", "generation": g,
            "state": null}. A state request supersedes the one its session has held: that one is answered
            at once with state null (the node agent reports ``applied`` that way while it waits).

The milestone-2 CNI issue adds attach, detach and attachments.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from control import protocol as P
from control.node import state as S
from control.node.state import NodeState
from control.server import Held, Server

log = logging.getLogger("vrouter.cluster")

HOLD = 10.0             # seconds a state request waits for a newer state
SEEN_FOR = 2 * HOLD     # a node agent not heard from in this long is not connected

_NODE = P._str(1, 253)
OPS = {
    "hello": P._op({"node": (_NODE, P.REQ)}),
    "state": P._op({"node": (_NODE, P.REQ), "since": (P.GENERATION, P.REQ),
                    "applied": (P.GENERATION, None), "instance": (P._str(1, 64), None)}),
}


@dataclass
class Served:
    """One node's state as the cluster agent serves it."""
    generation: int
    state: NodeState
    wire: dict | None = None        # to_wire(state), made on the first request


@dataclass
class NodeAgentSeen:
    """What the cluster agent knows of a node's agent."""
    session: str
    last_seen: float
    since: int = 0
    applied: int | None = None
    instance: str | None = None     # the cluster agent's instance it reported with


class ClusterService:
    """The cluster agent's side: ``publish`` the compiled states, node agents poll them. ``keys``: a
    server's CurveZMQ keywords (control.keys.load_server) for a tcp:// endpoint."""

    def __init__(self, endpoint: str, *, hold: float = HOLD, keys: dict | None = None, backlog: int = 1024):
        self.hold = hold
        self.server = Server(endpoint, self.handle, ops=OPS, name="cluster", backlog=backlog, **(keys or {}))
        self.instance = self.server.instance
        self.served: dict[str, Served] = {}
        self.direct: set[str] = set()
        self.seen: dict[str, NodeAgentSeen] = {}
        self._latest: dict[str, object] = {}      # session -> its newest state request (superseding)
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    # -- the cluster agent's thread ----------------------------------------------------------
    def publish(self, states: dict[str, NodeState], direct: set[str]) -> list[str]:
        """The states to serve (nodes without spec.control) and the nodes pushed directly; a node's
        generation moves when its tables do. Returns the nodes whose state changed."""
        changed = []
        with self._lock:
            served = {}
            for name, st in states.items():
                old = self.served.get(name)
                if old is not None and old.state == st:
                    served[name] = old
                else:
                    served[name] = Served((old.generation if old else 0) + 1, st)
                    changed.append(name)
            self.served, self.direct = served, set(direct)
        self.server.notify()
        return changed

    def status(self, name: str) -> tuple[bool, int | None, int]:
        """(a node agent connected, the generation its vrouter holds or None, the node's generation)."""
        s, seen = self.served.get(name), self.seen.get(name)
        gen = s.generation if s else 0
        if seen is None or time.monotonic() - seen.last_seen > SEEN_FOR:
            return False, None, gen
        return True, seen.applied if seen.instance == self.instance else None, gen

    def in_sync(self, name: str) -> bool:
        connected, applied, gen = self.status(name)
        return connected and gen > 0 and applied == gen

    # -- the server's thread -----------------------------------------------------------------
    def handle(self, req):
        b = req.body
        name = b["node"]
        if name in self.direct:
            raise P.ProtocolError(P.IN_USE, "b.node", f"node {name} is pushed by the cluster agent itself (its "
                                  "Node has spec.control): a node agent would be a second writer")
        now = time.monotonic()
        seen = self.seen.get(name)
        if seen is None or seen.session != req.session:
            if seen is not None:
                log.info("node %s: node agent session %s (was %s)", name, req.session, seen.session)
                self._latest.pop(seen.session, None)
            seen = self.seen[name] = NodeAgentSeen(req.session, now)
        seen.last_seen = now
        if req.op == "hello":
            s = self.served.get(name)
            return {"instance": self.instance, "generation": s.generation if s else 0, "known": s is not None}
        seen.since, seen.applied, seen.instance = b["since"], b["applied"], b["instance"]
        token = object()
        self._latest[req.session] = token

        def ready(final: bool):
            s = self.served.get(name)
            gen = s.generation if s else 0
            if s is not None and (gen > b["since"] or b["instance"] != self.instance):
                if s.wire is None:
                    s.wire = S.to_wire(s.state)
                return {"instance": self.instance, "generation": gen, "state": s.wire}
            if final or self._latest.get(req.session) is not token:
                seen.last_seen = time.monotonic()
                return {"instance": self.instance, "generation": gen, "state": None}
            return None

        body = ready(False)
        return body if body is not None else Held(ready, now + self.hold)
