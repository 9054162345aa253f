"""Pushing one node's desired state to its vrouter, and auditing it: ``NodePusher``, the one copy of this
code, used by the cluster agent for the nodes it pushes directly and by the node agent for its own.

* A vrouter seen for the first time, restarted (``hello`` answers another instance id), or whose last
  push failed, gets a **snapshot**: ``snapshot_begin(g)``, everything, ``snapshot_end(g)``; the vrouter
  sweeps what the snapshot did not re-push. Objects are updated in place, so a new pusher (an agent
  restarted) re-pushing the same ids changes nothing in the datapath and sweeps nothing.
* Otherwise it gets the **diff** between what was last pushed and what is wanted now, in an order that
  never leaves a dangling reference: additions and updates first (VRFs, vifs, next hops, labels, VNIs,
  routes, policies), then removals in reverse (policies, routes, VNIs, labels, next hops, vifs, VRFs).
* A failed push is retried after a backoff (0.5 s doubling, up to BACKOFF_MAX s) with a snapshot.
* Every ``audit_interval`` seconds (AUDIT_INTERVAL by default; 0: never) an in-sync node is **audited**:
  the vrouter's ``digest`` of each kind of object (computed from its tables, control/digest.py) is
  compared with the digest of the desired state; for a kind that differs (routes: a table, VRF and
  family, that differs) the pusher dumps only that kind from the vrouter, logs every object that is
  missing, changed or not desired, and sends the ops that repair them (the same ordered diff, from what
  the vrouter holds to what is wanted; not a snapshot). Repairs are counted per kind (``repairs``) and
  the digest is asked again: a kind still differing is logged as an error and counted.
"""
from __future__ import annotations

import collections
import copy
import logging
import time
import uuid

from control import client as C
from control import digest as D
from control.node import state as S
from control.node.state import NodeState

log = logging.getLogger("vrouter.push")

HELLO_TIMEOUT = 1.0         # a node that does not answer hello in this long (twice) is down
BACKOFF_MAX = 5.0
AUDIT_INTERVAL = 10.0       # seconds between two audits of an in-sync node (0: no audit)
DUMP_LIMIT = 10_000

# kind -> NodeState attribute
TABLE_OF = {v: k for k, v in S.KIND_OF.items()}


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


# ---------------------------------------------------------------------------------------------- audit

def _key_of(kind: str, ident) -> str:
    return f"vif/{ident}" if kind == "policy" else str(ident)


def repair_plan(want: NodeState, observed: dict[str, dict], routes: dict[tuple[int, int], dict[str, int]]):
    """What the vrouter holds, as a NodeState the ordered diff can start from, and the differences.

    ``observed``: for each kind found to differ, the vrouter's objects of that kind as dumped
    ({key: item}); ``routes``: for each route table found to differ, its routes. Kinds and tables not
    given are taken to be as wanted. Returns (old, found, extra_ops): ``diff(old, want)`` repairs the
    objects; ``found`` lists (kind, object, what) for the log; ``extra_ops`` removes what a NodeState
    cannot name (a policy on a VRF), to be sent first."""
    old = NodeState(want.name, want.control, **{t: dict(getattr(want, t)) for t in S.TABLES},
                    routes={k: dict(v) for k, v in want.routes.items()})
    found: list[tuple[str, str, str]] = []
    extra_ops: list[tuple[str, dict]] = []
    for kind, have in observed.items():
        attr = TABLE_OF[kind]
        wanted = S.entries(want, kind)
        have_canon = {k: D.entry(kind, it)[1] for k, it in have.items()}
        table = {}
        for ident, body in getattr(want, attr).items():
            k = _key_of(kind, ident)
            if k not in have:
                found.append((kind, k, "missing"))
            elif have_canon[k] != wanted[k]:
                table[ident] = {"observed": have[k]}       # not the wanted body: diff updates it
                found.append((kind, k, f"changed (was {have_canon[k]})"))
            else:
                table[ident] = body
        for k, it in sorted(have.items()):
            if k in wanted:
                continue
            found.append((kind, k, "not in the desired state: removed"))
            if kind == "policy" and it["kind"] != "vif":
                extra_ops.append(("policy_del", {"kind": it["kind"], "id": it["id"]}))
            else:
                table[int(it["id"] if kind in ("vif", "nh", "policy") else it[kind])] = it
        setattr(old, attr, table)
    for (vrf, fam), have in routes.items():
        wanted = want.routes.get((vrf, fam), {})
        for p in sorted(set(have) | set(wanted)):
            if p not in have:
                found.append(("route", f"{p} in VRF {vrf}", f"missing (nh {wanted[p]})"))
            elif p not in wanted:
                found.append(("route", f"{p} in VRF {vrf}", f"not in the desired state (nh {have[p]}): removed"))
            elif have[p] != wanted[p]:
                found.append(("route", f"{p} in VRF {vrf}", f"next hop {have[p]}, not {wanted[p]}"))
        old.routes[(vrf, fam)] = dict(have)
    return old, found, extra_ops


# ---------------------------------------------------------------------------------------------- one node

class NodePusher:
    """What one agent knows of one node's vrouter, and the code that brings it to a desired state.
    ``name``: the node; ``endpoint``: its vrouter's control channel; ``agent``: the name given in hello."""

    def __init__(self, name: str, endpoint: str, *, agent: str = "vrouter-agent", session: str | None = None,
                 timeout: float = 3.0, heartbeat: float = 1.0, audit_interval: float = AUDIT_INTERVAL,
                 curve: dict | None = None):
        self.name, self.endpoint, self.agent = name, endpoint, agent
        self.session = session or f"{agent}-{uuid.uuid4().hex[:8]}"
        self.timeout, self.heartbeat, self.audit_interval = timeout, heartbeat, audit_interval
        self.client = C.Client(endpoint, session=self.session, timeout=timeout, retries=1, curve=curve)
        self.instance: str | None = None       # the vrouter process last seen
        self.pushed: NodeState | None = None   # what it holds from us (None: unknown -> snapshot)
        self.generation = 0
        self.last_error: str | None = None
        self.last_hello = 0.0
        self.last_audit = 0.0
        self.failures = 0                      # pushes failed in a row
        self.retry_at = 0.0                    # after a failure: not before (backoff up to BACKOFF_MAX s)
        self.history: list[dict] = []          # one entry per push or repair: kind, ops, seconds
        self.counters: collections.Counter = collections.Counter()   # snapshot, diff, failed, audit, ...
        self.repairs: collections.Counter = collections.Counter()    # kind -> objects repaired
        self._digests: tuple = (None, None)    # (want, its digests): computed once per desired state

    # -- when ----------------------------------------------------------------
    def audit_due(self, now: float) -> bool:
        return self.audit_interval > 0 and self.pushed is not None and now - self.last_audit >= self.audit_interval

    def due(self, want: NodeState, now: float) -> bool:
        """Something to do for ``want``: a push, the heartbeat's hello, or an audit."""
        return self.pushed is None or self.pushed != want or now - self.last_hello >= self.heartbeat or \
            self.audit_due(now)

    def in_sync(self, want: NodeState | None) -> bool:
        return want is not None and self.pushed == want

    # -- doing ---------------------------------------------------------------
    def _hello(self) -> None:
        info = self.client.call("hello", {"agent": self.agent, "session": self.session,
                                          "generation": self.client.generation},
                                timeout=min(self.timeout, HELLO_TIMEOUT))
        self.last_hello = time.monotonic()
        if info["instance"] != self.instance:
            if self.instance is not None:
                log.warning("node %s: vrouter restarted (instance %s -> %s): resync", self.name, self.instance,
                            info["instance"])
            self.instance, self.pushed = info["instance"], None
        self.generation = max(self.generation, int(info.get("generation") or 0))

    def sync(self, want: NodeState) -> bool:
        """Bring the node to ``want`` (and audit it when due); False (and ``last_error``) when it failed."""
        t0 = time.monotonic()
        try:
            self._hello()
            if self.pushed is None:
                g = self.generation + 1
                self.client.generation = g
                self.client.call("hello", {"agent": self.agent, "session": self.session, "generation": g})
                self.client.call("snapshot_begin", {"generation": g})
                done = apply_ops(self.client, diff(None, want))
                swept = self.client.call("snapshot_end", {"generation": g}).get("swept", {})
                self.generation, kind = g, "snapshot"
                self.last_audit = time.monotonic()         # a snapshot is as good as an audit
            elif self.pushed != want:
                done, swept, kind = apply_ops(self.client, diff(self.pushed, want)), {}, "diff"
            else:
                if self.audit_due(time.monotonic()):
                    self.audit(want)
                return True
        except C.ControlError as e:
            self._failed(e)
            return False
        self.pushed, self.last_error, self.failures = copy.deepcopy(want), None, 0
        self.counters[kind] += 1
        if done or swept or kind == "snapshot":
            entry = {"kind": kind, "ops": done, "swept": swept, "seconds": round(time.monotonic() - t0, 3)}
            self.history.append(entry)
            log.info("node %s: %s pushed %s%s", self.name, kind, done or "nothing",
                     f", swept {swept}" if swept else "")
        return True

    def _failed(self, e: C.ControlError) -> None:
        msg = f"{type(e).__name__}: {e}"
        if msg != self.last_error:
            log.error("node %s: push failed (%s); it gets a snapshot next round", self.name, msg)
        self.last_error, self.pushed = msg, None
        self.failures += 1
        self.counters["failed"] += 1
        self.retry_at = time.monotonic() + min(0.25 * 2 ** self.failures, BACKOFF_MAX)
        if isinstance(e, C.Timeout):
            self.instance = None

    def desired_digests(self, want: NodeState) -> tuple[dict, dict]:
        if self._digests[0] is not want:
            self._digests = (want, S.digests(want))
        return self._digests[1]

    def audit(self, want: NodeState) -> dict[str, int]:
        """Compare the vrouter's digests with ``want``'s and repair what differs (see the module's
        docstring); returns the objects repaired per kind. Raises ControlError like a push."""
        t0 = self.last_audit = time.monotonic()
        kinds, tables = self.desired_digests(want)
        try:
            got = self.client.call("digest", {})
        except C.UnknownOpError:
            log.warning("node %s: its vrouter has no digest op: no audit", self.name)
            self.audit_interval = 0
            return {}
        self.counters["audit"] += 1
        bad = [k for k in D.KINDS if got["digests"].get(k) != kinds[k]]
        if not bad:
            return {}
        observed = {}
        for kind in bad:
            if kind != "route":
                observed[kind] = {D.entry(kind, it)[0]: it
                                  for it in self.client.dump(kind, limit=DUMP_LIMIT, static=False)}
        routes = {}
        if "route" in bad:
            theirs = got.get("routes") or {}
            for key in sorted(set(tables) | set(theirs)):
                if tables.get(key) != theirs.get(key):
                    vrf, fam = (int(x) for x in key.split("/"))
                    routes[(vrf, fam)] = {it["prefix"]: it["nh"] for it in self.client.dump(
                        "route", limit=DUMP_LIMIT, vrf=vrf, family=fam, static=False)}
        old, found, extra = repair_plan(want, observed, routes)
        for kind, obj, what in found:
            log.warning("node %s: audit: %s %s %s; repairing", self.name, kind, obj, what)
        done = apply_ops(self.client, extra + diff(old, want))
        repaired = collections.Counter(kind for kind, _, _ in found)
        self.repairs.update(repaired)
        self.counters["audit_repaired"] += 1
        again = self.client.call("digest", {"kinds": bad})["digests"]
        still = [k for k in bad if again.get(k) != kinds[k]]
        if still:
            self.counters["audit_unrepaired"] += 1
            log.error("node %s: audit: %s still differ after the repair", self.name, ", ".join(still))
        self.history.append({"kind": "audit", "repaired": dict(repaired), "ops": done, "unrepaired": still,
                             "seconds": round(time.monotonic() - t0, 3)})
        log.info("node %s: audit repaired %s with %s", self.name, dict(repaired), done)
        return dict(repaired)

    def close(self) -> None:
        self.client.close()
